################################################################################
#
# openplc-plugin-opcua-server
#
################################################################################

OPENPLC_PLUGIN_OPCUA_SERVER_PLUGIN_NAME = opcua_server
OPENPLC_PLUGIN_OPCUA_SERVER_PLUGIN_SRCDIR = $(OPENPLC_TOPDIR)/examples/plugins/opcua_server
OPENPLC_PLUGIN_OPCUA_SERVER_PLUGIN_ADD_FILES = $(OPENPLC_TOPDIR)/LICENSE
OPENPLC_PLUGIN_OPCUA_SERVER_PLUGIN_CONFIG = config.json
# The server's key and certificate: created on first start in the state
# directory the runtime gives the plugin; certs/ next to plugin.py (where
# it writes without one) is linked to /var/lib/openplc/plugins/opcua_server.
OPENPLC_PLUGIN_OPCUA_SERVER_PLUGIN_WRITABLE = certs
# The pure-Python wheels (py3-none-any: every target).
OPENPLC_PLUGIN_OPCUA_SERVER_EXTRA_DOWNLOADS = \
	https://files.pythonhosted.org/packages/bc/8a/340a1555ae33d7354dbca4faa54948d76d89a27ceef032c8c3bc661d003e/aiofiles-25.1.0-py3-none-any.whl \
	https://files.pythonhosted.org/packages/00/b7/e3bf5133d697a08128598c8d0abc5e16377b51465a33756de24fa7dee953/aiosqlite-0.22.1-py3-none-any.whl \
	https://files.pythonhosted.org/packages/3f/0d/2f8fc320a12b6c8b972568a588ae57f4db7e9f7e7f53d02a24d0cebb17d7/asyncua-1.1.8-py3-none-any.whl \
	https://files.pythonhosted.org/packages/b6/ae/315bbeee126a769cbde43cf4908acb4b40408d8bf8bbf334dd7368d8dadf/pycparser-3.12-py3-none-any.whl \
	https://files.pythonhosted.org/packages/51/ad/2cf6d3fa2fae5c79e1ed9960c0d42badd0f94d81dd12b50604cdc839e648/pyopenssl-26.4.0-py3-none-any.whl \
	https://files.pythonhosted.org/packages/2f/a9/52b89563d154433d79b51ed1eb4842bf7334cb2696891a7fe135618853d7/python_dateutil-4.0.0-py3-none-any.whl \
	https://files.pythonhosted.org/packages/b6/25/564f3fc5b70c1398d706c51f2b1470d0ea0b1b2f96fee67877b6f5bdf3b6/pytz-2026.6-py2.py3-none-any.whl \
	https://files.pythonhosted.org/packages/32/46/9cb0e58b2deb7f82b84065f37f3bffeb12413f947f9388e4cac22c4621ce/sortedcontainers-2.4.0-py2.py3-none-any.whl \
	https://files.pythonhosted.org/packages/49/d3/b8441a820a491ddfc024b0b0cf0393375b75ea13866d9c66727e54c2fc80/typing_extensions-4.16.0-py3-none-any.whl \
	https://files.pythonhosted.org/packages/0a/66/9a06c2227fedfd4919f0eaaa8b94377d9730882a7e4f95823c9a331ab5e1/tzdata-2026.6-py2.py3-none-any.whl
# cryptography: PyPI's binary wheel for the target's CPU (cp311-abi3: one
# file for every CPython >= 3.11), opted in below. Building it from its
# sdist needs Rust and maturin for the target, which this package does not
# do (Buildroot's own python-cryptography, 46.0.3, is built with Rust by
# maturin, a setup type this infrastructure does not have); Config.in
# limits the package to the CPUs these wheels exist for.
ifeq ($(BR2_aarch64),y)
OPENPLC_PLUGIN_OPCUA_SERVER_EXTRA_DOWNLOADS += \
	https://files.pythonhosted.org/packages/38/6b/61a3f8d8c5e1e49a6cddccafc4015cc1c0021360ab0acb4080e7a423644a/cryptography-50.0.2-cp311-abi3-manylinux_2_28_aarch64.whl
