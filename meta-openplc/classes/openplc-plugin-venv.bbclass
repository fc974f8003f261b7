# openplc-plugin-venv: packages one openplc-runtime plugin with its venv
# pre-built for the target, for a read-only root filesystem.
#
# A plugin recipe only describes: the plugin's files, its pinned sources in
# SRC_URI (each with its sha256), the pins, and a few variables below. The work
# is done by the project's own scripts (from openplc-tools-native), the same
# ones Buildroot and the QEMU test image run:
#   build-target-wheel builds (do_compile) each sdist into a wheel for the
#                      target through PEP 517, offline, with the target's
#                      compiler and flags (CC, CFLAGS, LDFLAGS, LDSHARED as
#                      bitbake exports them), python3-native of the target's
#                      X.Y and ${STAGING_LIBDIR}/python-sysconfigdata (as
#                      oe-core's python_pep517 does), then checks each .so's
#                      ELF machine, float ABI and ARM level;
#   build-target-venv  builds ${D}/usr/lib/openplc/venvs/<name> offline from
#                      those wheels and the fetched pure ones, for the
#                      target's CPU and Python X.Y, with .pyc compiled by
#                      python3-native in unchecked-hash mode; a compiled wheel
#                      from an index is refused unless the recipe opts in
#                      (OPENPLC_PLUGIN_BINARY_WHEELS) and fits the target;
#   install-plugin     installs the files under /usr/lib/openplc/plugins/<name>
#                      and the drop-in /usr/lib/openplc/plugins.conf.d/NN-<name>.conf.
# Nothing here touches the network: everything comes from do_fetch.
#
# SRC_URI, as scripts/fetch-target-wheels --format bitbake prints it:
#   sdists:           ";unpack=0;subdir=sdists" (C libraries they link: DEPENDS)
#   build wheels:     ";unpack=0;subdir=build-wheelhouse" (the sdists' build
#                     requirements for the BUILD host, e.g. setuptools,
#                     Cython: pure py3-none-any wheels keep any build host)
#   target wheels:    ";unpack=0;subdir=wheelhouse" (pure ones; compiled ones
#                     only with OPENPLC_PLUGIN_BINARY_WHEELS)

# The plugin's name: its plugins.conf name and its directory names. Required.
OPENPLC_PLUGIN_NAME ??= ""
# The directory holding the plugin's files after do_unpack, e.g. from
# SRC_URI = "file://<name>" (a directory next to the recipe).
OPENPLC_PLUGIN_SRC ??= "${UNPACKDIR}/${OPENPLC_PLUGIN_NAME}"
# The plugin file and its config file, relative to OPENPLC_PLUGIN_SRC (no
# config: empty).
OPENPLC_PLUGIN_ENTRY ??= "plugin.py"
OPENPLC_PLUGIN_CONFIG ??= ""
# The pinned requirements (requirement specifiers, one word each, e.g.
# "PyYAML==6.0.3"); their wheels must be in SRC_URI. Empty: no venv (the
# plugin uses the standard library only).
OPENPLC_PLUGIN_REQUIREMENTS ??= ""
# Directories below the plugin's own files that it writes to (e.g. "certs"):
# linked to /var/lib/openplc/plugins/<name>/ (install-plugin --writable).
OPENPLC_PLUGIN_WRITABLE ??= ""
# The drop-in's two-digit prefix: plugins start in this order.
OPENPLC_PLUGIN_ORDER ??= "50"
# "1" loads the plugin, "0" installs it disabled (an operator's drop-in in
# /var/lib/openplc/plugins.conf.d can enable it).
OPENPLC_PLUGIN_ENABLED ??= "1"
# The standard-library packages the plugin (and its wheels) import beyond the
# runtime's python3-core. oe-core splits the stdlib; see
# meta/recipes-devtools/python/python3/python3-manifest.json.
OPENPLC_PLUGIN_STDLIB ??= "python3-json python3-logging"

# The distributions whose compiled wheels may come from an index (PyPI's
# manylinux/musllinux builds) instead of their sdists, e.g. "PyYAML": an
# opt-in per distribution. Their .so files are still checked against the
# target's CPU, float ABI and ARM level; any other compiled wheel is refused.
OPENPLC_PLUGIN_BINARY_WHEELS ??= ""

