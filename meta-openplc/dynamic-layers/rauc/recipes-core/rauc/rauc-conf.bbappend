# meta-openplc's example RAUC system configuration (files/system.conf): the
# A/B layout of the repository's QEMU system tier (GRUB EFI, two root slots
# by partition label, /var/lib on a shared data partition). It is an example:
# a board with another layout or bootloader gives its own system.conf in its
# own rauc-conf.bbappend (a layer of higher priority, or BBMASK this one).
#
# RAUC_KEYRING_FILE (meta-rauc's variable) names the keyring the device
# trusts: a file on FILESPATH, or an absolute path (kas/openplc-rauc.yml sets
# one). It is installed as /usr/lib/rauc/<its file name>, which system.conf's
# [keyring] path names.
#
# (oelint-adv's noncoreoverride wants a bbappend's lines limited to a MACHINE
# or DISTRO override; this one is read only with meta-rauc in the build, and
# giving rauc-conf a system.conf is what meta-rauc asks a layer to do.)
# nooelint: oelint.vars.noncoreoverride
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"

# The compatible string a bundle must carry to be installed; openplc-bundle
# uses the same variable and default.
# nooelint: oelint.vars.noncoreoverride
OPENPLC_RAUC_COMPATIBLE ??= "openplc-${MACHINE}"

# system.conf describes this machine's partitions.
# nooelint: oelint.vars.noncoreoverride
PACKAGE_ARCH = "${MACHINE_ARCH}"

# nooelint: oelint.vars.noncoreoverride
do_install:append() {
    keyring=$(basename "${RAUC_KEYRING_FILE}")
    sed -i -e "s#@OPENPLC_RAUC_COMPATIBLE@#${OPENPLC_RAUC_COMPATIBLE}#" \
        -e "s#@OPENPLC_RAUC_KEYRING@#$keyring#" \
        ${D}${nonarch_libdir}/rauc/system.conf
    if grep -q '@OPENPLC_RAUC_' ${D}${nonarch_libdir}/rauc/system.conf; then
        bbfatal "rauc-conf: ${nonarch_libdir}/rauc/system.conf still holds a @OPENPLC_RAUC_...@ placeholder"
    fi
}
