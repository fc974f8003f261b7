# The openplc-runtime checkout this tree belongs to: the runtime package
# builds it (in-tree builds), and every package calls its scripts/ (the venv
# builder and the plugin installer exist once, shared with Yocto and the
# QEMU test image).
OPENPLC_TOPDIR = $(realpath $(BR2_EXTERNAL_OPENPLC_PATH)/..)
OPENPLC_SCRIPTS_DIR = $(OPENPLC_TOPDIR)/scripts

# The plugin package infrastructure first: the plugin packages use it.
include $(BR2_EXTERNAL_OPENPLC_PATH)/package/openplc-plugin/openplc-plugin.mk
include $(sort $(filter-out %/openplc-plugin.mk,\
	$(wildcard $(BR2_EXTERNAL_OPENPLC_PATH)/package/*/*.mk)))