# The target CPU as wheel tags name it, from TARGET_ARCH and, on 32-bit ARM,
# the tune's architecture level (armv7l for ARMv7/ARMv8 AArch32 tunes, armv6l
# for ARMv6): TUNE_FEATURES names it for the generic tunes, the CPU tunes
# (cortexa15, arm1176jzfs...) add it to MACHINEOVERRIDES and
# PACKAGE_EXTRA_ARCHS. The float ABI comes from TARGET_FPU (hard, or soft for
# soft/softfp). The wheels built here are tagged linux_<arch>.
def openplc_wheel_arch(d):
    arch = d.getVar('TARGET_ARCH')
    if arch != 'arm':
        return {'i586': 'i686'}.get(arch, arch)
    features = (d.getVar('TUNE_FEATURES') or '').split()
    features += (d.getVar('MACHINEOVERRIDES') or '').split(':')
    features += (d.getVar('PACKAGE_EXTRA_ARCHS') or '').split()
    if any(f.startswith(('armv7', 'armv8')) for f in features):
        return 'armv7l'
    if any(f.startswith('armv6') for f in features):
        return 'armv6l'
    return 'armv5tel'

OPENPLC_WHEEL_ARCH ??= "${@openplc_wheel_arch(d)}"
OPENPLC_FLOAT_ABI ??= "${@('hard' if d.getVar('TARGET_FPU') == 'hard' else 'soft') if d.getVar('TARGET_ARCH') == 'arm' else ''}"
# The platform tag of opted-in binary wheels: glibc's version from GLIBCVERSION
# (a manylinux_2_N wheel runs on glibc >= 2.N) and the CPU. manylinux's armv7l
# is hard-float ARMv7: an armv6 or soft-float target takes no index wheel by
# name (empty: only wheels built here and pure ones).
def openplc_index_platform(d):
    arch = d.getVar('OPENPLC_WHEEL_ARCH')
    if arch.startswith('armv') and (arch != 'armv7l' or d.getVar('OPENPLC_FLOAT_ABI') != 'hard'):
        return ''
    if d.getVar('TCLIBC') == 'musl':
        return 'musllinux_1_2_' + arch
    return 'manylinux_%s_%s' % (d.getVar('GLIBCVERSION').rstrip('%').replace('.', '_'), arch)

OPENPLC_WHEEL_PLATFORM ??= "${@openplc_index_platform(d)}"

inherit python3native python3-dir

# Sdists and pure wheels are the same for every Python X.Y: one recipe serves
# every release, the class builds for the release's python3 (wrynose: 3.14,
# whinlatter: 3.13). Only an opted-in binary wheel is per X.Y: the class sets
# the override "openplc-pyXY" so a recipe carries one per release and the
# release picks its own:
#   SRC_URI:append:openplc-py314 = " https://.../x-cp314-....whl;name=x-cp314;..."
#   SRC_URI:append:openplc-py313 = " https://.../x-cp313-....whl;name=x-cp313;..."
OVERRIDES .= ":openplc-py${@d.getVar('PYTHON_BASEVERSION').replace('.', '')}"

# python3: the target's sysconfigdata in ${STAGING_LIBDIR}/python-sysconfigdata
# (what python3targetconfig exports; not inherited here, so that do_install's
# python3-native keeps its own).
DEPENDS += "openplc-tools-native python3-native python3-pip-native python3"

FILES:${PN} += "\
    ${nonarch_libdir}/openplc/plugins/${OPENPLC_PLUGIN_NAME} \
    ${nonarch_libdir}/openplc/plugins.conf.d/*-${OPENPLC_PLUGIN_NAME}.conf \
    ${OPENPLC_VENV} \
    ${nonarch_libdir}/tmpfiles.d/openplc-plugin-${OPENPLC_PLUGIN_NAME}.conf \
    ${datadir}/openplc/factory/${OPENPLC_PLUGIN_NAME} \
"
RDEPENDS:${PN} += "openplc-runtime python3-core ${OPENPLC_PLUGIN_STDLIB}"

OPENPLC_TOOLS = "${STAGING_LIBEXECDIR_NATIVE}/openplc-tools"
OPENPLC_VENV = "${nonarch_libdir}/openplc/venvs/${OPENPLC_PLUGIN_NAME}"

