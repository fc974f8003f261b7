#!/usr/bin/env bash
# Tests scripts/check-buildroot's own behaviour (not the Buildroot tree, which
# the script itself checks): the skip without a Buildroot tree, the refusals,
# and that its assertions fail when what Buildroot computed is wrong: the
# helper fed a real make output (from the script's last run, when there is
# one) with the crate's profile override, a dependency or a wheel hash taken
# away, and a dependency needing a newer Rust than rust-version says.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

script=$project/scripts/check-buildroot
helper=$project/scripts/lib/check_buildroot.py
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
python=/usr/bin/python3
[[ -x $python ]] || python=python3

shellcheck_clean "check-buildroot and this test are shellcheck-clean" "$script" "$this_test"

run "$script" --help
expect_rc "--help exits 0" 0
contains "--help names the tarball" "$out" "buildroot-2026.02.3.tar.xz"

run env -u OPENPLC_BUILDROOT_DIR "$script" --tarball "$tmp/none.tar.xz"
expect_rc "no Buildroot tree: skipped, exit 0" 0
contains "the skip says why and what to give" "$out" "SKIP - check-buildroot: no Buildroot tree (give --buildroot DIR"

run "$script" --buildroot "$tmp"
expect_rc "a directory that is not Buildroot is refused" 2
contains "the refusal names it" "$err" "$tmp is not a Buildroot source tree"

run "$script" --bogus
expect_rc "an unknown option is a usage error" 2

# cargo-env / cargo-opts on a small make output: the last assignment wins,
# cross-only keys go, the build directory maps to the copy.
printf '%s\n' '{}' \
    "PKG_CARGO_ENV='CARGO_HOME=/dl/home CARGO_BUILD_TARGET=\"aarch64-unknown-linux-gnu\" CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=gcc CARGO_TARGET_APPLIES_TO_HOST=\"false\" CARGO_PROFILE_RELEASE_LTO=\"false\"'" \
    "OPENPLC_RUNTIME_CARGO_ENV='PYO3_PYTHON=\"/out/host/bin/python3\" CARGO_PROFILE_RELEASE_LTO=true'" \
    "OPENPLC_RUNTIME_SRCDIR='/out/build/openplc-runtime-custom/'" \
    "OPENPLC_RUNTIME_CARGO_BUILD_OPTS='--config '\\''source.x.directory=\"/out/build/openplc-runtime-custom//VENDOR\"'\\'''" \
    >"$tmp/small.txt"
# (NUL-separated: read through tr, not $(...), which drops NULs.)
equals "cargo-env: host-build environment, the package's value last" \
    "$("$python" "$helper" cargo-env --make-output "$tmp/small.txt" | tr '\0' ' ')" \
    "CARGO_TARGET_APPLIES_TO_HOST=false CARGO_PROFILE_RELEASE_LTO=true "
equals "cargo-opts: the build directory becomes the copy" \
    "$("$python" "$helper" cargo-opts --make-output "$tmp/small.txt" --which build --srcdir /copy | tr '\0' ' ')" \
    '--config source.x.directory="/copy/VENDOR" '

# msrv: a dependency needing more than rust-version fails.
cat >"$tmp/meta.json" <<'JSON'
{"packages": [{"id": "root", "name": "openplc-runtime", "rust_version": "1.85"},
              {"id": "h", "name": "heapless", "rust_version": "1.88"},
              {"id": "t", "name": "test-only", "rust_version": "1.99"}],
 "resolve": {"root": "root", "nodes": [
   {"id": "root", "deps": [{"pkg": "h", "dep_kinds": [{"kind": null}]},
                           {"pkg": "t", "dep_kinds": [{"kind": "dev"}]}]},
   {"id": "h", "deps": []}, {"id": "t", "deps": []}]}}
JSON
run "$python" "$helper" msrv --metadata "$tmp/meta.json"
expect_rc "msrv: rust-version 1.85 below heapless' 1.88 fails" 1
contains "msrv: names the dependency (dev-dependencies do not count)" "$out" "(heapless needs 1.88.0)"
sed -i 's/"rust_version": "1.85"/"rust_version": "1.88"/' "$tmp/meta.json"
run "$python" "$helper" msrv --metadata "$tmp/meta.json"
expect_rc "msrv: rust-version 1.88 passes" 0

