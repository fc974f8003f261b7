SUMMARY = "openplc-runtime's image-build scripts (venvs, plugins, PLC programs)"
DESCRIPTION = "The scripts the openplc-plugin-venv class runs to pre-build a \
               plugin's venv and stage the plugin with its plugins.conf drop-in, \
               and the one the openplc-program class compiles a PLC program with. \
               They come from the same source as the runtime, so the layer never \
               carries copies."
SECTION = "devel"
CVE_PRODUCT = "openplc-runtime"
LICENSE = "Apache-2.0 | MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=4f2dde46d83167a9725dc833e8ecf734"

require openplc-source.inc

inherit_defer native

do_configure[noexec] = "1"
do_compile[noexec] = "1"

# build-target-venv and build-target-wheel find their helpers in lib/ next to them; the class runs
# them from ${STAGING_LIBEXECDIR_NATIVE}/openplc-tools.
do_install() {
    install -D -m 0755 ${S}/scripts/build-target-venv ${D}${libexecdir}/openplc-tools/build-target-venv
    install -D -m 0755 ${S}/scripts/install-plugin ${D}${libexecdir}/openplc-tools/install-plugin
    install -D -m 0644 ${S}/scripts/lib/target_venv.py ${D}${libexecdir}/openplc-tools/lib/target_venv.py
    install -D -m 0755 ${S}/scripts/build-target-wheel ${D}${libexecdir}/openplc-tools/build-target-wheel
    install -D -m 0644 ${S}/scripts/lib/target_elf.py ${D}${libexecdir}/openplc-tools/lib/target_elf.py
    # build-plc-program finds lib/ next to itself and the glue at
    # ../src/program/glue: program/ keeps the repository's layout.
    install -D -m 0755 ${S}/scripts/build-plc-program ${D}${libexecdir}/openplc-tools/program/scripts/build-plc-program
    install -D -m 0644 ${S}/scripts/lib/plc_toolchain.sh ${D}${libexecdir}/openplc-tools/program/scripts/lib/plc_toolchain.sh
    install -d ${D}${libexecdir}/openplc-tools/program/src/program
    cp -R --no-preserve=ownership ${S}/src/program/glue ${D}${libexecdir}/openplc-tools/program/src/program/glue
}
