SUMMARY = "openplc-runtime example plugin: ramp and sine test signals (PyYAML)"
DESCRIPTION = "examples/plugins/ramp_writer of openplc-runtime, with its venv \
               pre-built from PyYAML's compiled aarch64 wheel."
SECTION = "console/utils"
LICENSE = "MIT"
# The plugin has no licence text of its own: the project is MIT (Cargo.toml),
# PyYAML is MIT.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"
# The venv ships PyYAML: CVEs filed against it concern this package.
CVE_PRODUCT = "pyyaml:pyyaml"

# examples/plugins/ramp_writer/requirements.txt pins PyYAML 6.0.2, which has
# no cp314 wheels; 6.0.3 is the first that has. The compiled wheel is per
# target Python: the class's openplc-pyXY override picks the release's
# (wrynose: 3.14, whinlatter: 3.13). (Lines printed by
# scripts/fetch-target-wheels --format bitbake, each with its own name.)
# nooelint: oelint.vars.specific
SRC_URI:append:openplc-py314 = " https://files.pythonhosted.org/packages/92/b5/47e807c2623074914e29dabd16cbbdd4bf5e9b2db9f8090fa64411fc5382/pyyaml-6.0.3-cp314-cp314-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl;name=pyyaml-cp314;downloadfilename=pyyaml-6.0.3-cp314-cp314-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl;unpack=0;subdir=wheelhouse"
SRC_URI[pyyaml-cp314.sha256sum] = "501a031947e3a9025ed4405a168e6ef5ae3126c59f90ce0cd6f2bfc477be31b7"
# nooelint: oelint.vars.specific
SRC_URI:append:openplc-py313 = " https://files.pythonhosted.org/packages/50/31/b20f376d3f810b9b2371e72ef5adb33879b25edb7a6d072cb7ca0c486398/pyyaml-6.0.3-cp313-cp313-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl;name=pyyaml-cp313;downloadfilename=pyyaml-6.0.3-cp313-cp313-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl;unpack=0;subdir=wheelhouse"
SRC_URI[pyyaml-cp313.sha256sum] = "ee2922902c45ae8ccada2c5b501ab86c36525b883eff4255313a253a3160861c"

# The plugin's files: files/ramp_writer, a copy of the repository's
# examples/plugins/ramp_writer kept inside the layer so that the layer works
# alone (tests/scripts/test_check_yocto_layer.sh checks the two are equal).
# (The wheel's :append above lands first in SRC_URI; oelint-adv cannot see that.)
# nooelint: oelint.vars.srcurifile
SRC_URI += "file://ramp_writer"
S = "${UNPACKDIR}/ramp_writer"

OPENPLC_PLUGIN_NAME = "ramp_writer"
OPENPLC_PLUGIN_CONFIG = "config.yaml"
OPENPLC_PLUGIN_REQUIREMENTS = "PyYAML==6.0.3"
# PyYAML imports base64 (python3-netclient) and datetime.
OPENPLC_PLUGIN_STDLIB = "python3-datetime python3-netclient"

inherit openplc-plugin-venv

RDEPENDS:${PN} += "openplc-runtime-capsule"

# The wheel above is PyYAML's aarch64 build; another CPU needs its own wheel.
# On other machines the recipe is skipped, and openplc-image leaves it out.
COMPATIBLE_HOST = "aarch64.*-linux"

# No INSANE_SKIP: PyYAML's wheel ships _yaml.*.so with its symbols (not
# stripped), so do_package strips it and splits them into -dbg as usual;
# scripts/check-yocto-layer checks that on the staged files.
