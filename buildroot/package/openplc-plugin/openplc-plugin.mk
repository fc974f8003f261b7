################################################################################
#
# openplc-plugin
#
################################################################################

# The infrastructure of the plugin packages, not a package: a plugin
# package names the plugin, where its files are and the pinned wheels of
# its venv, then calls $(eval $(openplc-plugin-package)). The venv is
# built for the target's Python by scripts/build-target-venv, the plugin
# and its plugins.conf drop-in installed by scripts/install-plugin: the
# project's scripts, shared with the Yocto layer and the QEMU test image.
#
# Variables of a plugin package FOO:
#   FOO_PLUGIN_NAME          its name in plugins.conf (required)
#   FOO_PLUGIN_SRCDIR        the directory holding its files (required)
#   FOO_PLUGIN_ENTRY         the plugin file in it (default plugin.py)
#   FOO_PLUGIN_CONFIG        its config file in it (default: none)
#   FOO_PLUGIN_WRITABLE      subdirectories it writes to, linked to
#                            /var/lib/openplc/plugins/NAME/ (default: none)
#   FOO_PLUGIN_ORDER         the drop-in's two-digit prefix (default 50)
#   FOO_PLUGIN_REQUIREMENTS  the venv's pinned requirements (default
#                            requirements.txt next to FOO's .mk)
#   FOO_EXTRA_DOWNLOADS      the wheels those requirements resolve to (full
#                            URLs, sha256 in FOO's .hash); none: no venv
#   FOO_PLUGIN_ADD_FILES     files put into the source tarball beside the
#                            plugin's (the examples: the project's LICENSE)
#   FOO_VERSION              the plugin's version (default: the project's,
#                            Cargo.toml's, for the example plugins)
#   FOO_LICENSE              what the package ships: the plugin's licence
#                            and each venv distribution's, from its wheel's
#                            METADATA, e.g. "MIT (plugin), MIT (tabulate)"
#   FOO_LICENSE_FILES        the plugin's licence file(s) and each wheel's
#                            licence files as
#                            NAME-VERSION.dist-info/PATH (taken out of the
#                            wheels into the build directory)
#
# The plugin's source is a reproducible tarball of FOO_PLUGIN_SRCDIR and
# FOO_PLUGIN_ADD_FILES (Buildroot's mk_tar_gz, fixed mtime), made before
# the download step and then fetched from a file:// site like any
# download: it is checked against the sha256 in FOO's .hash, and
# legal-info saves it with the wheels. A changed plugin file changes the
# hash: the download step then fails naming the new sha256.

# The target's wheels: manylinux_<glibc>_<arch> (pip then also takes every
# older manylinux tag), <glibc> the toolchain's glibc, read from its
# features.h in staging when the venv is built (the toolchain is installed
# by then; internal or external toolchain alike). ARM: PyPI's manylinux
# wheels are armv7l, ARMv7-A hard-float (EABIhf), only; an ARMv6/ARMv5 or
# soft-float target gets no wheel arch and the install step stops with a
# message instead of installing wrong-ISA code.
OPENPLC_PLUGIN_WHEEL_ARCH = $(strip $(if $(BR2_arm),\
	$(if $(BR2_ARM_CPU_ARMV7A),$(if $(BR2_ARM_EABIHF),armv7l)),\
	$(filter aarch64 x86_64 i686 ppc64le s390x riscv64,$(ARCH))))
OPENPLC_PLUGIN_FEATURES_H = $(STAGING_DIR)/usr/include/features.h
OPENPLC_PLUGIN_GLIBC = $(shell awk '$$1 == "\#define" && $$2 == "__GLIBC__" { M = $$3 } \
	$$1 == "\#define" && $$2 == "__GLIBC_MINOR__" { m = $$3 } \
	END { if (M != "" && m != "") print M "_" m }' $(OPENPLC_PLUGIN_FEATURES_H) 2>/dev/null)
OPENPLC_PLUGIN_WHEEL_PLATFORM = manylinux_$(OPENPLC_PLUGIN_GLIBC)_$(OPENPLC_PLUGIN_WHEEL_ARCH)

