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
#   FOO_EXTRA_DOWNLOADS      the wheels those requirements resolve to and
#                            that are installed as they are (full URLs,
#                            sha256 in FOO's .hash): pure-Python
#                            (py3-none-any) wheels, and compiled wheels
#                            of the distributions FOO_BINARY_WHEELS names
#   FOO_SDISTS               sdists of the compiled requirements (full
#                            URLs, sha256 in FOO's .hash), downloaded in
#                            the download step like FOO_EXTRA_DOWNLOADS and
#                            each built into a linux_<arch> wheel for the
#                            target by scripts/build-target-wheel (PEP 517,
#                            the target toolchain, its flags, staging's
#                            sysconfigdata). The C libraries they link go
#                            into FOO_DEPENDENCIES, their build
#                            requirements too when Buildroot packages them
#                            (host-python-setuptools, host-python-cython)
#   FOO_BUILD_WHEELS         wheels of build requirements Buildroot has no
#                            host package for (full URLs, sha256 in the
#                            .hash), installed for host-python3 only while
#                            the sdists build; never in the venv
#   FOO_BINARY_WHEELS        the distributions (names, space-separated)
#                            whose compiled wheels from FOO_EXTRA_DOWNLOADS
#                            may go into the venv (opt-in). Each such
#                            wheel's ELF files are checked against the
#                            target (ELF class and machine; on ARM the
#                            architecture level from BR2_ARM_CPU_ARMV6/
#                            ARMV7A and the float ABI from BR2_ARM_EABIHF)
#                            and refused with a message naming the file;
#                            any other compiled wheel is refused
#   FOO_ENV                  variables for the sdists' builds (e.g.
#                            PYYAML_FORCE_LIBYAML=1)
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

# The target CPU as wheel tags name it: the arch of the wheels built from
# sdists (linux_<arch>) and of every ELF file in the venv. ARM: armv7l for
# ARMv7-A, armv6l for ARMv6 (BR2_ARM_CPU_ARMV*), the float ABI from
# BR2_ARM_EABIHF; other ARM levels (ARMv5, ARMv8 in AArch32) have no wheel
# arch and stop the plugin's build with a message.
OPENPLC_PLUGIN_TARGET_ARCH = $(strip $(if $(BR2_arm),\
	$(if $(BR2_ARM_CPU_ARMV7A),armv7l,$(if $(BR2_ARM_CPU_ARMV6),armv6l)),\
	$(filter aarch64 x86_64 i686 riscv64,$(ARCH))))
OPENPLC_PLUGIN_FLOAT_ABI = $(if $(BR2_arm),$(if $(BR2_ARM_EABIHF),hard,soft))
OPENPLC_PLUGIN_TARGET_DESC = $(ARCH)$(if $(BR2_arm), \
	$(strip $(call qstrip,$(BR2_GCC_TARGET_CPU) $(BR2_GCC_TARGET_ARCH))) \
	$(OPENPLC_PLUGIN_FLOAT_ABI)-float)

# Opt-in binary wheels from PyPI: manylinux_<glibc>_<arch> (pip then also
# takes every older manylinux tag), <glibc> the toolchain's glibc, read
# from its features.h in staging when the venv is built (the toolchain is
# installed by then; internal or external toolchain alike). ARM: PyPI's
# manylinux wheels are armv7l, ARMv7-A hard-float (EABIhf), only; an
# ARMv6 or soft-float target has no manylinux arch, and a plugin that opts
# in binary wheels for it stops with a message (build them from sdists).
OPENPLC_PLUGIN_WHEEL_ARCH = $(strip $(if $(BR2_arm),\
	$(if $(BR2_ARM_CPU_ARMV7A),$(if $(BR2_ARM_EABIHF),armv7l)),\
	$(filter aarch64 x86_64 i686 riscv64,$(ARCH))))
OPENPLC_PLUGIN_FEATURES_H = $(STAGING_DIR)/usr/include/features.h
OPENPLC_PLUGIN_GLIBC = $(shell awk '$$1 == "\#define" && $$2 == "__GLIBC__" { M = $$3 } \
	$$1 == "\#define" && $$2 == "__GLIBC_MINOR__" { m = $$3 } \
	END { if (M != "" && m != "") print M "_" m }' $(OPENPLC_PLUGIN_FEATURES_H) 2>/dev/null)
