################################################################################
#
# openplc-strucpp
#
################################################################################

# STruC++'s runtime headers, at the commit whose compiler made the
# programs' output (0.6.1, the snapshot scripts/install-deps --program
# builds STruC++ from). Only the headers are used, at build time: the
# program packages compile them into their libraries under the STruC++
# Runtime Library Exception. Nothing goes to the target.
OPENPLC_STRUCPP_VERSION = fb7980f5385d33ce60c87fb9395f15f55c6bc477
OPENPLC_STRUCPP_SITE = https://github.com/Autonomy-Logic/STruCpp.git
OPENPLC_STRUCPP_SITE_METHOD = git
OPENPLC_STRUCPP_LICENSE = GPL-3.0+ with STruC++ runtime library exception
OPENPLC_STRUCPP_LICENSE_FILES = COPYING COPYING.RUNTIME
OPENPLC_STRUCPP_INSTALL_STAGING = YES
OPENPLC_STRUCPP_INSTALL_TARGET = NO

# build-plc-program --strucpp DIR reads DIR/src/runtime/include.
OPENPLC_STRUCPP_HEADERS_DIR = $(STAGING_DIR)/usr/share/openplc-strucpp

define OPENPLC_STRUCPP_INSTALL_STAGING_CMDS
	rm -rf $(OPENPLC_STRUCPP_HEADERS_DIR)
	mkdir -p $(OPENPLC_STRUCPP_HEADERS_DIR)/src/runtime
	cp -r $(OPENPLC_STRUCPP_DIR)/src/runtime/include \
		$(OPENPLC_STRUCPP_HEADERS_DIR)/src/runtime/include
endef

$(eval $(generic-package))
