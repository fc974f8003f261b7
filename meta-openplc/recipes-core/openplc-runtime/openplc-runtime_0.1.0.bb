SUMMARY = "Runs OpenPLC-style Python plugins, each with its own venv, under systemd"
DESCRIPTION = "openplc-runtime embeds CPython (pyo3) and runs OpenPLC v4 Python \
               plugins unchanged, each with its own pre-built venv, on read-only \
               root filesystems."
SECTION = "console/utils"
CVE_PRODUCT = "openplc-runtime"
LICENSE = "Apache-2.0 | MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=4f2dde46d83167a9725dc833e8ecf734"

require openplc-source.inc
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates python_pyo3 systemd

# pyo3 links the target's libpython3.X.so; python_pyo3 does not add it.
DEPENDS += "python3"

# The unit's StartLimitAction (a drop-in: the unit itself is the repository's).
SRC_URI += "file://50-start-limit.conf"

# python_pyo3's do_configure replaces cargo_common's (it only writes pyo3's
# config file): run both, as oe-core's python3-maturin does. (oelint-adv takes
# the python_ prefix of the function called for Python code.)
# nooelint: oelint.task.pythonprefix
do_configure() {
    python_pyo3_do_configure
    cargo_common_do_configure
}

# The crate's release profile strips the binary; leave that to do_package so
# the -dbg package gets the symbols and QA's already-stripped check holds.
export CARGO_PROFILE_RELEASE_STRIP = "false"

# The unit, its tmpfiles entry and the default plugins.conf are the ones in the
# repository's rootfs-overlay/ (shared with the other image builders).
do_install:append() {
    install -D -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system/openplc-runtime.service \
        ${D}${systemd_system_unitdir}/openplc-runtime.service
    install -D -m 0644 ${UNPACKDIR}/50-start-limit.conf \
        ${D}${systemd_system_unitdir}/openplc-runtime.service.d/50-start-limit.conf
    install -D -m 0644 ${S}/rootfs-overlay/usr/lib/tmpfiles.d/openplc-runtime.conf \
        ${D}${nonarch_libdir}/tmpfiles.d/openplc-runtime.conf
    install -D -m 0644 ${S}/rootfs-overlay/etc/openplc/plugins.conf \
        ${D}${sysconfdir}/openplc/plugins.conf
    # Drop-in directories: plugin packages add theirs here, the image builder in /etc.
    install -d ${D}${nonarch_libdir}/openplc/plugins.conf.d ${D}${sysconfdir}/openplc/plugins.conf.d
    # The ctypes mirror of the runtime-args struct, importable by plugins as
    # `openplc_capsule` from the plugins' parent directory (OpenPLC style).
    install -D -m 0644 ${S}/examples/plugins/openplc_capsule.py \
        ${D}${nonarch_libdir}/openplc/plugins/openplc_capsule.py
}

PACKAGES =+ "${PN}-capsule"
FILES:${PN}-capsule += "${nonarch_libdir}/openplc/plugins/openplc_capsule.py"
FILES:${PN} += "${systemd_system_unitdir}/openplc-runtime.service.d ${nonarch_libdir}/tmpfiles.d ${nonarch_libdir}/openplc/plugins.conf.d"
CONFFILES:${PN} = "${sysconfdir}/openplc/plugins.conf"

SYSTEMD_SERVICE:${PN} = "openplc-runtime.service"

# What the runtime itself imports when it starts: importlib.util, os, site,
# sys, sysconfig and traceback are in python3-core, but setting a plugin's
# sys.path calls importlib.invalidate_caches(), which imports
# importlib.metadata, which imports json and email. scripts/check-yocto-layer
# runs the runtime's Python code against exactly these packages' files.
# libpython3 comes in through the binary's shared-library dependency.
RDEPENDS:${PN} = "python3-core python3-email python3-json"
RDEPENDS:${PN}-capsule = "python3-ctypes"
