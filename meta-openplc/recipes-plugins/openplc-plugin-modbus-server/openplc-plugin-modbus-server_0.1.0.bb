SUMMARY = "openplc-runtime plugin: Modbus/TCP server for the I/O image (pymodbus)"
DESCRIPTION = "examples/plugins/modbus_server of openplc-runtime: serves the \
               I/O image over Modbus/TCP on 127.0.0.1:5020, with its venv \
               pre-built from pymodbus's pure-Python wheel."
SECTION = "console/network"
# What the package ships, from each distribution's metadata: the plugin is
# the project's (Apache-2.0 OR MIT), pymodbus 3.6.9 is BSD-3-Clause (its
# wheel's METADATA; its LICENSE and AUTHORS.rst are in the venv's
# pymodbus-3.6.9.dist-info/).
LICENSE = "(Apache-2.0 | MIT) & BSD-3-Clause"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "\
    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
    file://${COMMON_LICENSE_DIR}/BSD-3-Clause;md5=550794465ba0ec5312d6919e203a55f9 \
"
# The venv ships pymodbus: CVEs filed against it concern this package.
CVE_PRODUCT = "pymodbus"

# pymodbus 3.6.9 is pure Python (py3-none-any): one wheel for every target
# and every Python X.Y, so the recipe runs on every machine.
# (Printed by scripts/fetch-target-wheels --format bitbake.)
SRC_URI = "https://files.pythonhosted.org/packages/a2/1e/579762ad921bb7c0dd5108ae00cedd07b7baa150083d210bcd2b1aeb4262/pymodbus-3.6.9-py3-none-any.whl;name=pymodbus;downloadfilename=pymodbus-3.6.9-py3-none-any.whl;unpack=0;subdir=wheelhouse"
SRC_URI[pymodbus.sha256sum] = "91dea79f157ca2d26c137190de76dce5a6c99c0ea514d2d1bf3980acbbdaf29c"
# The plugin's files: files/modbus_server, a copy of the repository's
# examples/plugins/modbus_server kept inside the layer so that the layer
# works alone (tests/scripts/test_check_yocto_layer.sh checks the two are equal).
SRC_URI += "file://modbus_server"
S = "${UNPACKDIR}/modbus_server"

OPENPLC_PLUGIN_NAME = "modbus_server"
OPENPLC_PLUGIN_CONFIG = "config.json"
OPENPLC_PLUGIN_REQUIREMENTS = "pymodbus==3.6.9"
# The plugin and pymodbus run an asyncio server and log through logging
# (json, which the config needs, comes with openplc-runtime).
OPENPLC_PLUGIN_STDLIB = "python3-asyncio python3-logging"

inherit openplc-plugin-venv

RDEPENDS:${PN} += "openplc-runtime-capsule"
