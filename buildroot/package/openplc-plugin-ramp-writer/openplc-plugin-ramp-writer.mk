################################################################################
#
# openplc-plugin-ramp-writer
#
################################################################################

OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_NAME = ramp_writer
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_SRCDIR = $(OPENPLC_TOPDIR)/examples/plugins/ramp_writer
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_ADD_FILES = $(OPENPLC_TOPDIR)/LICENSE
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_CONFIG = config.yaml
OPENPLC_PLUGIN_RAMP_WRITER_EXTRA_DOWNLOADS = \
	https://files.pythonhosted.org/packages/92/b5/47e807c2623074914e29dabd16cbbdd4bf5e9b2db9f8090fa64411fc5382/pyyaml-6.0.3-cp314-cp314-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl
# What the package ships: the plugin (the project's, LICENSE) and its
# venv's distributions (licence from each wheel's METADATA).
OPENPLC_PLUGIN_RAMP_WRITER_LICENSE = Apache-2.0 or MIT (plugin), MIT (PyYAML)
OPENPLC_PLUGIN_RAMP_WRITER_LICENSE_FILES = LICENSE pyyaml-6.0.3.dist-info/licenses/LICENSE

$(eval $(openplc-plugin-package))
