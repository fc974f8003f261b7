SUMMARY = "openplc-runtime example plugin: logs watched I/O addresses (tabulate)"
DESCRIPTION = "examples/plugins/image_logger of openplc-runtime, with its venv \
               pre-built from tabulate's pure-Python wheel."
SECTION = "console/utils"
# What the package ships, from each distribution's metadata: the plugin is
# the project's (Apache-2.0 OR MIT), tabulate 0.9.0 is MIT (its METADATA; its
# licence file is in the venv's dist-info). check-yocto-layer step 6 reads
# the staged venv's METADATA files against this line.
LICENSE = "(Apache-2.0 | MIT) & MIT"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "\
    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
"
# The venv ships tabulate: CVEs filed against it concern this package.
CVE_PRODUCT = "tabulate"

SRC_URI = "https://files.pythonhosted.org/packages/40/44/4a5f08c96eb108af5cb50b41f76142f0afa346dfa99d5296fe7202a11854/tabulate-0.9.0-py3-none-any.whl;name=tabulate;downloadfilename=tabulate-0.9.0-py3-none-any.whl;unpack=0;subdir=wheelhouse"
SRC_URI[tabulate.sha256sum] = "024ca478df22e9340661486f85298cff5f6dcdba14f3813e8830015b9ed1948f"
# The plugin's files: files/image_logger, a copy of the repository's
# examples/plugins/image_logger kept inside the layer so that the layer works
# alone (tests/scripts/test_check_yocto_layer.sh checks the two are equal).
SRC_URI += "file://image_logger"
S = "${UNPACKDIR}/image_logger"

OPENPLC_PLUGIN_NAME = "image_logger"
OPENPLC_PLUGIN_CONFIG = "config.json"
OPENPLC_PLUGIN_REQUIREMENTS = "tabulate==0.9.0"
# The plugin reads JSON; tabulate imports html.
OPENPLC_PLUGIN_STDLIB = "python3-json python3-html"

inherit openplc-plugin-venv

RDEPENDS:${PN} += "openplc-runtime-capsule"
