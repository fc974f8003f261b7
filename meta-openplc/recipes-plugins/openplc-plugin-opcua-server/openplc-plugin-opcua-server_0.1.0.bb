SUMMARY = "openplc-runtime plugin: OPC UA server for I/O image locations (asyncua)"
DESCRIPTION = "examples/plugins/opcua_server of openplc-runtime: serves \
               configured I/O image locations over OPC UA (127.0.0.1:4840 by \
               default), with its venv pre-built: pure-Python wheels, cffi \
               built from its sdist for the target, cryptography from PyPI's \
               binary wheel (opted in, checked against the target)."
SECTION = "console/network"
# What the package ships, each licence from the distribution's metadata:
# the plugin is the project's (Apache-2.0 OR MIT); asyncua LGPL-3.0+;
# aiofiles, pyOpenSSL, sortedcontainers, tzdata Apache-2.0; aiosqlite, pytz
# MIT; cffi MIT-0; cryptography Apache-2.0 OR BSD-3-Clause (its wheel links
# OpenSSL statically: Apache-2.0); pycparser, python-dateutil BSD-3-Clause;
# typing_extensions PSF-2.0. Their own licence files are in the venv's
# *.dist-info/.
LICENSE = "(Apache-2.0 | MIT) & LGPL-3.0-or-later & Apache-2.0 & MIT & MIT-0 & (Apache-2.0 | BSD-3-Clause) & BSD-3-Clause & PSF-2.0"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "\
    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
    file://${COMMON_LICENSE_DIR}/LGPL-3.0-or-later;md5=c51d3eef3be114124d11349ca0d7e117 \
    file://${COMMON_LICENSE_DIR}/MIT-0;md5=f41b3a5f969eb450434cf0e4f33449b9 \
    file://${COMMON_LICENSE_DIR}/BSD-3-Clause;md5=550794465ba0ec5312d6919e203a55f9 \
    file://${COMMON_LICENSE_DIR}/PSF-2.0;md5=76c1502273262a5ebefb50dfb20d7c4f \
"
# CVEs filed against the venv's distributions concern this package.
CVE_PRODUCT = "asyncua cryptography cffi pyopenssl"

# cffi's C extension (built from its sdist below) links libffi.
DEPENDS += "libffi"

