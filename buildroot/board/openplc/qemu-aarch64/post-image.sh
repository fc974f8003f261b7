#!/usr/bin/env bash
# BR2_ROOTFS_POST_IMAGE_SCRIPT of openplc_qemu_aarch64_virt_defconfig: puts
# start-qemu.sh next to the kernel and the root filesystem image.
set -euo pipefail

case ${1:-} in
    -h | --help)
        echo "Usage: post-image.sh BINARIES_DIR   (run by Buildroot after the images are made)"
        exit 0
        ;;
esac
images=${1:-${BINARIES_DIR:?post-image.sh: BINARIES_DIR is not set; Buildroot passes it}}
board_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
install -m 0755 "$board_dir/start-qemu.sh" "$images/start-qemu.sh"
