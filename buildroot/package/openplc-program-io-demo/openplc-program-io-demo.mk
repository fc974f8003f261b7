################################################################################
#
# openplc-program-io-demo
#
################################################################################

OPENPLC_PROGRAM_IO_DEMO_PROGRAM_NAME = io_demo
# Kept in sync with io_demo.st by examples/programs/update-generated.
OPENPLC_PROGRAM_IO_DEMO_PROGRAM_OUTPUT = $(OPENPLC_TOPDIR)/examples/programs/io_demo/generated
# The program is the project's; the library also carries STruC++'s
# runtime headers (openplc-strucpp's licence files).
OPENPLC_PROGRAM_IO_DEMO_LICENSE = MIT, GPL-3.0+ with STruC++ runtime library exception (STruC++ runtime headers)

$(eval $(openplc-program-package))