# Before a venv is built: a target manylinux wheels exist for, and a glibc
# of at least 2.17 (manylinux2014, the oldest tag pip takes).
define OPENPLC_PLUGIN_CHECK_WHEEL_PLATFORM
	@if [ -z "$(OPENPLC_PLUGIN_WHEEL_ARCH)" ]; then \
		echo "$($(PKG)_NAME): no manylinux wheels exist for this target ($(ARCH)$(if $(BR2_arm), $(strip $(call qstrip,$(BR2_GCC_TARGET_CPU) $(BR2_GCC_TARGET_ARCH))) float-abi=$(call qstrip,$(BR2_GCC_TARGET_FLOAT_ABI)))): PyPI's ARM wheels are armv7l (ARMv7-A, hard float) only; build this plugin for such a target, or drop its wheels" >&2; \
		exit 1; \
	fi
	@case "$(OPENPLC_PLUGIN_GLIBC)" in \
	2_1[7-9] | 2_[2-9][0-9] | [3-9]_*) ;; \
	'') echo "$($(PKG)_NAME): cannot read the toolchain's glibc version from $(OPENPLC_PLUGIN_FEATURES_H)" >&2; exit 1 ;; \
	*) echo "$($(PKG)_NAME): the toolchain's glibc $(subst _,.,$(OPENPLC_PLUGIN_GLIBC)) is older than 2.17, the oldest manylinux (2014) wheels need" >&2; exit 1 ;; \
	esac
endef

OPENPLC_PLUGIN_SOURCES_DIR = $(BUILD_DIR)/openplc-plugin-sources

# $(1): the plugin package's upper-case name. The tarball's top directory
# is NAME-VERSION (Buildroot strips it on extraction).
define OPENPLC_PLUGIN_MAKE_SOURCE
	rm -rf $(OPENPLC_PLUGIN_SOURCES_DIR)/$($(PKG)_BASENAME_RAW)
	mkdir -p $(OPENPLC_PLUGIN_SOURCES_DIR)/$($(PKG)_BASENAME_RAW)
	cp -R $($(PKG)_PLUGIN_SRCDIR)/. $($(PKG)_PLUGIN_ADD_FILES) \
		$(OPENPLC_PLUGIN_SOURCES_DIR)/$($(PKG)_BASENAME_RAW)/
	find $(OPENPLC_PLUGIN_SOURCES_DIR)/$($(PKG)_BASENAME_RAW) \
		-name __pycache__ -prune -exec rm -rf {} +
	cd $(OPENPLC_PLUGIN_SOURCES_DIR) && . $(TOPDIR)/support/download/helpers && \
		TAR=tar mk_tar_gz $($(PKG)_BASENAME_RAW) $($(PKG)_BASENAME_RAW) \
			@0 $(OPENPLC_PLUGIN_SOURCES_DIR)/$($(PKG)_SOURCE)
	rm -rf $(OPENPLC_PLUGIN_SOURCES_DIR)/$($(PKG)_BASENAME_RAW)
endef

