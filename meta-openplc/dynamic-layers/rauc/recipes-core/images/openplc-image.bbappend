# With meta-rauc and "rauc" in DISTRO_FEATURES (kas/openplc-rauc.yml): RAUC
# and the health gate in openplc-image, and an ext4 root filesystem image for
# openplc-bundle's rootfs slot. Without "rauc" the image is unchanged.
# (oelint-adv's noncoreoverride wants every line of a bbappend limited to a
# MACHINE or DISTRO override, so that adding a layer changes nothing: these
# apply to meta-openplc's own image, only with meta-rauc in the build, and
# only with DISTRO_FEATURES "rauc".)
# nooelint: oelint.vars.noncoreoverride
OPENPLC_IMAGE_RAUC = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', '1', '0', d)}"
# nooelint: oelint.vars.noncoreoverride
IMAGE_INSTALL:append = "${@oe.utils.vartrue('OPENPLC_IMAGE_RAUC', ' rauc openplc-update-health', '', d)}"
# rauc recommends rauc-mark-good, which marks every boot good as soon as it
# happens; openplc-update-health does it only once openplc-runtime is READY
# with no plugin failed, so rauc-mark-good stays out.
# nooelint: oelint.vars.noncoreoverride
BAD_RECOMMENDATIONS:append = "${@oe.utils.vartrue('OPENPLC_IMAGE_RAUC', ' rauc-mark-good', '', d)}"
# nooelint: oelint.vars.noncoreoverride
IMAGE_FSTYPES:append = "${@oe.utils.vartrue('OPENPLC_IMAGE_RAUC', ' ext4', '', d)}"
