################################################################################
#
# openplc-program
#
################################################################################

# The infrastructure of the PLC program packages, not a package: a
# program package names the program and where its STruC++ output is
# (generated.hpp, configuration.cpp, pou_*.cpp, generated_debug.cpp,
# debug-map.json: what the OpenPLC editor or scripts/build-plc-program
# --keep produces from a .st file), then calls
# $(eval $(openplc-program-package)). No Node.js and no STruC++ run
# here: the output is the package's source (a local directory), compiled
# with the target's C++ compiler and flags ($(TARGET_CXX)
# $(TARGET_CXXFLAGS) $(TARGET_LDFLAGS)) together with openplc-runtime's
# glue by scripts/build-plc-program --from-output, against the STruC++
# runtime headers of the openplc-strucpp package; scripts/install-plugin
# installs libplc_NAME.so, debug-map.json and the plugins.conf drop-in
# (type 1). The project's scripts, shared with the Yocto class and the
# QEMU test tiers.
#
# Variables of a program package FOO:
#   FOO_PROGRAM_NAME     its name in plugins.conf, libplc_NAME.so (required)
#   FOO_PROGRAM_OUTPUT   the directory holding its STruC++ output (required)
#   FOO_PROGRAM_ORDER    the drop-in's two-digit prefix (default 50)

OPENPLC_PROGRAM_DEPENDENCIES = openplc-strucpp

# $(1): the program package's upper-case name. Its build directory by
# name, not $(@D): the commands are the same wherever they are expanded.
OPENPLC_PROGRAM_BUILD_OPTS = \
	--from-output $($(1)_DIR) \
	--strucpp $(OPENPLC_STRUCPP_HEADERS_DIR) \
	--name $($(1)_PROGRAM_NAME) \
	--target host \
	-o $($(1)_DIR)/openplc-out

OPENPLC_PROGRAM_INSTALL_OPTS = \
	--destdir $(TARGET_DIR) \
	--name $($(1)_PROGRAM_NAME) \
	--source $($(1)_DIR)/openplc-out \
	--entry libplc_$($(1)_PROGRAM_NAME).so \
	--order $($(1)_PROGRAM_ORDER) \
	--type 1

# build-plc-program runs $CXX as one command: the target's compiler with
# Buildroot's flags becomes one, a wrapper in the build directory; its
# temporary files go there too.
define OPENPLC_PROGRAM_BUILD_CMDS
	rm -rf $($(PKG)_DIR)/openplc-out $($(PKG)_DIR)/openplc-tmp
	mkdir -p $($(PKG)_DIR)/openplc-tmp
	printf '#!/bin/sh\nexec %s %s "$$@" %s\n' \
		'$(TARGET_CXX)' '$(TARGET_CXXFLAGS)' '$(TARGET_LDFLAGS)' \
		>$($(PKG)_DIR)/openplc-tmp/target-cxx
	chmod 0755 $($(PKG)_DIR)/openplc-tmp/target-cxx
	TMPDIR=$($(PKG)_DIR)/openplc-tmp CXX=$($(PKG)_DIR)/openplc-tmp/target-cxx \
		$(OPENPLC_SCRIPTS_DIR)/build-plc-program $($(PKG)_PROGRAM_BUILD_OPTS)
endef

define OPENPLC_PROGRAM_INSTALL_TARGET_CMDS
	$(OPENPLC_SCRIPTS_DIR)/install-plugin $($(PKG)_PROGRAM_INSTALL_OPTS)
endef

# $(eval $(openplc-program-package)) in a program package's .mk: its
# defaults and steps, then the generic package infrastructure. The
# source is the STruC++ output directory.
openplc-program-package = \
	$(eval $(call UPPERCASE,$(pkgname))_PROGRAM_ORDER ?= 50) \
	$(eval $(call UPPERCASE,$(pkgname))_VERSION ?= custom) \
	$(eval $(call UPPERCASE,$(pkgname))_SITE = $($(call UPPERCASE,$(pkgname))_PROGRAM_OUTPUT)) \
	$(eval $(call UPPERCASE,$(pkgname))_SITE_METHOD = local) \
	$(eval $(call UPPERCASE,$(pkgname))_PROGRAM_BUILD_OPTS = \
		$$(call OPENPLC_PROGRAM_BUILD_OPTS,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_PROGRAM_INSTALL_OPTS = \
		$$(call OPENPLC_PROGRAM_INSTALL_OPTS,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_DEPENDENCIES += $(OPENPLC_PROGRAM_DEPENDENCIES)) \
	$(eval $(call UPPERCASE,$(pkgname))_BUILD_CMDS = $$(OPENPLC_PROGRAM_BUILD_CMDS)) \
	$(eval $(call UPPERCASE,$(pkgname))_INSTALL_TARGET_CMDS = \
		$$(OPENPLC_PROGRAM_INSTALL_TARGET_CMDS)) \
	$(generic-package)