# The pure-Python wheels (py3-none-any: every target, every Python X.Y).
# (Lines printed by scripts/fetch-target-wheels --format bitbake.)
SRC_URI = "\
    https://files.pythonhosted.org/packages/bc/8a/340a1555ae33d7354dbca4faa54948d76d89a27ceef032c8c3bc661d003e/aiofiles-25.1.0-py3-none-any.whl;name=aiofiles;downloadfilename=aiofiles-25.1.0-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/00/b7/e3bf5133d697a08128598c8d0abc5e16377b51465a33756de24fa7dee953/aiosqlite-0.22.1-py3-none-any.whl;name=aiosqlite;downloadfilename=aiosqlite-0.22.1-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/3f/0d/2f8fc320a12b6c8b972568a588ae57f4db7e9f7e7f53d02a24d0cebb17d7/asyncua-1.1.8-py3-none-any.whl;name=asyncua;downloadfilename=asyncua-1.1.8-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/b6/ae/315bbeee126a769cbde43cf4908acb4b40408d8bf8bbf334dd7368d8dadf/pycparser-3.12-py3-none-any.whl;name=pycparser;downloadfilename=pycparser-3.12-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/51/ad/2cf6d3fa2fae5c79e1ed9960c0d42badd0f94d81dd12b50604cdc839e648/pyopenssl-26.4.0-py3-none-any.whl;name=pyopenssl;downloadfilename=pyopenssl-26.4.0-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/2f/a9/52b89563d154433d79b51ed1eb4842bf7334cb2696891a7fe135618853d7/python_dateutil-4.0.0-py3-none-any.whl;name=python-dateutil;downloadfilename=python_dateutil-4.0.0-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/b6/25/564f3fc5b70c1398d706c51f2b1470d0ea0b1b2f96fee67877b6f5bdf3b6/pytz-2026.6-py2.py3-none-any.whl;name=pytz;downloadfilename=pytz-2026.6-py2.py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/32/46/9cb0e58b2deb7f82b84065f37f3bffeb12413f947f9388e4cac22c4621ce/sortedcontainers-2.4.0-py2.py3-none-any.whl;name=sortedcontainers;downloadfilename=sortedcontainers-2.4.0-py2.py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/49/d3/b8441a820a491ddfc024b0b0cf0393375b75ea13866d9c66727e54c2fc80/typing_extensions-4.16.0-py3-none-any.whl;name=typing-extensions;downloadfilename=typing_extensions-4.16.0-py3-none-any.whl;unpack=0;subdir=wheelhouse \
    https://files.pythonhosted.org/packages/0a/66/9a06c2227fedfd4919f0eaaa8b94377d9730882a7e4f95823c9a331ab5e1/tzdata-2026.6-py2.py3-none-any.whl;name=tzdata;downloadfilename=tzdata-2026.6-py2.py3-none-any.whl;unpack=0;subdir=wheelhouse \
"
SRC_URI[aiofiles.sha256sum] = "abe311e527c862958650f9438e859c1fa7568a141b22abcd015e120e86a85695"
SRC_URI[aiosqlite.sha256sum] = "21c002eb13823fad740196c5a2e9d8e62f6243bd9e7e4a1f87fb5e44ecb4fceb"
SRC_URI[asyncua.sha256sum] = "40c57151b93537beb77cb3f1a0190d75cef5326e8c40978de28b69e5b41e6ede"
SRC_URI[pycparser.sha256sum] = "a076f3f489b39b43ed13563a1dafe42447445bec2e294154ec5c57fcdda4c85e"
SRC_URI[pyopenssl.sha256sum] = "f0eb0cb2d581d3ad2b9c489468485e7f2ab6727d08401bcf9d824c3caddf3c1c"
SRC_URI[python-dateutil.sha256sum] = "a5e246f79eb80475e691bf93862cead98decd8a498cf53ba0516fcdc0f50dc1c"
SRC_URI[pytz.sha256sum] = "7fed3fee8fd6bd4a2b7b75a8d56021d0624127bf69bd5691f115db929ac570b3"
SRC_URI[sortedcontainers.sha256sum] = "a163dcaede0f1c021485e957a39245190e74249897e2ae4b2aa38595db237ee0"
SRC_URI[typing-extensions.sha256sum] = "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8"
SRC_URI[tzdata.sha256sum] = "0a10eec6e13ef16b627fabed9a5f2ba61a62b1c67f327305f4e7e412a70b4aec"
# cffi: built from its sdist for the target in do_compile (C, against
# libffi, with the target's compiler and flags), setuptools (a wheel for the
# build host) as its PEP 517 backend.
SRC_URI += "https://files.pythonhosted.org/packages/9e/ef/008a1939e372c06329a3fce4279c02f328488f3526744906eeec3da7ad5f/cffi-2.1.1.tar.gz;name=cffi;downloadfilename=cffi-2.1.1.tar.gz;unpack=0;subdir=sdists"
SRC_URI[cffi.sha256sum] = "dd31f52ea1086513bb9df30f8fcee9b8918323ae067a3d5b78bc826a000712be"
SRC_URI += "https://files.pythonhosted.org/packages/a3/dc/17031897dae0efacfea57dfd3a82fdd2a2aeb58e0ff71b77b87e44edc772/setuptools-80.9.0-py3-none-any.whl;name=build-setuptools;downloadfilename=setuptools-80.9.0-py3-none-any.whl;unpack=0;subdir=build-wheelhouse"
SRC_URI[build-setuptools.sha256sum] = "062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922"
# cryptography is Rust: building it from its sdist needs Rust and maturin
# for the target, which this recipe does not do. It takes PyPI's binary
# wheel for the machine's CPU instead (cp311-abi3: one file for every
# CPython >= 3.11, so for wrynose and whinlatter alike), opted in below; the
# class checks its .so against the target (ELF machine, ARM level and float
# ABI). COMPATIBLE_HOST below keeps the recipe to these CPUs.
SRC_URI:append:aarch64 = " https://files.pythonhosted.org/packages/38/6b/61a3f8d8c5e1e49a6cddccafc4015cc1c0021360ab0acb4080e7a423644a/cryptography-50.0.2-cp311-abi3-manylinux_2_28_aarch64.whl;name=cryptography-aarch64;downloadfilename=cryptography-50.0.2-cp311-abi3-manylinux_2_28_aarch64.whl;unpack=0;subdir=wheelhouse"
SRC_URI[cryptography-aarch64.sha256sum] = "f9f6143a8c75945eb960d9eb98905a441394abfa24afaae239d514ffb2586480"
SRC_URI:append:x86-64 = " https://files.pythonhosted.org/packages/1a/f1/b474e930c4d910328780e3940da76f5aa5cbc48ce1fc14e44d239d9ea9db/cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl;name=cryptography-x86-64;downloadfilename=cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl;unpack=0;subdir=wheelhouse"
SRC_URI[cryptography-x86-64.sha256sum] = "4061c0079120205fb760c58acab6443e217307dcf05e3702cf970e0689972856"
# (arm: the machine's TARGET_ARCH override, which oelint-adv does not know.)
# nooelint: oelint.vars.specific
SRC_URI:append:arm = " https://files.pythonhosted.org/packages/7c/52/9af10e80ac16b0fcc2123f9cbd5e7afbd0fd5075bb7a607c592258a39cda/cryptography-50.0.2-cp311-abi3-manylinux_2_31_armv7l.whl;name=cryptography-armv7l;downloadfilename=cryptography-50.0.2-cp311-abi3-manylinux_2_31_armv7l.whl;unpack=0;subdir=wheelhouse"
SRC_URI[cryptography-armv7l.sha256sum] = "ac9ed99d81760c62fe89d5f0815cdfa1ba9a35141cf30f1c2d044f04b4803d2e"
OPENPLC_PLUGIN_BINARY_WHEELS = "cryptography"

