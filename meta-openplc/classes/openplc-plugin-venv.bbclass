# openplc-plugin-venv: packages one openplc-runtime plugin with its venv
# pre-built for the target, for a read-only root filesystem.
#
# A plugin recipe only describes: the plugin's files and its pinned wheels in
# SRC_URI (each with its sha256), the pins, and a few variables below. The work
# is done by the project's own scripts (from openplc-tools-native), the same
# ones Buildroot and the QEMU test image run:
#   build-target-venv  builds ${D}/usr/lib/openplc/venvs/<name> offline from the
#                      fetched wheels, for the target's CPU and Python X.Y, with
#                      .pyc compiled by python3-native (same X.Y) in
#                      unchecked-hash mode: nothing is written at import time;
#   install-plugin     installs the files under /usr/lib/openplc/plugins/<name>
#                      and the drop-in /usr/lib/openplc/plugins.conf.d/NN-<name>.conf.
# Nothing here touches the network: the wheels come from do_fetch.
#
# Wheels go to the wheelhouse with ";unpack=0;subdir=wheelhouse" (the format
# scripts/fetch-target-wheels --format bitbake prints).

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

# The wheels' platform tag for the target: glibc's version from GLIBCVERSION
# (a manylinux_2_N wheel runs on glibc >= 2.N), the CPU as wheels name it.
OPENPLC_WHEEL_ARCH ??= "${@{'arm': 'armv7l'}.get(d.getVar('TARGET_ARCH'), d.getVar('TARGET_ARCH'))}"
OPENPLC_WHEEL_PLATFORM ??= "manylinux_${@d.getVar('GLIBCVERSION').rstrip('%').replace('.', '_')}_${OPENPLC_WHEEL_ARCH}"
OPENPLC_WHEEL_PLATFORM:libc-musl ??= "musllinux_1_2_${OPENPLC_WHEEL_ARCH}"

inherit python3native python3-dir

# The target Python's X.Y as an override, "openplc-pyXY" (wrynose: openplc-py314,
# whinlatter: openplc-py313), so that one recipe carries each release's
# compiled wheels and the release picks its own:
#   SRC_URI:append:openplc-py314 = " https://.../x-cp314-....whl;name=x-cp314;..."
#   SRC_URI:append:openplc-py313 = " https://.../x-cp313-....whl;name=x-cp313;..."
# (pure-Python py3-none-any wheels need no override).
OVERRIDES .= ":openplc-py${@d.getVar('PYTHON_BASEVERSION').replace('.', '')}"

DEPENDS += "openplc-tools-native python3-native python3-pip-native"

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

# The requirements file build-target-venv reads, from OPENPLC_PLUGIN_REQUIREMENTS.
do_compile() {
    rm -f ${B}/requirements.txt
    for requirement in ${OPENPLC_PLUGIN_REQUIREMENTS}; do
        echo "$requirement" >>${B}/requirements.txt
    done
}

# In do_install (under pseudo), so every file of the venv is owned by root.
do_install() {
    venv_option=""
    if [ -s ${B}/requirements.txt ]; then
        ${OPENPLC_TOOLS}/build-target-venv \
            --name ${OPENPLC_PLUGIN_NAME} \
            --requirements ${B}/requirements.txt \
            --wheelhouse ${UNPACKDIR}/wheelhouse \
            --python-version ${PYTHON_BASEVERSION} \
            --platform ${OPENPLC_WHEEL_PLATFORM} \
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
