SUMMARY = "openplc-runtime example PLC program: io_demo (counts, doubles a ramp)"
DESCRIPTION = "examples/programs/io_demo of openplc-runtime, a Structured Text \
               program compiled from its committed STruC++ output into a \
               native plugin: it reads %IX0.0 and %IW0 and writes %QW10..12, \
               %QX0.1 and %QX0.2, which a Modbus client sees change."
SECTION = "console/utils"
# The program is the project's (MIT, Cargo.toml); the class adds STruC++'s
# runtime licence.
LICENSE = "MIT"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"
# The library carries STruC++'s runtime headers: CVEs filed against them concern this package.
CVE_PRODUCT = "strucpp"

# The program's STruC++ output: files/io_demo/generated, a copy of the
# repository's examples/programs/io_demo/generated (which
# examples/programs/update-generated keeps in sync with io_demo.st) kept inside
# the layer so that the layer works alone (tests/scripts/test_check_yocto_layer.sh
# checks the two are equal).
SRC_URI = "file://io_demo/generated;subdir=${BP}"

OPENPLC_PROGRAM_NAME = "io_demo"

inherit openplc-program
