SUMMARY = "openplc-runtime example plugin: ramp and sine test signals (PyYAML)"
DESCRIPTION = "examples/plugins/ramp_writer of openplc-runtime, with its venv \
               pre-built with PyYAML and its C extension, built from source."
SECTION = "console/utils"
# What the package ships, from each distribution's metadata: the plugin is
# the project's (Apache-2.0 OR MIT), PyYAML 6.0.3 is MIT (its METADATA; its
# licence file is in the venv's dist-info). check-yocto-layer step 6 reads
# the staged venv's METADATA files against this line.
LICENSE = "(Apache-2.0 | MIT) & MIT"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "\
    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
"
# The venv ships PyYAML: CVEs filed against it concern this package.
CVE_PRODUCT = "pyyaml:pyyaml"

# PyYAML's C extension links libyaml; without it PyYAML's build would
# silently fall back to pure Python, so the build is told to insist.
DEPENDS += "libyaml"
export PYYAML_FORCE_LIBYAML = "1"

# PyYAML from its sdist, with its C extension built by the target toolchain
# against the target's libyaml (as oe-core's python3-pyyaml does), for every
# machine and every release's python3. Its build requirements are wheels for
# the build host, pure ones so any build host takes them. (Lines printed by
# scripts/fetch-target-wheels --sdist PyYAML==6.0.3 --build-requirements.)
SRC_URI = "https://files.pythonhosted.org/packages/05/8e/961c0007c59b8dd7729d542c61a4d537767a59645b82a0b521206e1e25c2/pyyaml-6.0.3.tar.gz;name=pyyaml-sdist;downloadfilename=pyyaml-6.0.3.tar.gz;unpack=0;subdir=sdists"
SRC_URI[pyyaml-sdist.sha256sum] = "d76623373421df22fb4cf8817020cbb7ef15c725b9d5e45f17e189bfc384190f"
SRC_URI += "https://files.pythonhosted.org/packages/a3/dc/17031897dae0efacfea57dfd3a82fdd2a2aeb58e0ff71b77b87e44edc772/setuptools-80.9.0-py3-none-any.whl;name=build-setuptools;downloadfilename=setuptools-80.9.0-py3-none-any.whl;unpack=0;subdir=build-wheelhouse"
SRC_URI[build-setuptools.sha256sum] = "062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922"
SRC_URI += "https://files.pythonhosted.org/packages/7c/24/f7351052cf9db771fe4f32fca47fd66e6d9b53d8613b17faf7d130a9d553/cython-3.1.4-py3-none-any.whl;name=build-cython;downloadfilename=cython-3.1.4-py3-none-any.whl;unpack=0;subdir=build-wheelhouse"
SRC_URI[build-cython.sha256sum] = "d194d95e4fa029a3f6c7d46bdd16d973808c7ea4797586911fdb67cb98b1a2c6"
# The plugin's files: files/ramp_writer, a copy of the repository's
# examples/plugins/ramp_writer kept inside the layer so that the layer works
# alone (tests/scripts/test_check_yocto_layer.sh checks the two are equal).
SRC_URI += "file://ramp_writer"
S = "${UNPACKDIR}/ramp_writer"

OPENPLC_PLUGIN_NAME = "ramp_writer"
OPENPLC_PLUGIN_CONFIG = "config.yaml"
OPENPLC_PLUGIN_REQUIREMENTS = "PyYAML==6.0.3"
# PyYAML imports base64 (python3-netclient) and datetime.
OPENPLC_PLUGIN_STDLIB = "python3-datetime python3-netclient"

inherit openplc-plugin-venv

RDEPENDS:${PN} += "openplc-runtime-capsule"

# No INSANE_SKIP: _yaml.*.so is built here with the distro's flags and its
# symbols (not stripped), so do_package strips it and splits them into -dbg as
# usual; scripts/check-yocto-layer checks that on the staged files.