OPENPLC_PLUGIN_WHEEL_PLATFORM = manylinux_$(OPENPLC_PLUGIN_GLIBC)_$(OPENPLC_PLUGIN_WHEEL_ARCH)

# The platforms the venv takes: the wheels built here first (their arch is
# what every ELF file is checked against), the opt-in manylinux ones.
OPENPLC_PLUGIN_PLATFORM_OPTS = \
	--platform linux_$(OPENPLC_PLUGIN_TARGET_ARCH) \
	$(if $($(1)_BINARY_WHEELS),--platform $(OPENPLC_PLUGIN_WHEEL_PLATFORM)) \
	$(if $(OPENPLC_PLUGIN_FLOAT_ABI),--float-abi $(OPENPLC_PLUGIN_FLOAT_ABI))

# Before anything is built: a target CPU wheels can be made for; each
# compiled wheel of FOO_EXTRA_DOWNLOADS fits it (ELF class, machine, ARM
# level, float ABI: scripts/lib/target_elf.py, the check build-target-venv
# and build-target-wheel make too); with opt-in binary wheels, a target
# PyPI builds manylinux wheels for and a glibc of at least 2.17
# (manylinux2014, the oldest tag pip takes).
define OPENPLC_PLUGIN_CHECK_TARGET
	@if [ -z "$(OPENPLC_PLUGIN_TARGET_ARCH)" ]; then \
		echo "$($(PKG)_NAME): no wheel arch for this target ($(OPENPLC_PLUGIN_TARGET_DESC)): plugin venvs are built for aarch64, x86_64, i686, riscv64, ARMv7-A and ARMv6" >&2; \
		exit 1; \
	fi
	$(foreach w,$(filter-out %-any.whl,$(call OPENPLC_PLUGIN_WHEELS,$(PKG))),\
		python3 $(OPENPLC_SCRIPTS_DIR)/lib/target_elf.py --prog $($(PKG)_NAME) \
			check-wheel --arch $(OPENPLC_PLUGIN_TARGET_ARCH) \
			$(if $(OPENPLC_PLUGIN_FLOAT_ABI),--float-abi $(OPENPLC_PLUGIN_FLOAT_ABI)) \
			$($(PKG)_DL_DIR)/$(w) || { \
			echo "$($(PKG)_NAME): $(w) does not fit the target ($(OPENPLC_PLUGIN_TARGET_DESC)): pin the wheel for this CPU, or build the distribution from its sdist ($(PKG)_SDISTS)" >&2; \
			exit 1; }$(sep))
	$(if $($(PKG)_BINARY_WHEELS),$(OPENPLC_PLUGIN_CHECK_MANYLINUX))
endef

