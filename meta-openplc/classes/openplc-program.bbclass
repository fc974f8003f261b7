# openplc-program: compiles one PLC program into the image as a native plugin
# (plugins.conf type 1) with its drop-in.
#
# The program's source here is STruC++'s C++ output (generated.hpp,
# configuration.cpp, pou_*.cpp, generated_debug.cpp, debug-map.json), what
# the OpenPLC editor or scripts/build-plc-program --keep produces from a .st
# file: no Node.js and no STruC++ run inside BitBake. It is compiled with
# the target's C++ compiler and the distro's flags ($CXX $CXXFLAGS
# $LDFLAGS) together with openplc-runtime's glue, by the project's own
# scripts (from openplc-tools-native), the same ones Buildroot and the QEMU
# test tiers run:
#   build-plc-program  STruC++ output + glue -> libplc_<name>.so and
#                      debug-map.json (--from-output: no STruC++ run);
#   install-plugin     installs them under /usr/lib/openplc/plugins/<name>
#                      and the drop-in /usr/lib/openplc/plugins.conf.d/NN-<name>.conf
#                      (type 1).
# The STruC++ runtime headers the output includes come from STruC++'s git
# repository at the pinned commit that made the output (do_fetch): they are
# compiled into the program under the STruC++ Runtime Library Exception.

# The program's name: its plugins.conf name, libplc_<name>.so. Required.
OPENPLC_PROGRAM_NAME ??= ""
# The directory holding the STruC++ output after do_unpack, e.g. from
# SRC_URI = "file://<name>/generated;subdir=${BP}".
OPENPLC_PROGRAM_OUTPUT ??= "${S}/${OPENPLC_PROGRAM_NAME}/generated"
# The drop-in's two-digit prefix, and "0" to install the program disabled.
OPENPLC_PROGRAM_ORDER ??= "50"
OPENPLC_PROGRAM_ENABLED ??= "1"
# What the program's library carries besides the program (the recipe's
# LICENSE): STruC++'s runtime headers, GPL-3.0-or-later with the STruC++
# Runtime Library Exception (COPYING.RUNTIME), which allows programs under
# any licence.
LICENSE:append = " & GPL-3.0-or-later-with-STruCpp-runtime-exception"
LIC_FILES_CHKSUM:append = " \
    file://strucpp/COPYING;md5=7bdca2796fc7c8462d9bb5e8e0e030f2 \
    file://strucpp/COPYING.RUNTIME;md5=0d66deea41c8984712753d83a0d0b3fc \
"
NO_GENERIC_LICENSE[GPL-3.0-or-later-with-STruCpp-runtime-exception] = "strucpp/COPYING.RUNTIME"

DEPENDS += "openplc-tools-native"

# STruC++ at the commit whose runtime headers match the output (0.6.1,
# the snapshot scripts/install-deps --program builds STruC++ from).
OPENPLC_STRUCPP_URI ??= "git://github.com/Autonomy-Logic/STruCpp.git;protocol=https;branch=main"
SRCREV_strucpp ??= "fb7980f5385d33ce60c87fb9395f15f55c6bc477"
SRC_URI:append = " ${OPENPLC_STRUCPP_URI};name=strucpp;destsuffix=${BP}/strucpp"
OPENPLC_STRUCPP_DIR = "${S}/strucpp"

FILES:${PN} += "\
    ${nonarch_libdir}/openplc/plugins/${OPENPLC_PROGRAM_NAME} \
    ${nonarch_libdir}/openplc/plugins.conf.d/*-${OPENPLC_PROGRAM_NAME}.conf \
"
RDEPENDS:${PN} += "openplc-runtime"

OPENPLC_TOOLS = "${STAGING_LIBEXECDIR_NATIVE}/openplc-tools"

# A recipe without a program name must fail when it is parsed, naming the
# recipe, not at do_compile. (One getVar: not the expensive kind of anonymous python.)
# nooelint: oelint.task.noanonpython
python () {
    if not d.getVar('OPENPLC_PROGRAM_NAME'):
        bb.fatal('%s: set OPENPLC_PROGRAM_NAME (the program\'s name in plugins.conf) before inheriting openplc-program' % d.getVar('FILE'))
}

B = "${WORKDIR}/build"
do_configure[noexec] = "1"

# build-plc-program runs ${CXX:-g++} as one command: the target's compiler
# with the distro's flags ($CXX, $CXXFLAGS, $LDFLAGS as bitbake exports them)
# becomes one, a wrapper in ${B}. Its temporary files go under ${B} too.
do_compile() {
    rm -rf ${B}/out ${B}/bin ${B}/tmp
    mkdir -p ${B}/bin ${B}/tmp
    printf '#!/bin/sh\nexec %s %s "$@" %s\n' "$CXX" "$CXXFLAGS" "$LDFLAGS" >${B}/bin/target-cxx
    chmod 0755 ${B}/bin/target-cxx
    TMPDIR=${B}/tmp CXX=${B}/bin/target-cxx \
        ${OPENPLC_TOOLS}/program/scripts/build-plc-program \
        --from-output ${OPENPLC_PROGRAM_OUTPUT} \
        --strucpp ${OPENPLC_STRUCPP_DIR} \
        --name ${OPENPLC_PROGRAM_NAME} \
        --target host \
        -o ${B}/out
}

# In do_install (under pseudo), so the files are owned by root.
do_install() {
    enabled_option=""
    if [ "${OPENPLC_PROGRAM_ENABLED}" = "0" ]; then
        enabled_option="--disabled"
    fi
    ${OPENPLC_TOOLS}/install-plugin \
        --destdir ${D} \
        --name ${OPENPLC_PROGRAM_NAME} \
        --source ${B}/out \
        --entry libplc_${OPENPLC_PROGRAM_NAME}.so \
        --order ${OPENPLC_PROGRAM_ORDER} \
        --type 1 \
        $enabled_option
}
