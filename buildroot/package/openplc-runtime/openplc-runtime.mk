################################################################################
#
# openplc-runtime
#
################################################################################

ifeq ($(BR2_PACKAGE_OPENPLC_RUNTIME_CHECKOUT),y)
# In-tree build: the checkout this BR2_EXTERNAL tree lives in.
OPENPLC_RUNTIME_VERSION = custom
OPENPLC_RUNTIME_SITE = $(OPENPLC_TOPDIR)
OPENPLC_RUNTIME_SITE_METHOD = local
# Not the host's cargo build tree, nor scripts/run-example's venvs.
OPENPLC_RUNTIME_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target --exclude=/venvs
# legal-info archives a local source with Buildroot's VCS exclusions
# only, not the ones above: add them there (private: not inherited by
# the steps legal-info depends on).
openplc-runtime-legal-info: private RSYNC_VCS_EXCLUSIONS += \
	--exclude=/target --exclude=/venvs

else
# A release tarball (git archive --prefix=openplc-runtime-VERSION/ of the
# release tag). Buildroot's download step adds the crates (VENDOR/, cargo
# vendor) and checks the result against the sha256 listed for
# openplc-runtime-VERSION.tar.gz: the vendored tarball's.
OPENPLC_RUNTIME_VERSION = $(call qstrip,$(BR2_PACKAGE_OPENPLC_RUNTIME_VERSION))
OPENPLC_RUNTIME_SITE = $(call qstrip,$(BR2_PACKAGE_OPENPLC_RUNTIME_SITE))
# Not the default name (-cargo4.tar.gz): the name the release is published as.
# check-package disable lib_mk.RemoveDefaultPackageSourceVariable
OPENPLC_RUNTIME_SOURCE = openplc-runtime-$(OPENPLC_RUNTIME_VERSION).tar.gz
ifeq ($(BR_BUILDING)$(BR2_PACKAGE_OPENPLC_RUNTIME),yy)
ifeq ($(OPENPLC_RUNTIME_SITE),)
$(error openplc-runtime: BR2_PACKAGE_OPENPLC_RUNTIME_SITE is empty: set the URL of the release tarballs, or select BR2_PACKAGE_OPENPLC_RUNTIME_CHECKOUT)
endif
endif
endif

OPENPLC_RUNTIME_LICENSE = Apache-2.0 or MIT
OPENPLC_RUNTIME_LICENSE_FILES = LICENSE

# host-python3: pyo3's build script runs it to read the target's
# _sysconfigdata; python3: the libpython3.X.so the runtime embeds.
OPENPLC_RUNTIME_DEPENDENCIES = host-python3 python3

# PYO3_CROSS=1 even when the target's arch is the host's: always
# embed the target's Python, never the host's.
OPENPLC_RUNTIME_CARGO_ENV = \
	PYO3_CROSS=1 \
	PYO3_CROSS_LIB_DIR="$(STAGING_DIR)/usr/lib/python$(PYTHON3_VERSION_MAJOR)" \
	PYO3_CROSS_PYTHON_VERSION="$(PYTHON3_VERSION_MAJOR)" \
	PYO3_CROSS_PYTHON_IMPLEMENTATION=CPython \
	PYO3_PYTHON="$(HOST_DIR)/bin/python3"

# PKG_CARGO_ENV replaces the crate's [profile.release] with Buildroot's
# generic one (opt-level from BR2_OPTIMIZE_*, no LTO, 16 codegen units):
# a binary about twice the size. Set the crate's own values back.
OPENPLC_RUNTIME_CARGO_ENV += \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
	CARGO_PROFILE_RELEASE_LTO=true \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

# A local source gets no vendored crates from Buildroot: use the ones
# scripts/vendor-crates put into the checkout's VENDOR/ (cargo --offline).
OPENPLC_RUNTIME_VENDOR_OPTS = \
	--config 'source.crates-io.replace-with="openplc-vendored"' \
	--config 'source.openplc-vendored.directory="$(OPENPLC_RUNTIME_SRCDIR)/VENDOR"'
OPENPLC_RUNTIME_CARGO_BUILD_OPTS = \
	$(if $(OPENPLC_RUNTIME_OVERRIDE_SRCDIR),$(OPENPLC_RUNTIME_VENDOR_OPTS))
OPENPLC_RUNTIME_CARGO_INSTALL_OPTS = \
	$(if $(OPENPLC_RUNTIME_OVERRIDE_SRCDIR),$(OPENPLC_RUNTIME_VENDOR_OPTS))

define OPENPLC_RUNTIME_CHECK_VENDORED
	$(if $(OPENPLC_RUNTIME_OVERRIDE_SRCDIR),\
		$(OPENPLC_SCRIPTS_DIR)/vendor-crates --check \
			--source $(OPENPLC_RUNTIME_OVERRIDE_SRCDIR))
endef
OPENPLC_RUNTIME_PRE_BUILD_HOOKS += OPENPLC_RUNTIME_CHECK_VENDORED

# The unit, tmpfiles entry and default plugins.conf: the project's one
# copy in rootfs-overlay/, shared with Yocto and the QEMU test image.
# openplc_capsule.py, the ctypes mirror of the runtime's args struct,
# goes where plugins import it from: their parent directory.
define OPENPLC_RUNTIME_INSTALL_FILES
	$(INSTALL) -D -m 0644 \
		$(@D)/rootfs-overlay/usr/lib/tmpfiles.d/openplc-runtime.conf \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/openplc-runtime.conf
	$(INSTALL) -D -m 0644 $(@D)/rootfs-overlay/etc/openplc/plugins.conf \
		$(TARGET_DIR)/etc/openplc/plugins.conf
	$(INSTALL) -D -m 0644 $(@D)/examples/plugins/openplc_capsule.py \
		$(TARGET_DIR)/usr/lib/openplc/plugins/openplc_capsule.py
endef
OPENPLC_RUNTIME_POST_INSTALL_TARGET_HOOKS += OPENPLC_RUNTIME_INSTALL_FILES

define OPENPLC_RUNTIME_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 \
		$(@D)/rootfs-overlay/usr/lib/systemd/system/openplc-runtime.service \
		$(TARGET_DIR)/usr/lib/systemd/system/openplc-runtime.service
endef

$(eval $(cargo-package))
