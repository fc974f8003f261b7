#!/usr/bin/env bash
# Boots the openplc_qemu_aarch64_virt_defconfig image (installed next to
# Image and rootfs.ext4 by post-image.sh). The root filesystem is mounted
# read-only, as on a board; snapshot=on keeps the image file pristine
# even if something did write to it. Extra arguments go to qemu.
set -euo pipefail

case ${1:-} in
    -h | --help)
        cat <<'USAGE'
Usage: start-qemu.sh [QEMU ARGUMENTS...]
Boots Image + rootfs.ext4 from this directory with qemu-system-aarch64 (the
one Buildroot built in ../host/bin, else the one on PATH; $QEMU overrides),
serial console on this terminal; Ctrl-A X quits.
USAGE
        exit 0
        ;;
esac

images=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
qemu=${QEMU:-$images/../host/bin/qemu-system-aarch64}
[[ -x $qemu ]] || qemu='qemu-system-aarch64'

exec "$qemu" -M virt -cpu cortex-a53 -smp 2 -m 1024 -nographic \
    -kernel "$images/Image" \
    -append "rootwait root=/dev/vda ro console=ttyAMA0" \
    -netdev user,id=eth0 -device virtio-net-device,netdev=eth0 \
    -drive "file=$images/rootfs.ext4,if=none,format=raw,id=hd0,snapshot=on" \
    -device virtio-blk-device,drive=hd0 \
    "$@"