define OPENPLC_PLUGIN_CHECK_MANYLINUX
	@if [ -z "$(OPENPLC_PLUGIN_WHEEL_ARCH)" ]; then \
		echo "$($(PKG)_NAME): $(PKG)_BINARY_WHEELS ($(strip $($(PKG)_BINARY_WHEELS))): no manylinux wheels exist for this target ($(OPENPLC_PLUGIN_TARGET_DESC)): PyPI's ARM wheels are armv7l (ARMv7-A, hard float) only; build them from their sdists ($(PKG)_SDISTS)" >&2; \
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
# NAME-VERSION.dist-info/, and each sdist's PKG-INFO and top-level licence
# files (LICENSE*, LICENCE*, COPYING*, NOTICE*) under its NAME-VERSION/,
# next to the plugin's files (the host's python3, which Buildroot
# requires, reads the archives).
define OPENPLC_PLUGIN_EXTRACT_DIST_INFO
	$(foreach w,$(call OPENPLC_PLUGIN_WHEELS,$(PKG)),\
		python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
			z.extractall(sys.argv[2], [n for n in z.namelist() \
				if n.split("/")[0].endswith(".dist-info")])' \
			$($(PKG)_DL_DIR)/$(w) $($(PKG)_DIR)$(sep))
	$(foreach s,$(call OPENPLC_PLUGIN_SDIST_FILES,$(PKG)),\
		python3 -c 'import re, sys, tarfile; t = tarfile.open(sys.argv[1]); \
			t.extractall(sys.argv[2], [m for m in t.getmembers() if m.isfile() \
				and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*/(PKG-INFO|(LICEN[CS]E|COPYING|NOTICE)[^/]*)", \
					m.name)])' \
			$($(PKG)_DL_DIR)/$(s) $($(PKG)_DIR)$(sep))
endef

# host-python3 runs pip and compiles the .pyc files (it is the target's
# Python X.Y); python3 is the interpreter the venv's pyvenv.cfg names.
OPENPLC_PLUGIN_DEPENDENCIES = host-python3 host-python-pip python3

# $(1): the plugin package's upper-case name. The venv's wheels: the
# downloaded ones but the build requirements; the sdists' file names.
OPENPLC_PLUGIN_WHEELS = $(filter-out $(notdir $($(1)_BUILD_WHEELS)),\
	$(filter %.whl,$(notdir $($(1)_EXTRA_DOWNLOADS))))
OPENPLC_PLUGIN_SDIST_FILES = $(notdir $($(1)_SDISTS))
OPENPLC_PLUGIN_VENV = $(if $(strip $(call OPENPLC_PLUGIN_WHEELS,$(1)) \
	$(call OPENPLC_PLUGIN_SDIST_FILES,$(1))),/usr/lib/openplc/venvs/$($(1)_PLUGIN_NAME))

OPENPLC_PLUGIN_VENV_OPTS = \
	--name $($(1)_PLUGIN_NAME) \
	--requirements $($(1)_PLUGIN_REQUIREMENTS) \
	--wheelhouse $($(1)_DIR)/wheelhouse \
	--python-version $(PYTHON3_VERSION) \
	$(call OPENPLC_PLUGIN_PLATFORM_OPTS,$(1)) \
	--binary-wheels '$(strip $($(1)_BINARY_WHEELS))' \
	--prefix $(call OPENPLC_PLUGIN_VENV,$(1)) \
	--destdir $(TARGET_DIR) \
	--target-python /usr/bin/python3 \
	--compile-python $(HOST_DIR)/bin/python3 \
	--host-python $(HOST_DIR)/bin/python3

# The sdists' builds: what Buildroot's pep517 setup type gives a target
# Python package (package/pkg-python.mk, PKG_PYTHON_PEP517_ENV): the
# target toolchain and its flags (TARGET_CONFIGURE_OPTS), Buildroot's
# PATH, no user site; the target's sysconfigdata, _PYTHON_HOST_PLATFORM
# and host-python3 (the target's X.Y) are build-target-wheel's options.
# LDSHARED: the extension is linked by the target compiler, not by the one
# staging's sysconfigdata names. OPENPLC_PLUGIN_SYSCONFIGDATA_SYSROOT is
# empty in Buildroot (staging's sysconfigdata names staging's paths);
# scripts/check-buildroot sets it for the unstaged Debian Python it uses
# in staging's place.
OPENPLC_PLUGIN_SYSCONFIGDATA_SYSROOT =
OPENPLC_PLUGIN_WHEEL_ENV = \
	$(TARGET_CONFIGURE_OPTS) \
	LDSHARED="$(TARGET_CC) -shared" \
	PYTHONNOUSERSITE=1

OPENPLC_PLUGIN_WHEEL_OPTS = \
	--out $($(1)_DIR)/wheelhouse \
	--python-version $(PYTHON3_VERSION_MAJOR) \
	--arch $(OPENPLC_PLUGIN_TARGET_ARCH) \
	$(if $(OPENPLC_PLUGIN_FLOAT_ABI),--float-abi $(OPENPLC_PLUGIN_FLOAT_ABI)) \
	--sysconfigdata $(PYTHON3_PATH) \
	$(if $(OPENPLC_PLUGIN_SYSCONFIGDATA_SYSROOT),--sysroot $(OPENPLC_PLUGIN_SYSCONFIGDATA_SYSROOT)) \
	$(if $($(1)_BUILD_WHEELS),--build-wheelhouse $($(1)_DIR)/build-wheelhouse) \
	--build-python $(HOST_DIR)/bin/python3

OPENPLC_PLUGIN_INSTALL_OPTS = \
	--destdir $(TARGET_DIR) \
	--name $($(1)_PLUGIN_NAME) \
	--source $($(1)_DIR)/.openplc-plugin-files \
	--entry $($(1)_PLUGIN_ENTRY) \
	--order $($(1)_PLUGIN_ORDER) \
	$(if $($(1)_PLUGIN_CONFIG),--config $($(1)_PLUGIN_CONFIG)) \
	$(if $(call OPENPLC_PLUGIN_VENV,$(1)),--venv) \
	$(addprefix --writable ,$($(1)_PLUGIN_WRITABLE))

# The package's steps ($(PKG) is the package being built). The wheels
# and sdists are the package's downloads, checked against its .hash: the
# wheelhouse holds those wheels and the ones built from the sdists,
# nothing else from the download directory.
define OPENPLC_PLUGIN_BUILD_CMDS
	$(if $(call OPENPLC_PLUGIN_VENV,$(PKG)),$(OPENPLC_PLUGIN_CHECK_TARGET))
	rm -rf $($(PKG)_DIR)/wheelhouse $($(PKG)_DIR)/build-wheelhouse
	mkdir -p $($(PKG)_DIR)/wheelhouse $($(PKG)_DIR)/build-wheelhouse
	$(foreach w,$(call OPENPLC_PLUGIN_WHEELS,$(PKG)),\
		ln -sf $($(PKG)_DL_DIR)/$(w) $($(PKG)_DIR)/wheelhouse/$(w)$(sep))
	$(foreach w,$(notdir $($(PKG)_BUILD_WHEELS)),\
		ln -sf $($(PKG)_DL_DIR)/$(w) $($(PKG)_DIR)/build-wheelhouse/$(w)$(sep))
	$(foreach s,$(call OPENPLC_PLUGIN_SDIST_FILES,$(PKG)),\
		$(OPENPLC_PLUGIN_WHEEL_ENV) $($(PKG)_ENV) \
			$(OPENPLC_SCRIPTS_DIR)/build-target-wheel \
			--sdist $($(PKG)_DL_DIR)/$(s) $($(PKG)_WHEEL_OPTS) >/dev/null$(sep))
endef

# install-plugin copies the directory it is given: the plugin's files
# exactly as in its hashed source tarball, not the build directory with
# Buildroot's stamps, the wheelhouses and the licence files taken out of
# the wheels and sdists.
define OPENPLC_PLUGIN_INSTALL_TARGET_CMDS
	rm -rf $($(PKG)_DIR)/.openplc-plugin-files
	mkdir -p $($(PKG)_DIR)/.openplc-plugin-files
	$(TAR) -xzf $($(PKG)_DL_DIR)/$($(PKG)_SOURCE) --strip-components=1 \
		-C $($(PKG)_DIR)/.openplc-plugin-files
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
	$(eval $(call UPPERCASE,$(pkgname))_WHEEL_OPTS = \
		$$(call OPENPLC_PLUGIN_WHEEL_OPTS,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_EXTRA_DOWNLOADS += \
		$$($(call UPPERCASE,$(pkgname))_SDISTS) $$($(call UPPERCASE,$(pkgname))_BUILD_WHEELS)) \
	$(eval $(call UPPERCASE,$(pkgname))_PLUGIN_INSTALL_OPTS = \
		$$(call OPENPLC_PLUGIN_INSTALL_OPTS,$(call UPPERCASE,$(pkgname)))) \
	$(eval $(call UPPERCASE,$(pkgname))_DEPENDENCIES += $(OPENPLC_PLUGIN_DEPENDENCIES)) \
	$(eval $(call UPPERCASE,$(pkgname))_BUILD_CMDS = $$(OPENPLC_PLUGIN_BUILD_CMDS)) \
	$(eval $(call UPPERCASE,$(pkgname))_INSTALL_TARGET_CMDS = \
		$$(OPENPLC_PLUGIN_INSTALL_TARGET_CMDS)) \
	$(generic-package)