# A recipe without a plugin name must fail when it is parsed, naming the recipe,
# not at do_install. (One getVar: not the expensive kind of anonymous python.)
# nooelint: oelint.task.noanonpython
python () {
    if not d.getVar('OPENPLC_PLUGIN_NAME'):
        bb.fatal('%s: set OPENPLC_PLUGIN_NAME (the plugin\'s name in plugins.conf) before inheriting openplc-plugin-venv' % d.getVar('FILE'))
}

# Nothing is built in the (non-existent) source tree.
B = "${WORKDIR}/build"
do_configure[noexec] = "1"

# The shared-object link command of setuptools (as setuptools3-base exports it).
export LDSHARED = "${CCLD} -shared"

# The wheelhouse build-target-venv reads: the fetched target wheels and a wheel
# built from each sdist; and the requirements file, from
# OPENPLC_PLUGIN_REQUIREMENTS.
do_compile() {
    rm -rf ${B}/wheelhouse ${B}/requirements.txt
    mkdir -p ${B}/wheelhouse
    if [ -d ${UNPACKDIR}/wheelhouse ]; then
        cp ${UNPACKDIR}/wheelhouse/*.whl ${B}/wheelhouse/
    fi
    build_wheels_option=""
    if [ -d ${UNPACKDIR}/build-wheelhouse ]; then
        build_wheels_option="--build-wheelhouse ${UNPACKDIR}/build-wheelhouse"
    fi
    float_option=""
    if [ -n "${OPENPLC_FLOAT_ABI}" ]; then
        float_option="--float-abi ${OPENPLC_FLOAT_ABI}"
    fi
    for sdist in ${UNPACKDIR}/sdists/*.tar.gz ${UNPACKDIR}/sdists/*.zip; do
        [ -f "$sdist" ] || continue
        ${OPENPLC_TOOLS}/build-target-wheel \
            --sdist $sdist \
            --out ${B}/wheelhouse \
            --python-version ${PYTHON_BASEVERSION} \
            --arch ${OPENPLC_WHEEL_ARCH} $float_option \
            --sysconfigdata ${STAGING_LIBDIR}/python-sysconfigdata \
            --sysconfigdata-name _sysconfigdata \
            --build-python ${PYTHON} $build_wheels_option
    done
    for requirement in ${OPENPLC_PLUGIN_REQUIREMENTS}; do
        echo "$requirement" >>${B}/requirements.txt
    done
}

# In do_install (under pseudo), so every file of the venv is owned by root.
do_install() {
    venv_option=""
    index_platform_option=""
    if [ -n "${OPENPLC_WHEEL_PLATFORM}" ]; then
        index_platform_option="--platform ${OPENPLC_WHEEL_PLATFORM}"
    fi
    float_option=""
    if [ -n "${OPENPLC_FLOAT_ABI}" ]; then
        float_option="--float-abi ${OPENPLC_FLOAT_ABI}"
    fi
    if [ -s ${B}/requirements.txt ]; then
        ${OPENPLC_TOOLS}/build-target-venv \
            --name ${OPENPLC_PLUGIN_NAME} \
            --requirements ${B}/requirements.txt \
            --wheelhouse ${B}/wheelhouse \
            --python-version ${PYTHON_BASEVERSION} \
            --platform linux_${OPENPLC_WHEEL_ARCH} $index_platform_option $float_option \
            --binary-wheels "${OPENPLC_PLUGIN_BINARY_WHEELS}" \
            --prefix ${OPENPLC_VENV} \
            --destdir ${D} \
            --target-python ${bindir}/python3 \
            --compile-python ${PYTHON} \
            --host-python ${PYTHON}
        venv_option="--venv"
    fi
    config_option=""
    if [ -n "${OPENPLC_PLUGIN_CONFIG}" ]; then
        config_option="--config ${OPENPLC_PLUGIN_CONFIG}"
    fi
    writable_options=""
    for subpath in ${OPENPLC_PLUGIN_WRITABLE}; do
        writable_options="$writable_options --writable $subpath"
    done
    enabled_option=""
    if [ "${OPENPLC_PLUGIN_ENABLED}" = "0" ]; then
        enabled_option="--disabled"
    fi
    ${OPENPLC_TOOLS}/install-plugin \
        --destdir ${D} \
        --name ${OPENPLC_PLUGIN_NAME} \
        --source ${OPENPLC_PLUGIN_SRC} \
        --entry ${OPENPLC_PLUGIN_ENTRY} \
        --order ${OPENPLC_PLUGIN_ORDER} \
        $config_option $venv_option $writable_options $enabled_option
}