else ifeq ($(BR2_x86_64),y)
OPENPLC_PLUGIN_OPCUA_SERVER_EXTRA_DOWNLOADS += \
	https://files.pythonhosted.org/packages/1a/f1/b474e930c4d910328780e3940da76f5aa5cbc48ce1fc14e44d239d9ea9db/cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl
else ifeq ($(BR2_arm),y)
OPENPLC_PLUGIN_OPCUA_SERVER_EXTRA_DOWNLOADS += \
	https://files.pythonhosted.org/packages/7c/52/9af10e80ac16b0fcc2123f9cbd5e7afbd0fd5075bb7a607c592258a39cda/cryptography-50.0.2-cp311-abi3-manylinux_2_31_armv7l.whl
endif
OPENPLC_PLUGIN_OPCUA_SERVER_BINARY_WHEELS = cryptography
# cffi: built from its sdist for the target (C, against libffi, found
# through pkg-config), with Buildroot's host-python-setuptools (80.9.0;
# cffi wants >= 77.0.3) as its PEP 517 backend.
OPENPLC_PLUGIN_OPCUA_SERVER_SDISTS = \
	https://files.pythonhosted.org/packages/9e/ef/008a1939e372c06329a3fce4279c02f328488f3526744906eeec3da7ad5f/cffi-2.1.1.tar.gz
OPENPLC_PLUGIN_OPCUA_SERVER_DEPENDENCIES = host-pkgconf host-python-setuptools libffi

# What the package ships: the plugin (the project's, LICENSE) and its
# venv's distributions, each licence from its METADATA (SPDX names).
# cryptography's wheel links OpenSSL statically (Apache-2.0), and Rust
# crates under MIT/Apache-2.0 (its LICENSE file).
OPENPLC_PLUGIN_OPCUA_SERVER_LICENSE = Apache-2.0 or MIT (plugin), \
	LGPL-3.0+ (asyncua), Apache-2.0 (aiofiles), MIT (aiosqlite), \
	MIT-0 (cffi), Apache-2.0 or BSD-3-Clause (cryptography), \
	Apache-2.0 (OpenSSL in cryptography), BSD-3-Clause (pycparser), \
	Apache-2.0 (pyOpenSSL), BSD-3-Clause (python-dateutil), MIT (pytz), \
	Apache-2.0 (sortedcontainers), PSF-2.0 (typing_extensions), \
	Apache-2.0 (tzdata)
OPENPLC_PLUGIN_OPCUA_SERVER_LICENSE_FILES = LICENSE \
	asyncua-1.1.8.dist-info/licenses/COPYING \
	aiofiles-25.1.0.dist-info/licenses/LICENSE \
	aiofiles-25.1.0.dist-info/licenses/NOTICE \
	aiosqlite-0.22.1.dist-info/licenses/LICENSE \
	cffi-2.1.1/LICENSE \
	cryptography-50.0.2.dist-info/licenses/LICENSE \
	cryptography-50.0.2.dist-info/licenses/LICENSE.APACHE \
	cryptography-50.0.2.dist-info/licenses/LICENSE.BSD \
	pycparser-3.12.dist-info/licenses/LICENSE \
	pyopenssl-26.4.0.dist-info/licenses/LICENSE \
	python_dateutil-4.0.0.dist-info/licenses/LICENSE \
	python_dateutil-4.0.0.dist-info/licenses/AUTHORS.md \
	pytz-2026.6.dist-info/LICENSE.txt \
	sortedcontainers-2.4.0.dist-info/LICENSE \
	typing_extensions-4.16.0.dist-info/licenses/LICENSE \
	tzdata-2026.6.dist-info/licenses/LICENSE \
	tzdata-2026.6.dist-info/licenses/licenses/LICENSE_APACHE

$(eval $(openplc-plugin-package))
