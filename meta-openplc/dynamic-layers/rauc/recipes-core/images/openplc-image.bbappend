# With meta-rauc and "rauc" in DISTRO_FEATURES (kas/openplc-rauc.yml): RAUC
# and the health gate in openplc-image, and an ext4 root filesystem image for
# openplc-bundle's rootfs slot. Without "rauc" the image is unchanged.
OPENPLC_IMAGE_RAUC = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', '1', '0', d)}"
IMAGE_INSTALL:append = "${@oe.utils.vartrue('OPENPLC_IMAGE_RAUC', ' rauc openplc-update-health', '', d)}"
# rauc recommends rauc-mark-good, which marks every boot good as soon as it
# happens; openplc-update-health does it only once openplc-runtime is READY
# with no plugin failed, so rauc-mark-good stays out.
BAD_RECOMMENDATIONS:append = "${@oe.utils.vartrue('OPENPLC_IMAGE_RAUC', ' rauc-mark-good', '', d)}"
IMAGE_FSTYPES:append = "${@oe.utils.vartrue('OPENPLC_IMAGE_RAUC', ' ext4', '', d)}"
