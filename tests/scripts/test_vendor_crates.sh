#!/usr/bin/env bash
# Tests scripts/vendor-crates for real on a small crate depending on libc
# (the project's pin, from cargo's cache or crates.io): VENDOR/ made and stamped with Cargo.lock's sha256,
# --check passing, then failing on a changed Cargo.lock and on a missing
# VENDOR/, a second run doing nothing, the crate building with an empty
# CARGO_HOME offline from VENDOR/ as the Buildroot package builds it, and the
# refusals. The project's own crates are vendored by scripts/check-buildroot.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

vendor=$project/scripts/vendor-crates
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

shellcheck_clean "vendor-crates and this test are shellcheck-clean" "$vendor" "$this_test"

run "$vendor" --help
expect_rc "--help exits 0" 0
contains "--help says where the crates go" "$out" "DIR/VENDOR"

run "$vendor" --bogus
expect_rc "an unknown option is a usage error" 2
one_line_error "an unknown option: one line on stderr"

run "$vendor" --source "$tmp"
expect_rc "a directory without Cargo.toml is refused" 2
contains "the refusal names the directory" "$err" "$tmp has no Cargo.toml"

# A crate with one dependency from crates.io, pinned to the project's libc so
# that cargo's cache (filled by the project's own build) usually has it.
libc_version=$(sed -n '/^name = "libc"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$project/Cargo.lock")
crate=$tmp/crate
mkdir -p "$crate/src"
printf '[package]\nname = "vendored-demo"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nlibc = "=%s"\n' \
    "$libc_version" >"$crate/Cargo.toml"
printf 'fn main() { println!("built offline, pid > 0: {}", unsafe { libc::getpid() } > 0); }\n' >"$crate/src/main.rs"
(cd "$crate" && { cargo generate-lockfile --offline -q 2>/dev/null || cargo generate-lockfile -q; })

run "$vendor" --check --source "$crate"
expect_rc "--check without VENDOR/ fails" 1
contains "--check says what to run" "$err" "run $vendor --source $crate once (online)"

run "$vendor" --source "$crate"
expect_rc "vendors" 0
lock_sum=$(sha256sum "$crate/Cargo.lock")
equals "the stamp is Cargo.lock's sha256" "$(cat "$crate/VENDOR/.openplc-vendored" 2>/dev/null)" "${lock_sum%% *}"
lacks "no temporary directory is left" "$(ls -A "$crate")" ".VENDOR."

run "$vendor" --check --source "$crate"
expect_rc "--check passes on a fresh VENDOR/" 0

run "$vendor" --source "$crate"
expect_rc "a second run succeeds" 0
contains "a second run does nothing" "$err" "is up to date with Cargo.lock"

# The way the package builds: cargo --offline --locked, an empty CARGO_HOME,
# the source replacement passed with --config.
home=$tmp/cargo-home
mkdir -p "$home"
run env -C "$crate" CARGO_HOME="$home" CARGO_NET_OFFLINE=true CARGO_TARGET_DIR="$tmp/target" \
    cargo build --offline --locked --quiet \
    --config 'source.crates-io.replace-with="openplc-vendored"' \
    --config "source.openplc-vendored.directory=\"$crate/VENDOR\""
expect_rc "builds offline from VENDOR/ with an empty CARGO_HOME" 0
run "$tmp/target/debug/vendored-demo"
equals "the built program runs" "$out" "built offline, pid > 0: true"
check "libc came from VENDOR/, not a registry" test -d "$crate/VENDOR/libc" -a ! -e "$home/registry"

printf '\n# changed\n' >>"$crate/Cargo.lock"
run "$vendor" --check --source "$crate"
expect_rc "--check fails once Cargo.lock changed" 1
contains "the failure says VENDOR/ is stale" "$err" "does not match $crate/Cargo.lock"

finish
