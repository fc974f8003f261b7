#!/usr/bin/env bash
# Tests the qemu-system tier's scripts without booting anything (that is
# scripts/test-qemu-system itself): their command lines, and the initrd's
# module load order (scripts/lib/initrd_modules.py) on a modules.dep shaped
# like Debian's arm64 kernel's (compressed modules, "-" and "_" alike, a module
# built into the kernel).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

make_image=$project/scripts/make-qemu-image
test_tier=$project/scripts/test-qemu-system
helper=$project/scripts/lib/initrd_modules.py
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

shellcheck_clean "make-qemu-image, test-qemu-system and this test are shellcheck-clean" \
    "$make_image" "$test_tier" "$this_test"

run "$make_image" --help
expect_rc "make-qemu-image --help exits 0" 0
contains "make-qemu-image --help names the cache" "$out" "qemu-system/"
run "$make_image" --bogus
expect_rc "make-qemu-image refuses an unknown argument" 1
contains "make-qemu-image names the unknown argument" "$err" "'--bogus'"
run "$test_tier" --help
expect_rc "test-qemu-system --help exits 0" 0
contains "test-qemu-system --help lists the watchdog step" "$out" "watchdog"
run "$test_tier" --deadline soon
expect_rc "test-qemu-system refuses a non-numeric --deadline" 2
contains "test-qemu-system says what --deadline needs" "$err" "--deadline needs a number"
run python3 "$project/tests/qemu-system/drive.py" --help
expect_rc "drive.py --help exits 0" 0

# The image's cache key hashes its inputs: every tests/qemu-system file the
# script puts into the image must be one of them (else a changed guest tool
# would not remake the image), and the examples (opcua_server among them) are.
installed=$(grep -v '^[[:space:]]*#' "$make_image" | grep -o 'tests/qemu-system/[A-Za-z0-9_.-]*' | sort -u)
hashed=$(sed -n '/^guest_test_files=(/,/)$/p' "$make_image" | grep -o 'tests/qemu-system/[A-Za-z0-9_.-]*' | sort -u)
equals "every tests/qemu-system file installed into the image is in its key's inputs" \
    "$(comm -23 <(printf '%s\n' "$installed") <(printf '%s\n' "$hashed"))" ""
contains "the guest's OPC UA client is installed" "$installed" "tests/qemu-system/opcua_read.py"
contains "the examples are in the key's inputs" "$(grep '^inputs=(' "$make_image")" "examples/plugins"
program_inputs=$(sed -n '/^program_inputs=(/,/)$/p' "$make_image")
for input in examples/programs/io_demo/generated src/program/glue scripts/build-plc-program scripts/lib/plc_toolchain.sh; do
    contains "the example program's $input is in the key's inputs" "$program_inputs" "$input"
done
# shellcheck disable=SC2016 # the literal text of the array expansion
contains "the program's inputs are in the key" "$(sed -n '/^inputs=(/,/)$/p' "$make_image")" '"${program_inputs[@]}"'
contains "test-qemu-system installs the STruC++ headers (install-deps --program)" "$(cat "$test_tier")" "--cross --program"
contains "opcua_server goes in with its writable certs path" "$(sed -n '/^examples=(/,/)$/p' "$make_image")" \
    "opcua_server:config.json:certs"

kdir=$tmp/modules/6.12.0-test
mkdir -p "$kdir"
cat >"$kdir/modules.dep" <<'DEP'
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/crypto/crc32c-generic.ko.zst:
kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz
kernel/fs/fat/fat.ko.xz:
DEP
run python3 "$helper" "$kdir" virtio_pci virtio_blk ext4 crc32c_generic jbd2
expect_rc "initrd_modules.py exits 0" 0
equals "dependencies load first, each module once, unrelated ones left out" "$out" \
    "kernel/drivers/block/virtio_blk.ko.xz
kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/mbcache.ko.xz
kernel/lib/crc16.ko.xz
kernel/fs/ext4/ext4.ko.xz
kernel/crypto/crc32c-generic.ko.zst"
contains "a module without a file is reported as built in" "$err" "virtio_pci: no module file"
run python3 "$helper" "$tmp/nowhere" ext4
expect_rc "initrd_modules.py exits 1 without modules.dep" 1
contains "and names the file" "$err" "$tmp/nowhere/modules.dep"

finish
