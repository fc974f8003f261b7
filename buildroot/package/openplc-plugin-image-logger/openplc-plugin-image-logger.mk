################################################################################
#
# openplc-plugin-image-logger
#
################################################################################

OPENPLC_PLUGIN_IMAGE_LOGGER_PLUGIN_NAME = image_logger
OPENPLC_PLUGIN_IMAGE_LOGGER_PLUGIN_SRCDIR = $(OPENPLC_TOPDIR)/examples/plugins/image_logger
OPENPLC_PLUGIN_IMAGE_LOGGER_PLUGIN_ADD_FILES = $(OPENPLC_TOPDIR)/LICENSE
OPENPLC_PLUGIN_IMAGE_LOGGER_PLUGIN_CONFIG = config.json
OPENPLC_PLUGIN_IMAGE_LOGGER_EXTRA_DOWNLOADS = \
	https://files.pythonhosted.org/packages/40/44/4a5f08c96eb108af5cb50b41f76142f0afa346dfa99d5296fe7202a11854/tabulate-0.9.0-py3-none-any.whl
# What the package ships: the plugin (the project's, LICENSE) and its
# venv's distributions (licence from each wheel's METADATA).
OPENPLC_PLUGIN_IMAGE_LOGGER_LICENSE = Apache-2.0 or MIT (plugin), MIT (tabulate)
OPENPLC_PLUGIN_IMAGE_LOGGER_LICENSE_FILES = LICENSE tabulate-0.9.0.dist-info/LICENSE

$(eval $(openplc-plugin-package))
