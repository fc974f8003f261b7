################################################################################
#
# openplc-plugin-modbus-server
#
################################################################################

OPENPLC_PLUGIN_MODBUS_SERVER_PLUGIN_NAME = modbus_server
OPENPLC_PLUGIN_MODBUS_SERVER_PLUGIN_SRCDIR = $(OPENPLC_TOPDIR)/examples/plugins/modbus_server
OPENPLC_PLUGIN_MODBUS_SERVER_PLUGIN_ADD_FILES = $(OPENPLC_TOPDIR)/LICENSE
OPENPLC_PLUGIN_MODBUS_SERVER_PLUGIN_CONFIG = config.json
OPENPLC_PLUGIN_MODBUS_SERVER_EXTRA_DOWNLOADS = \
	https://files.pythonhosted.org/packages/a2/1e/579762ad921bb7c0dd5108ae00cedd07b7baa150083d210bcd2b1aeb4262/pymodbus-3.6.9-py3-none-any.whl
# What the package ships: the plugin (the project's, LICENSE) and its
# venv's distributions (licence from each wheel's METADATA).
OPENPLC_PLUGIN_MODBUS_SERVER_LICENSE = Apache-2.0 or MIT (plugin), BSD-3-Clause (pymodbus)
OPENPLC_PLUGIN_MODBUS_SERVER_LICENSE_FILES = LICENSE \
	pymodbus-3.6.9.dist-info/LICENSE pymodbus-3.6.9.dist-info/AUTHORS.rst

$(eval $(openplc-plugin-package))
