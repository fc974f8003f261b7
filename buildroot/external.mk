# The plugin and program package infrastructures and what they need,
# defined once. Buildroot includes the trees' external.mk files in
# BR2_EXTERNAL order, and a package's $(eval $(openplc-plugin-package))
# expands the macro when its .mk is read: a user's own BR2_EXTERNAL with
# plugin or program packages includes this file at the top of its
# external.mk, so that it works whichever tree BR2_EXTERNAL lists first
# (see README.md).
ifneq ($(OPENPLC_EXTERNAL_MK_INCLUDED),y)
OPENPLC_EXTERNAL_MK_INCLUDED = y

# The openplc-runtime checkout this tree belongs to: the runtime package
# builds it (in-tree builds), and every package calls its scripts/ (the venv
# builder and the plugin installer exist once, shared with Yocto and the
# QEMU test image).
OPENPLC_TOPDIR = $(realpath $(BR2_EXTERNAL_OPENPLC_PATH)/..)
OPENPLC_SCRIPTS_DIR = $(OPENPLC_TOPDIR)/scripts
# The project's version (Cargo.toml's): the example plugins' version.
OPENPLC_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p;T;q' \
	$(OPENPLC_TOPDIR)/Cargo.toml)

# The plugin and program package infrastructures first: the plugin and
# program packages use them.
include $(BR2_EXTERNAL_OPENPLC_PATH)/package/openplc-plugin/openplc-plugin.mk
include $(BR2_EXTERNAL_OPENPLC_PATH)/package/openplc-program/openplc-program.mk
include $(sort $(filter-out %/openplc-plugin.mk %/openplc-program.mk,\
	$(wildcard $(BR2_EXTERNAL_OPENPLC_PATH)/package/*/*.mk)))
endif
