################################################################################
#
# openplc-update-health
#
################################################################################

# The unit and its script: the project's one copy in rootfs-overlay/ of the
# checkout this tree belongs to (shared with Yocto and the QEMU test image),
# and only those and the licence copied from it.
OPENPLC_UPDATE_HEALTH_VERSION = custom
OPENPLC_UPDATE_HEALTH_SITE = $(OPENPLC_TOPDIR)
OPENPLC_UPDATE_HEALTH_SITE_METHOD = local
OPENPLC_UPDATE_HEALTH_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--include=/LICENSE \
	--include=/rootfs-overlay/ \
	--include=/rootfs-overlay/usr/ \
	--include=/rootfs-overlay/usr/lib/ \
	--include=/rootfs-overlay/usr/lib/systemd/ \
	--include=/rootfs-overlay/usr/lib/systemd/system/ \
	--include=/rootfs-overlay/usr/lib/systemd/system/openplc-update-health.service \
	--include=/rootfs-overlay/usr/libexec/ \
	--include=/rootfs-overlay/usr/libexec/openplc/ \
	--include=/rootfs-overlay/usr/libexec/openplc/update-health \
	--exclude=*
# legal-info archives a local source with Buildroot's VCS exclusions
# only: the same selection there (private: not inherited).
openplc-update-health-legal-info: private RSYNC_VCS_EXCLUSIONS += \
	$(OPENPLC_UPDATE_HEALTH_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS)

OPENPLC_UPDATE_HEALTH_LICENSE = Apache-2.0 or MIT
OPENPLC_UPDATE_HEALTH_LICENSE_FILES = LICENSE

ifeq ($(BR2_PACKAGE_OPENPLC_UPDATE_HEALTH_EXAMPLE_SYSTEM_CONF),y)
define OPENPLC_UPDATE_HEALTH_INSTALL_EXAMPLE_SYSTEM_CONF
	$(INSTALL) -D -m 0644 \
		$(BR2_EXTERNAL_OPENPLC_PATH)/board/openplc/rauc/system.conf \
		$(TARGET_DIR)/etc/rauc/system.conf
endef
endif

define OPENPLC_UPDATE_HEALTH_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/rootfs-overlay/usr/libexec/openplc/update-health \
		$(TARGET_DIR)/usr/libexec/openplc/update-health
	$(OPENPLC_UPDATE_HEALTH_INSTALL_EXAMPLE_SYSTEM_CONF)
endef

# Enabled by its [Install] WantedBy=multi-user.target (Buildroot's
# systemd presets enable every unit).
define OPENPLC_UPDATE_HEALTH_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 \
		$(@D)/rootfs-overlay/usr/lib/systemd/system/openplc-update-health.service \
		$(TARGET_DIR)/usr/lib/systemd/system/openplc-update-health.service
endef

$(eval $(generic-package))
