#!/usr/bin/env bash
# Tests the build side of the RAUC integration without bitbake or a Buildroot
# build: the command lines and skips of scripts/check-yocto-rauc and
# scripts/check-buildroot-rauc, the layer's copies of the health gate against
# rootfs-overlay/, and both example system.conf files read by a real rauc
# (Debian's) verifying a real signed bundle. The bitbake and show-info steps
# run in those scripts, called by scripts/test.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

yocto_check=$project/scripts/check-yocto-rauc
br_check=$project/scripts/check-buildroot-rauc
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

shellcheck_clean "check-yocto-rauc, check-buildroot-rauc and this test are shellcheck-clean" \
    "$yocto_check" "$br_check" "$this_test"

# ------------------------------------------------------------ command lines
run "$yocto_check" --help
expect_rc "check-yocto-rauc --help exits 0" 0
contains "its --help names both task graphs" "$out" "bitbake -g openplc-image and bitbake -g openplc-bundle"
run "$yocto_check" --frobnicate
expect_rc "check-yocto-rauc: an unknown option is a usage error" 2
mkdir "$tmp/empty"
run "$yocto_check" --upstream "$tmp/empty"
expect_rc "check-yocto-rauc without the snapshots: skipped, exit 0" 0
contains "the skip says so plainly" "$out" "SKIP"
contains "and names the first snapshot it looked for" "$out" "$tmp/empty/openembedded-core-yocto-6.0.2.tar.xz"
# oe-core and bitbake there, meta-rauc's snapshot not: still a skip, naming it.
touch "$tmp/empty/openembedded-core-yocto-6.0.2.tar.xz" "$tmp/empty/bitbake-yocto-6.0.2.tar.xz"
run "$yocto_check" --upstream "$tmp/empty"
expect_rc "check-yocto-rauc without meta-rauc's snapshot: skipped, exit 0" 0
contains "the skip names meta-rauc's snapshot" "$out" "$tmp/empty/meta-rauc-wrynose-38da0e5.tar.xz"
contains "and says the layer was not checked with it" "$out" "NOT checked"

run "$br_check" --help
expect_rc "check-buildroot-rauc --help exits 0" 0
contains "its --help names the merge" "$out" "merge_config.sh"
run "$br_check" --frobnicate
expect_rc "check-buildroot-rauc: an unknown option is a usage error" 2
run env -u OPENPLC_BUILDROOT_DIR "$br_check" --tarball "$tmp/empty/buildroot.tar.xz"
expect_rc "check-buildroot-rauc without a Buildroot tree: skipped, exit 0" 0
contains "the skip says so plainly" "$out" "SKIP"
contains "and that the fragment was not checked" "$out" "NOT checked"

# --------------------------------------------- the layer's copies, in sync
# The layer carries the health gate's unit and script so that it works alone;
# each must equal rootfs-overlay's (which the QEMU image and Buildroot use).
health=meta-openplc/recipes-core/openplc-update-health/files
for pair in "$health/openplc-update-health.service rootfs-overlay/usr/lib/systemd/system/openplc-update-health.service" \
    "$health/update-health rootfs-overlay/usr/libexec/openplc/update-health"; do
    read -r copy original <<<"$pair"
    run cmp -- "$project/$copy" "$project/$original"
    expect_rc "$copy equals $original (copy it again after changing the original)" 0
done
if [[ -x $project/$health/update-health ]]; then
    ok "the layer's update-health is executable, as rootfs-overlay's"
else
    not_ok "the layer's update-health is executable, as rootfs-overlay's"
fi
# And the comparison sees a difference.
cp -- "$project/rootfs-overlay/usr/libexec/openplc/update-health" "$tmp/update-health"
echo '# changed' >>"$tmp/update-health"
run cmp -- "$tmp/update-health" "$project/rootfs-overlay/usr/libexec/openplc/update-health"
expect_rc "a copy that differs from the original is caught" 1

