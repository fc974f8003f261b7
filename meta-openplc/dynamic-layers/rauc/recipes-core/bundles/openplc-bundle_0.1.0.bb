SUMMARY = "Example RAUC bundle of openplc-image (one rootfs slot)"
DESCRIPTION = "A signed RAUC bundle (verity format) holding openplc-image's \
               ext4 root filesystem for the rootfs slot class of \
               meta-openplc's example system.conf."
SECTION = "images"
LICENSE = "MIT"
# Nothing to fetch: the bundle is made from openplc-image's deployed image.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_FORMAT = "verity"
# The same variable and default as the rauc-conf.bbappend's system.conf: a
# device installs only bundles whose compatible matches its own.
OPENPLC_RAUC_COMPATIBLE ??= "openplc-${MACHINE}"
RAUC_BUNDLE_COMPATIBLE = "${OPENPLC_RAUC_COMPATIBLE}"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "openplc-image"
RAUC_SLOT_rootfs[fstype] = "ext4"
# Signing: RAUC_KEY_FILE and RAUC_CERT_FILE (meta-rauc's variables, absolute
# paths on the build host), set in local.conf or the distro; do_bundle stops
# without them. The certificate must chain to the device's RAUC_KEYRING_FILE.
