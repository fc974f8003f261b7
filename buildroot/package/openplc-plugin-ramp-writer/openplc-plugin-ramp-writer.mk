################################################################################
#
# openplc-plugin-ramp-writer
#
################################################################################

OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_NAME = ramp_writer
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_SRCDIR = $(OPENPLC_TOPDIR)/examples/plugins/ramp_writer
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_ADD_FILES = $(OPENPLC_TOPDIR)/LICENSE
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_CONFIG = config.yaml
# The example's own pins (PyYAML==6.0.3), the same for every build system.
OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_REQUIREMENTS = $(OPENPLC_PLUGIN_RAMP_WRITER_PLUGIN_SRCDIR)/requirements.txt
# PyYAML with its C extension, built from the sdist for the target against
# libyaml (as Buildroot's python-pyyaml is): every CPU, ARMv6 and soft
# float included, and the toolchain's flags. PYYAML_FORCE_LIBYAML=1: a
# missing libyaml fails the build instead of giving pure Python.
OPENPLC_PLUGIN_RAMP_WRITER_SDISTS = \
	https://files.pythonhosted.org/packages/05/8e/961c0007c59b8dd7729d542c61a4d537767a59645b82a0b521206e1e25c2/pyyaml-6.0.3.tar.gz
OPENPLC_PLUGIN_RAMP_WRITER_DEPENDENCIES = libyaml host-python-setuptools host-python-cython
OPENPLC_PLUGIN_RAMP_WRITER_ENV = PYYAML_FORCE_LIBYAML=1
# What the package ships: the plugin (the project's, LICENSE) and its
# venv's distributions (licence from each sdist's PKG-INFO).
OPENPLC_PLUGIN_RAMP_WRITER_LICENSE = Apache-2.0 or MIT (plugin), MIT (PyYAML)
OPENPLC_PLUGIN_RAMP_WRITER_LICENSE_FILES = LICENSE pyyaml-6.0.3/LICENSE
OPENPLC_PLUGIN_RAMP_WRITER_CPE_ID_VENDOR = pyyaml
OPENPLC_PLUGIN_RAMP_WRITER_CPE_ID_PRODUCT = pyyaml

$(eval $(openplc-plugin-package))