# -------------------------------- the example system.conf files, real rauc
# Both examples (meta-openplc's with rauc-conf.bbappend's placeholders filled
# as its do_install:append fills them, Buildroot's) name the same
# slots, and Debian's rauc loads each one and verifies a verity bundle
# signed under the keyring it names; a bundle signed under another CA is
# refused.
yocto_conf=$project/meta-openplc/dynamic-layers/rauc/recipes-core/rauc/files/system.conf
br_conf=$project/buildroot/board/openplc/rauc/system.conf
slots() { sed -n '/^\[slot\./,$p' "$1" | grep -v '^#'; }
equals "both examples describe the same slots" "$(slots "$yocto_conf")" "$(slots "$br_conf")"
if command -v rauc >/dev/null && command -v mksquashfs >/dev/null && command -v openssl >/dev/null; then
    make_ca() { # make_ca DIR NAME: a CA and a signing certificate it issued
        mkdir -p -- "$1"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$2 CA" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
            -keyout "$1/ca.key.pem" -out "$1/ca.cert.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$2 signer" \
            -keyout "$1/key.pem" -out "$1/csr.pem" 2>/dev/null
        openssl x509 -req -in "$1/csr.pem" -CA "$1/ca.cert.pem" -CAkey "$1/ca.key.pem" \
            -CAcreateserial -days 30 -out "$1/cert.pem" 2>/dev/null
    }
    make_ca "$tmp/trusted" trusted
    make_ca "$tmp/foreign" foreign
    # bundle DIR-OF-KEYS COMPATIBLE OUT: a verity bundle with one rootfs image.
    bundle() {
        rm -rf -- "$tmp/content"
        mkdir -p -- "$tmp/content"
        printf '[update]\ncompatible=%s\nversion=1\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.ext4\n' \
            "$2" >"$tmp/content/manifest.raucm"
        head -c 262144 /dev/urandom >"$tmp/content/rootfs.ext4"
        rauc bundle --cert="$1/cert.pem" --key="$1/key.pem" "$tmp/content" "$3" >/dev/null 2>&1
    }
    for example in yocto buildroot; do
        conf=$tmp/$example.conf
        if [[ $example == yocto ]]; then
            sed -e 's#@OPENPLC_RAUC_COMPATIBLE@#openplc-qemuarm64#' \
                -e "s#@OPENPLC_RAUC_KEYRING@#$tmp/trusted/ca.cert.pem#" "$yocto_conf" >"$conf"
        else
            sed -e "s#^path=/etc/rauc/keyring.pem\$#path=$tmp/trusted/ca.cert.pem#" "$br_conf" >"$conf"
        fi
        compatible=$(sed -n 's/^compatible=//p' "$conf")
        rm -f -- "$tmp/good.raucb" "$tmp/foreign.raucb"
        bundle "$tmp/trusted" "$compatible" "$tmp/good.raucb"
        bundle "$tmp/foreign" "$compatible" "$tmp/foreign.raucb"
        run rauc --conf="$conf" info "$tmp/good.raucb"
        expect_rc "$example's system.conf: rauc loads it and verifies a bundle signed under its keyring" 0
        contains "$example: the signature was verified" "$err" "Verified inline signature"
        contains "$example: the bundle's compatible is the one system.conf holds" "$out" "Compatible: 	'$compatible'"
        run rauc --conf="$conf" info "$tmp/foreign.raucb"
        expect_rc "$example's system.conf: a bundle signed under another CA is refused" 1
        contains "$example: rauc says why" "$err" "signature"
    done
    # A key rauc does not know is an error: so the examples' keys are all real.
    printf '[system]\ncompatible=x\nbootloader=grub\nfrobnicate=1\n' >"$tmp/bad.conf"
    run rauc --conf="$tmp/bad.conf" info "$tmp/good.raucb"
    expect_rc "rauc refuses a system.conf with a key it does not know" 1
    contains "and names the key" "$err" "frobnicate"
else
    skip "the example system.conf files under a real rauc: rauc, mksquashfs or openssl missing (scripts/install-deps --qemu-system)"
fi

finish
