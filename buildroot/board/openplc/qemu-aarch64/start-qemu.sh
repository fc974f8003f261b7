#!/usr/bin/env bash
# Boots the openplc_qemu_aarch64_virt_defconfig image (installed next to
# Image and disk.img by post-image.sh). disk.img holds the root file
# system (vda1, mounted read-only, as on a board) and the data partition
# (vda2, on /var/lib): writes to it stay in disk.img, so /var/lib keeps
# its contents from one boot to the next. Extra arguments go to qemu
# (e.g. -snapshot: nothing is written back to disk.img).
set -euo pipefail

case ${1:-} in
    -h | --help)
        cat <<'USAGE'
Usage: start-qemu.sh [QEMU ARGUMENTS...]
Boots Image + disk.img from this directory with qemu-system-aarch64 (the
one Buildroot built in ../host/bin, else the one on PATH; $QEMU overrides),
serial console on this terminal; Ctrl-A X quits. /var/lib lives on disk.img's
second partition and persists; pass -snapshot to keep disk.img unchanged.
USAGE
        exit 0
        ;;
esac

images=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
qemu=${QEMU:-$images/../host/bin/qemu-system-aarch64}
[[ -x $qemu ]] || qemu='qemu-system-aarch64'

exec "$qemu" -M virt -cpu cortex-a53 -smp 2 -m 1024 -nographic \
    -kernel "$images/Image" \
    -append "rootwait root=/dev/vda1 ro console=ttyAMA0" \
    -netdev user,id=eth0 -device virtio-net-device,netdev=eth0 \
    -drive "file=$images/disk.img,if=none,format=raw,id=hd0" \
    -device virtio-blk-device,drive=hd0 \
    "$@"
