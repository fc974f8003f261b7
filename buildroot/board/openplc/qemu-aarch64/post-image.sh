#!/usr/bin/env bash
# BR2_ROOTFS_POST_IMAGE_SCRIPT of openplc_qemu_aarch64_virt_defconfig: makes
# disk.img (GPT: rootfs.ext4, then the empty ext4 data partition for
# /var/lib; genimage.cfg here) with Buildroot's genimage.sh, and puts
# start-qemu.sh next to it and the kernel.
set -euo pipefail

case ${1:-} in
    -h | --help)
        echo "Usage: post-image.sh BINARIES_DIR   (run by Buildroot, in its source tree, after the images are made)"
        exit 0
        ;;
esac
images=${1:-${BINARIES_DIR:?post-image.sh: BINARIES_DIR is not set; Buildroot passes it}}
board_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# Buildroot runs post-image scripts in its source tree, with BUILD_DIR,
# BINARIES_DIR and a PATH holding host/bin (genimage) in the environment.
[[ -x support/scripts/genimage.sh ]] ||
    { echo "post-image.sh: run by Buildroot from its source tree (no support/scripts/genimage.sh in $PWD)" >&2; exit 1; }
BINARIES_DIR=$images support/scripts/genimage.sh -c "$board_dir/genimage.cfg"
install -m 0755 "$board_dir/start-qemu.sh" "$images/start-qemu.sh"