# The real make output of the last check-buildroot run, spoiled three ways.
cache=${OPENPLC_CACHE:-$HOME/.cache/openplc-runtime}/buildroot
real=$cache/make-output.txt
if [[ -f $real && -f $cache/check-out/.config ]]; then
    assert_with() {
        run "$python" "$helper" assert --make-output "$1" --config "$cache/check-out/.config" \
            --top "$project" --out "$cache/check-out"
    }
    assert_with "$real"
    expect_rc "assert: the last run's real output passes" 0
    sed -e '/^OPENPLC_RUNTIME_CARGO_ENV=/s/ CARGO_PROFILE_RELEASE_LTO=true//' "$real" >"$tmp/no-lto.txt"
    assert_with "$tmp/no-lto.txt"
    expect_rc "assert: without the package's LTO override it fails" 1
    contains "assert: names the profile key" "$out" "not ok - cargo env: CARGO_PROFILE_RELEASE_LTO is Cargo.toml's lto"
    sed -e '1s/"host-python-pip", //' "$real" >"$tmp/no-pip.txt"
    assert_with "$tmp/no-pip.txt"
    expect_rc "assert: a plugin without host-python-pip fails" 1
    contains "assert: names the package" "$out" "not ok - show-info: openplc-plugin-image-logger depends on"
    sed -e '1s/tabulate-0.9.0-py3-none-any.whl/tabulate-0.9.0-cp313-cp313-manylinux_2_28_aarch64.whl/g' "$real" >"$tmp/cp313.txt"
    assert_with "$tmp/cp313.txt"
    contains "assert: a wheel for another Python fails" "$out" "not ok - openplc-plugin-image-logger: tabulate-0.9.0-cp313-cp313-manylinux_2_28_aarch64.whl fits CPython 3.14"
    contains "assert: a wheel without a hash line fails" "$out" "not ok - openplc-plugin-image-logger: tabulate-0.9.0-cp313-cp313-manylinux_2_28_aarch64.whl has a sha256"

    # The wheel platform follows the toolchain's glibc (features.h): a wheel
    # needing a newer glibc does not fit, a missing features.h fails.
    sed -e '1s/tabulate-0.9.0-py3-none-any.whl/tabulate-0.9.0-cp314-cp314-manylinux_2_99_aarch64.whl/g' "$real" >"$tmp/glibc.txt"
    assert_with "$tmp/glibc.txt"
    contains "assert: a wheel for a newer glibc than the toolchain's fails" "$out" \
        "not ok - openplc-plugin-image-logger: tabulate-0.9.0-cp314-cp314-manylinux_2_99_aarch64.whl fits CPython 3.14"
    sed -e "s|^OPENPLC_PLUGIN_FEATURES_H=.*|OPENPLC_PLUGIN_FEATURES_H='$tmp/none/features.h'|" "$real" >"$tmp/nofeatures.txt"
    assert_with "$tmp/nofeatures.txt"
    expect_rc "assert: no features.h, no glibc version: fails" 1
    contains "assert: names features.h" "$out" "not ok - features.h $tmp/none/features.h gives a glibc version"

    # The plugin package's install-plugin options, as Buildroot computed
    # them, run for real into a scratch root instead of the target dir.
    opts=$(sed -n "s/^OPENPLC_PLUGIN_IMAGE_LOGGER_PLUGIN_INSTALL_OPTS='\(.*\)'$/\1/p" "$real")
    opts=${opts//$cache\/check-out\/target/$tmp\/root}
    # --source is where the hashed tarball's files are unpacked again at
    # install time (the build directory's .openplc-plugin-files): the same
    # files as the example's.
    opts=${opts//$cache\/check-out\/build\/openplc-plugin-image-logger-0.1.0\/.openplc-plugin-files/$project\/examples\/plugins\/image_logger}
    read -r -a words <<<"$opts"
    run "$project/scripts/install-plugin" "${words[@]}"
    expect_rc "install-plugin runs with image_logger's computed options" 0
    equals "the drop-in line names the plugin, its config and its venv" \
        "$(grep -v '^#' "$tmp/root/usr/lib/openplc/plugins.conf.d/50-image_logger.conf" 2>/dev/null)" \
        "image_logger,/usr/lib/openplc/plugins/image_logger/plugin.py,1,0,/usr/lib/openplc/plugins/image_logger/config.json,/usr/lib/openplc/venvs/image_logger"
else
    skip "assert on real Buildroot output: run scripts/check-buildroot first ($real)"
fi

# legal-info of the last run (step 2d), spoiled: a target/ in the runtime's
# archive, a wheel's licence left out of the plugin's LICENSE.
legal=$cache/check-out/legal-info
if [[ -f $legal/manifest.csv && -f $real ]]; then
    run "$python" "$helper" legal --make-output "$real" --legal-info "$legal" --top "$project"
    expect_rc "legal: the last run's legal-info passes" 0
    cp -r -- "$legal" "$tmp/legal"
    archive=$tmp/legal/sources/openplc-runtime-custom/openplc-runtime-custom.tar.gz
    mkdir -p "$tmp/arch/openplc-runtime-custom/target/release"
    tar -xzf "$archive" -C "$tmp/arch"
    tar -czf "$archive" -C "$tmp/arch" openplc-runtime-custom
    run "$python" "$helper" legal --make-output "$real" --legal-info "$tmp/legal" --top "$project"
    expect_rc "legal: a runtime archive with target/ fails" 1
    contains "legal: names target/" "$out" "not ok - legal-info: the runtime's archive has no target/ nor venvs/"
    sed -e "s/^OPENPLC_PLUGIN_IMAGE_LOGGER_LICENSE='.*'$/OPENPLC_PLUGIN_IMAGE_LOGGER_LICENSE='Apache-2.0 or MIT (plugin)'/" \
        "$real" >"$tmp/no-dist-licence.txt"
    run "$python" "$helper" legal --make-output "$tmp/no-dist-licence.txt" --legal-info "$legal" --top "$project"
    contains "legal: a plugin not declaring its wheel's licence fails" "$out" \
        "not ok - openplc-plugin-image-logger: declares tabulate-0.9.0-py3-none-any.whl's licence from its metadata, 'MIT (tabulate)'"
else
    skip "legal-info checks: run scripts/check-buildroot first ($legal)"
fi

# The program package's checks (check_buildroot_program.py) on the last
# run's real make output, spoiled: each must fail, naming what is wrong.
real_program=$cache/make-output-program.txt
strucpp=$(find "$cache/strucpp" -mindepth 2 -maxdepth 2 -type d -name 'strucpp-*' 2>/dev/null | head -n 1)
if [[ -f $real_program && -n $strucpp && -f $cache/check-out/.config ]]; then
    program_with() {
        run "$python" "$project/scripts/lib/check_buildroot_program.py" --make-output "$1" \
            --config "$cache/check-out/.config" --package openplc-program-io-demo --top "$project" --strucpp "$2"
    }
    program_with "$real_program" "$strucpp"
    expect_rc "program: the last run's real output passes (compiled, staged, drop-in)" 0
    sed -e "s/^OPENPLC_STRUCPP_VERSION='fb7980f/OPENPLC_STRUCPP_VERSION='0b7980f/" "$real_program" >"$tmp/rev.txt"
    program_with "$tmp/rev.txt" "$strucpp"
    contains "program: another STruC++ commit than the snapshot's fails" "$out" "not ok - openplc-strucpp pins the full commit"
    cp -r -- "$strucpp" "$tmp/strucpp-fb7980f"
    rm -- "$tmp/strucpp-fb7980f/src/runtime/include/iec_std_lib.hpp"
    printf 'changed\n' >>"$tmp/strucpp-fb7980f/COPYING.RUNTIME"
    program_with "$real_program" "$tmp/strucpp-fb7980f"
    expect_rc "program: a STruC++ tree without the runtime headers fails" 1
    contains "program: the changed licence file is named" "$out" "not ok - openplc-strucpp's .hash: COPYING.RUNTIME has the snapshot's sha256"
    contains "program: the build fails, by name" "$out" "not ok - openplc-program-io-demo's BUILD_CMDS with aarch64-linux-gnu-g++"
    sed -e "/^OPENPLC_PROGRAM_IO_DEMO_BUILD_CMDS=/,/^OPENPLC_PROGRAM_IO_DEMO_[A-Z_]*DEPENDENCIES=/s/-D_FORTIFY_SOURCE=[0-9]//" "$real_program" >"$tmp/flags.txt"
    program_with "$tmp/flags.txt" "$strucpp"
    contains "program: build commands without \$(TARGET_CXXFLAGS) fail" "$out" "not ok - openplc-program-io-demo's BUILD_CMDS compile with"
else
    skip "program package checks on real Buildroot output: run scripts/check-buildroot first ($real_program)"
fi

finish