# The licence files of the venv's distributions: each wheel's
# NAME-VERSION.dist-info/ next to the plugin's files (the host's python3,
# which Buildroot requires, reads the zip).
define OPENPLC_PLUGIN_EXTRACT_DIST_INFO
	$(foreach w,$(call OPENPLC_PLUGIN_WHEELS,$(PKG)),\
		python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
			z.extractall(sys.argv[2], [n for n in z.namelist() \
				if n.split("/")[0].endswith(".dist-info")])' \
			$($(PKG)_DL_DIR)/$(w) $(@D)$(sep))
endef

# host-python3 runs pip and compiles the .pyc files (it is the target's
# Python X.Y); python3 is the interpreter the venv's pyvenv.cfg names.
OPENPLC_PLUGIN_DEPENDENCIES = host-python3 host-python-pip python3

# $(1): the plugin package's upper-case name.
OPENPLC_PLUGIN_WHEELS = $(filter %.whl,$(notdir $($(1)_EXTRA_DOWNLOADS)))
OPENPLC_PLUGIN_VENV = \
	$(if $(call OPENPLC_PLUGIN_WHEELS,$(1)),/usr/lib/openplc/venvs/$($(1)_PLUGIN_NAME))

OPENPLC_PLUGIN_VENV_OPTS = \
	--name $($(1)_PLUGIN_NAME) \
	--requirements $($(1)_PLUGIN_REQUIREMENTS) \
	--wheelhouse $($(1)_DIR)/wheelhouse \
	--python-version $(PYTHON3_VERSION) \
	--platform $(OPENPLC_PLUGIN_WHEEL_PLATFORM) \
	--prefix $(call OPENPLC_PLUGIN_VENV,$(1)) \
	--destdir $(TARGET_DIR) \
	--target-python /usr/bin/python3 \
	--compile-python $(HOST_DIR)/bin/python3 \
	--host-python $(HOST_DIR)/bin/python3

OPENPLC_PLUGIN_INSTALL_OPTS = \
	--destdir $(TARGET_DIR) \
	--name $($(1)_PLUGIN_NAME) \
	--source $($(1)_DIR) \
	--entry $($(1)_PLUGIN_ENTRY) \
	--order $($(1)_PLUGIN_ORDER) \
	$(if $($(1)_PLUGIN_CONFIG),--config $($(1)_PLUGIN_CONFIG)) \
	$(if $(call OPENPLC_PLUGIN_VENV,$(1)),--venv) \
	$(addprefix --writable ,$($(1)_PLUGIN_WRITABLE))

# The package's steps ($(PKG) is the package being built). The wheels
# are the package's downloads, checked against its .hash: the wheelhouse
# holds them and nothing else from the download directory.
define OPENPLC_PLUGIN_BUILD_CMDS
	rm -rf $(@D)/wheelhouse
	mkdir -p $(@D)/wheelhouse
	$(foreach w,$(call OPENPLC_PLUGIN_WHEELS,$(PKG)),\
		ln -sf $($(PKG)_DL_DIR)/$(w) $(@D)/wheelhouse/$(w)$(sep))
endef

define OPENPLC_PLUGIN_INSTALL_TARGET_CMDS
	$(if $(call OPENPLC_PLUGIN_VENV,$(PKG)),$(OPENPLC_PLUGIN_CHECK_WHEEL_PLATFORM))
	$(if $(call OPENPLC_PLUGIN_VENV,$(PKG)),\
		$(OPENPLC_SCRIPTS_DIR)/build-target-venv $($(PKG)_PLUGIN_VENV_OPTS))
	$(OPENPLC_SCRIPTS_DIR)/install-plugin $($(PKG)_PLUGIN_INSTALL_OPTS)
endef

# $(eval $(openplc-plugin-package)) in a plugin package's .mk: its
# defaults and steps, then the generic package infrastructure.
openplc-plugin-package = \
	$(eval $(call UPPERCASE,$(pkgname))_VERSION ?= $(OPENPLC_VERSION)) \
	$(eval $(call UPPERCASE,$(pkgname))_SOURCE = $(pkgname)-$$($(call UPPERCASE,$(pkgname))_VERSION).tar.gz) \
	$(eval $(call UPPERCASE,$(pkgname))_SITE = $(OPENPLC_PLUGIN_SOURCES_DIR)) \
	$(eval $(call UPPERCASE,$(pkgname))_SITE_METHOD = file) \
	$(eval $(call UPPERCASE,$(pkgname))_PRE_DOWNLOAD_HOOKS += OPENPLC_PLUGIN_MAKE_SOURCE) \
	$(eval $(call UPPERCASE,$(pkgname))_POST_EXTRACT_HOOKS += OPENPLC_PLUGIN_EXTRACT_DIST_INFO) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_ENTRY ?= plugin.py) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_ORDER ?= 50) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_REQUIREMENTS ?= $(pkgdir)/requirements.txt) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_VENV = \
		$$(call OPENPLC_PLUGIN_VENV,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_VENV_OPTS = \
		$$(call OPENPLC_PLUGIN_VENV_OPTS,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_INSTALL_OPTS = \
		$$(call OPENPLC_PLUGIN_INSTALL_OPTS,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_DEPENDENCIES += $(OPENPLC_PLUGIN_DEPENDENCIES)) \
	$(eval $(call UPPERCASE,$(pkgname))_BUILD_CMDS = $$(OPENPLC_PLUGIN_BUILD_CMDS)) \
	$(eval $(call UPPERCASE,$(pkgname))_INSTALL_TARGET_CMDS = \
		$$(OPENPLC_PLUGIN_INSTALL_TARGET_CMDS)) \
	$(generic-package)
