################################################################################
#
# openplc-program-io-demo
#
################################################################################

OPENPLC_PROGRAM_IO_DEMO_PROGRAM_NAME = io_demo
# Kept in sync with io_demo.st by examples/programs/update-generated.
OPENPLC_PROGRAM_IO_DEMO_PROGRAM_OUTPUT = $(OPENPLC_TOPDIR)/examples/programs/io_demo/generated
OPENPLC_PROGRAM_IO_DEMO_LICENSE = MIT

$(eval $(openplc-program-package))
