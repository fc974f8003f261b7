SUMMARY = "Keeps a RAUC-installed root slot only once openplc-runtime is READY"
DESCRIPTION = "openplc-update-health.service: after a boot into a slot RAUC \
               installed, waits for openplc-runtime to report READY with no \
               plugin failed, then runs rauc status mark-good; otherwise \
               records why under /var/lib/openplc/update/ and reboots so the \
               bootloader counts the attempt. Inert on a system RAUC did not \
               boot."
SECTION = "console/utils"
CVE_PRODUCT = "openplc-runtime"
LICENSE = "Apache-2.0 | MIT"
# The two files are openplc-runtime's (dual-licensed as the project is); the
# layer alone has no copy of the project's LICENSE, so the common texts.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
                    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

# Copies of the repository's rootfs-overlay/usr/lib/systemd/system/
# openplc-update-health.service and rootfs-overlay/usr/libexec/openplc/
# update-health, kept in the layer so that it works alone
# (tests/scripts/test_check_yocto_rauc.sh checks they are equal).
SRC_URI = "file://openplc-update-health.service \
           file://update-health"
S = "${UNPACKDIR}"

inherit allarch systemd

SYSTEMD_SERVICE:${PN} = "openplc-update-health.service"

do_install() {
    # The unit runs the script from where it is installed here.
    grep -qx 'ExecStart=${libexecdir}/openplc/update-health' ${UNPACKDIR}/openplc-update-health.service ||
        bbfatal "openplc-update-health.service: ExecStart= is not ${libexecdir}/openplc/update-health"
    install -D -m 0644 ${UNPACKDIR}/openplc-update-health.service \
        ${D}${systemd_system_unitdir}/openplc-update-health.service
    install -D -m 0755 ${UNPACKDIR}/update-health ${D}${libexecdir}/openplc/update-health
}

# What it watches; rauc (which it calls) comes with the image's rauc, and
# without rauc it does nothing.
RDEPENDS:${PN} = "openplc-runtime"
