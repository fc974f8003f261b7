SUMMARY = "A read-only systemd image: openplc-runtime, example plugins and program"
DESCRIPTION = "Boots to multi-user.target with openplc-runtime.service enabled; \
               plugins and their venvs are pre-built into the read-only root \
               filesystem."
SECTION = "images"
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "systemd"

# read-only-rootfs: / is mounted ro; systemd's volatile-binds keep /var/lib,
# /var/cache and /var/spool on a tmpfs (see README.md: what persists).
IMAGE_FEATURES += "read-only-rootfs"

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    openplc-runtime \
    openplc-plugin-ramp-writer \
    openplc-plugin-image-logger \
    openplc-program-io-demo \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

IMAGE_LINGUAS = ""

# Python, its stdlib packages and the venvs need more than core-image-minimal's 8 MiB.
IMAGE_ROOTFS_EXTRA_SPACE = "65536"