# The plugin's files: files/opcua_server, a copy of the repository's
# examples/plugins/opcua_server kept inside the layer so that the layer
# works alone (tests/scripts/test_check_yocto_layer.sh checks the two are equal).
SRC_URI += "file://opcua_server"
S = "${UNPACKDIR}/opcua_server"

OPENPLC_PLUGIN_NAME = "opcua_server"
OPENPLC_PLUGIN_CONFIG = "config.json"
OPENPLC_PLUGIN_REQUIREMENTS = "\
    asyncua==1.1.8 aiofiles==25.1.0 aiosqlite==0.22.1 cffi==2.1.1 \
    cryptography==50.0.2 pycparser==3.12 pyOpenSSL==26.4.0 \
    python-dateutil==4.0.0 pytz==2026.6 sortedcontainers==2.4.0 \
    typing_extensions==4.16.0 tzdata==2026.6 \
"
# The server's key and certificate: created on first start in the state
# directory the runtime gives the plugin; certs/ next to plugin.py (where it
# writes without one) is linked to /var/lib/openplc/plugins/opcua_server/certs
# and created at boot by a tmpfiles.d entry.
OPENPLC_PLUGIN_WRITABLE = "certs"
# asyncio and logging (the server), xml (asyncua's address space),
# zoneinfo (python-dateutil).
OPENPLC_PLUGIN_STDLIB = "python3-asyncio python3-logging python3-xml python3-zoneinfo"

inherit openplc-plugin-venv

RDEPENDS:${PN} += "openplc-runtime-capsule"

# cryptography's wheels exist for these CPUs, for glibc (manylinux) only.
COMPATIBLE_HOST = "(aarch64|x86_64|arm).*-linux"
COMPATIBLE_HOST:libc-musl = "null"
# On 32-bit ARM the wheel is armv7l: ARMv7-A or later, hard float (EABIhf),
# NEON (its .so is built for VFPv3 + NEON). Another ARM machine skips the
# recipe at parse time instead of failing at the class's wheel check.
# nooelint: oelint.task.noanonpython
python () {
    if d.getVar('TARGET_ARCH') == 'arm':
        # The class's reading of the tune: armv7l for ARMv7/ARMv8 AArch32
        # tunes (also cortexa15 & co, by their package archs), the float ABI
        # from TARGET_FPU.
        arch, float_abi = d.getVar('OPENPLC_WHEEL_ARCH'), d.getVar('OPENPLC_FLOAT_ABI')
        neon = 'neon' in (d.getVar('TUNE_FEATURES') or '').split()
        if arch != 'armv7l' or float_abi != 'hard' or not neon:
            raise bb.parse.SkipRecipe("cryptography's armv7l wheel needs ARMv7-A, NEON and hard float; "
                                      "this tune is %s, %s float, %s" % (arch, float_abi, 'NEON' if neon else 'no NEON'))
}
