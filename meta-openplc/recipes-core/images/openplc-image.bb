SUMMARY = "A read-only systemd image: openplc-runtime, example plugins and program"
DESCRIPTION = "Boots to multi-user.target with openplc-runtime.service enabled; \
               plugins and their venvs are pre-built into the read-only root \
               filesystem."
SECTION = "images"
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "systemd"

# read-only-rootfs: / is mounted ro; systemd's volatile-binds keep /var/lib,
# /var/cache and /var/spool on a tmpfs (see README.md: what persists), unless
# the data partition below is enabled.
IMAGE_FEATURES += "read-only-rootfs"

# Opt-in login for trying the image (runqemu): "1" gives root an empty
# password, allows root logins (also over ssh, if an ssh server is added) and
# logs root in on the serial console. Off by default: root stays locked, as a
# device's image should be. Set in local.conf: OPENPLC_IMAGE_DEBUG_LOGIN = "1".
OPENPLC_IMAGE_DEBUG_LOGIN ??= "0"
# nooelint: oelint.var.badimagefeature.allow-empty-password, oelint.var.badimagefeature.allow-root-login, oelint.var.badimagefeature.empty-root-password, oelint.var.badimagefeature.serial-autologin-root
IMAGE_FEATURES += "${@oe.utils.vartrue('OPENPLC_IMAGE_DEBUG_LOGIN', 'empty-root-password allow-empty-password allow-root-login serial-autologin-root', '', d)}"

# Opt-in data partition: "1" also writes a wic image from
# openplc-image-data.wks: the root filesystem plus an ext4 partition mounted
# at /var/lib that keeps its contents across reboots. (The .wks sits next to
# this recipe, where wic looks on every release; the layer-wide directory
# moved from wic/ on whinlatter to files/wic on wrynose.) Otherwise the
# machine's own WKS_FILE and QB_KERNEL_ROOT stay as they are.
OPENPLC_IMAGE_DATA_PARTITION ??= "0"
OVERRIDES .= "${@oe.utils.vartrue('OPENPLC_IMAGE_DATA_PARTITION', ':openplc-data', '', d)}"
# (openplc-data is the override set just above, which oelint-adv cannot know.)
# nooelint: oelint.vars.specific
IMAGE_FSTYPES:append:openplc-data = " wic"
# nooelint: oelint.vars.specific
WKS_FILE:openplc-data = "openplc-image-data.wks"
# runqemu ... wic: the root filesystem is the first partition.
# nooelint: oelint.vars.specific
QB_KERNEL_ROOT:openplc-data = "/dev/vda1"

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    openplc-runtime \
    ${@openplc_image_plugins(d)} \
    openplc-program-io-demo \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# The example plugins, less those the machine cannot run: a plugin recipe
# limited by COMPATIBLE_HOST is named here with the same pattern, so that it is
# left out on other machines instead of failing the image (bitbake -g checks
# this on qemuarm64, qemuarm and qemux86-64: scripts/check-yocto-layer).
# (The examples run everywhere: ramp-writer builds PyYAML from its sdist;
# modbus-server's pymodbus is pure Python.)
OPENPLC_IMAGE_PLUGINS ??= "openplc-plugin-ramp-writer openplc-plugin-image-logger openplc-plugin-modbus-server"
# Not by default: openplc-plugin-opcua-server (a venv of about 54 MB with an
# opted-in binary wheel; see README.md). Added to OPENPLC_IMAGE_PLUGINS, it is
# left out on machines outside its COMPATIBLE_HOST.
OPENPLC_IMAGE_PLUGINS[compatible-host-openplc-plugin-opcua-server] = "(aarch64|x86_64|arm).*-linux"
def openplc_image_plugins(d):
    import re
    host = d.getVar('HOST_SYS')
    keep = []
    for pn in (d.getVar('OPENPLC_IMAGE_PLUGINS') or '').split():
        pattern = d.getVarFlag('OPENPLC_IMAGE_PLUGINS', 'compatible-host-' + pn)
        if not pattern or re.match(pattern, host):
            keep.append(pn)
    return ' '.join(keep)

IMAGE_LINGUAS = ""

# Python, its stdlib packages and the venvs need more than core-image-minimal's 8 MiB.
IMAGE_ROOTFS_EXTRA_SPACE = "65536"

# The hardware watchdog: systemd pets /dev/watchdog and the board resets when
# systemd itself hangs. oe-core's systemd recipe writes RuntimeWatchdogSec
# into /etc/systemd/system.conf from WATCHDOG_RUNTIME_SEC, a variable of the
# systemd recipe, which an image cannot set: set it in local.conf or the distro
# (WATCHDOG_RUNTIME_SEC = "20s"; kas/openplc-image.yml does). The image checks
# that it was; OPENPLC_IMAGE_WATCHDOG = "0" builds without.
OPENPLC_IMAGE_WATCHDOG ??= "1"
ROOTFS_POSTPROCESS_COMMAND += "${@oe.utils.vartrue('OPENPLC_IMAGE_WATCHDOG', 'openplc_check_watchdog', '', d)}"
# nooelint: oelint.task.docstrings
openplc_check_watchdog() {
    if ! grep -q '^RuntimeWatchdogSec=' ${IMAGE_ROOTFS}${sysconfdir}/systemd/system.conf; then
        bbfatal "openplc-image: ${sysconfdir}/systemd/system.conf sets no RuntimeWatchdogSec: set WATCHDOG_RUNTIME_SEC (e.g. \"20s\") in local.conf, or OPENPLC_IMAGE_WATCHDOG = \"0\""
    fi
}
