#!/usr/bin/env bash
# Tests scripts/build-target-wheel for real: PyYAML 6.0.3 from its sdist, with
# its C extension against libyaml, built by Debian's cross compilers
# (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf) against the trixie sysroots
# of scripts/make-sysroot, for aarch64 and armv7 (hard float), with the build
# Python 3.13 (the target's X.Y). The .so files are checked with readelf (not
# with the tool's own ELF reader), and the refusals: armv7 code for an armv6
# target, hard-float code for a soft-float one, a compiled index wheel that is
# not opted in (scripts/build-target-venv --binary-wheels).
#
# Needs the network on the first run (PyPI: the sdist, the build requirements
# and one manylinux wheel, all kept in ~/.cache/openplc-runtime; Debian: the
# sysroots), scripts/install-deps --cross, and a Python 3.13.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

build=$project/scripts/build-target-wheel
fetch=$project/scripts/fetch-target-wheels
venv_builder=$project/scripts/build-target-venv
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
cache=${XDG_CACHE_HOME:-$HOME/.cache}/openplc-runtime
export PIP_DISABLE_PIP_VERSION_CHECK=1 SOURCE_DATE_EPOCH=1700000000
xy=3.13
# PyPI's sha256 of pyyaml-6.0.3.tar.gz: the fetch must agree with it.
sdist_sha=d76623373421df22fb4cf8817020cbb7ef15c725b9d5e45f17e189bfc384190f

shellcheck_clean "build-target-wheel, fetch-target-wheels and this test are shellcheck-clean" \
    "$build" "$fetch" "$venv_builder" "${BASH_SOURCE[0]}"

# ------------------------------------------------------------ usage errors
run "$build" --help
expect_rc "build-target-wheel --help: 0" 0
contains "--help documents the exit codes" "$out" "Exit codes"
contains "--help names the sysconfigdata variable" "$out" "_PYTHON_SYSCONFIGDATA_NAME"
run "$build" --sdist "$tmp/x.tar.gz" --out "$tmp/o" --python-version 3.13 --arch armv7l --sysconfigdata "$tmp"
expect_rc "armv7l without --float-abi: 2" 2
one_line_error "... one line"
contains "... says which option is missing" "$err" "--float-abi hard or soft"
run "$build" --sdist "$tmp/x.tar.gz" --out "$tmp/o" --python-version 3.13 --arch sparc --sysconfigdata "$tmp"
expect_rc "an unknown --arch: 2" 2
run "$build" --sdist "$tmp/x.tar.gz" --out "$tmp/o" --python-version 3.13 --arch aarch64 --sysconfigdata "$tmp"
expect_rc "a missing sdist: 3" 3

python_of() {
    local candidate
    for candidate in "python$1" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1"*/bin/"python$1" "/usr/bin/python$1"; do
        if [[ $("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) == "$1" ]]; then
            command -v "$candidate"
            return 0
        fi
    done
}
build_py=$(python_of "$xy")
other_py=$(command -v python3)
if [[ -z $build_py ]]; then
    skip "no Python $xy on this host (scripts/install-deps --cross installs one): the target builds need the target's X.Y"
    finish
    exit
fi
missing=''
for tool in aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc readelf mmdebstrap; do
    command -v "$tool" >/dev/null || missing+=" $tool"
done
if [[ -n $missing ]]; then
    skip "missing$missing: run scripts/install-deps --cross"
    finish
    exit
fi

# ------------------------------------------------------------------ fetch
sdists=$cache/sdists
build_wheels=$cache/build-wheelhouse-cp${xy/./}-$(uname -m)
printf 'setuptools==80.9.0\nCython==3.1.4\n' >"$tmp/build-requirements.txt"
run "$fetch" --python-version "$xy" --sdist PyYAML==6.0.3 --sdist-dir "$sdists" \
    --build-requirements "$tmp/build-requirements.txt" --build-wheelhouse "$build_wheels" --build-python "$build_py"
expect_rc "fetch-target-wheels --sdist --build-requirements: 0" 0
fetched=$out
contains "the sdist's sha256 is PyPI's" "$fetched" "$sdist_sha  pyyaml-6.0.3.tar.gz"
contains "a BitBake line for the sdist (subdir=sdists)" "$fetched" "pyyaml-6.0.3.tar.gz;name=pyyaml-sdist;downloadfilename=pyyaml-6.0.3.tar.gz;unpack=0;subdir=sdists\""
contains "... and its checksum" "$fetched" "SRC_URI[pyyaml-sdist.sha256sum] = \"$sdist_sha\""
contains "a Buildroot .hash line for the sdist" "$fetched" "sha256  $sdist_sha  pyyaml-6.0.3.tar.gz"
contains "BitBake lines for the build requirements (subdir=build-wheelhouse)" "$fetched" "name=build-setuptools;downloadfilename=setuptools-80.9.0-py3-none-any.whl;unpack=0;subdir=build-wheelhouse"
sums=$(grep -E '^[0-9a-f]{64}  ' <<<"$fetched" | grep -v tar.gz || true)
verify_sums() { (cd "$build_wheels" && sha256sum --quiet -c <<<"$sums"); }
check "the build wheels' printed sha256 lines verify with sha256sum -c" verify_sums
sdist=$sdists/pyyaml-6.0.3.tar.gz

# -------------------------------------------------------------- sysroots
sysroot_a64=$("$project/scripts/make-sysroot" aarch64) || sysroot_a64=''
sysroot_arm=$("$project/scripts/make-sysroot" armv7) || sysroot_arm=''
if [[ -z $sysroot_a64 || -z $sysroot_arm ]]; then
    not_ok "scripts/make-sysroot made both sysroots" "see its messages above"
    finish
    exit
fi
for s in "$sysroot_a64" "$sysroot_arm"; do
    check "$(basename -- "$s") has libyaml's header (make-sysroot's package list)" test -f "$s/usr/include/yaml.h"
done

# build TRIPLET SYSROOT ARCH [FLOAT] [OUT]: the cross build as a build system runs it.
build_for() {
    local triplet=$1 sysroot=$2 arch=$3 float=${4-} dest=${5:-$tmp/out-$3}
    run env CC="$triplet-gcc --sysroot=$sysroot" LDSHARED="$triplet-gcc --sysroot=$sysroot -shared" \
        CFLAGS="-O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2" LDFLAGS="-Wl,-z,relro,-z,now" \
        PYYAML_FORCE_LIBYAML=1 \
        "$build" --sdist "$sdist" --out "$dest" --python-version "$xy" --arch "$arch" ${float:+--float-abi "$float"} \
        --sysconfigdata "$sysroot/usr/lib/python$xy" --sysroot "$sysroot" \
        --build-wheelhouse "$build_wheels" --build-python "$build_py"
}
# so_of WHEEL DIR: unpacks the wheel and prints its _yaml*.so.
so_of() {
    rm -rf -- "$2"
    mkdir -p -- "$2"
    "$build_py" -m zipfile -e "$1" "$2"
    find "$2" -name '_yaml*.so'
}

# ---------------------------------------------------------------- aarch64
build_for aarch64-linux-gnu "$sysroot_a64" aarch64
expect_rc "PyYAML 6.0.3 from its sdist for aarch64: 0" 0
wheel=$out
equals "... a linux_aarch64 wheel for cp313" "$(basename -- "$wheel")" "pyyaml-6.0.3-cp313-cp313-linux_aarch64.whl"
so=$(so_of "$wheel" "$tmp/a64")
contains "... with the C extension for the target's ABI" "$so" "_yaml.cpython-313-aarch64-linux-gnu.so"
hdr=$(readelf -h "$so" 2>&1 || true)
contains "readelf: ELF64" "$hdr" "ELF64"
contains "readelf: machine AArch64" "$hdr" "AArch64"
dyn=$(readelf -d "$so" 2>&1 || true)
contains "... linked against the sysroot's libyaml" "$dyn" "libyaml-0.so.2"
contains "... with the build system's LDFLAGS (-z now)" "$dyn" "BIND_NOW"
lacks "no build-host path in the .so" "$(strings "$so")" "$tmp"

# ------------------------------------------------------------------ armv7
build_for arm-linux-gnueabihf "$sysroot_arm" armv7l hard
expect_rc "PyYAML 6.0.3 from its sdist for armv7 hard-float: 0" 0
arm_wheel=$out
equals "... a linux_armv7l wheel for cp313" "$(basename -- "$arm_wheel")" "pyyaml-6.0.3-cp313-cp313-linux_armv7l.whl"
so=$(so_of "$arm_wheel" "$tmp/arm")
contains "... with the C extension for the target's ABI" "$so" "_yaml.cpython-313-arm-linux-gnueabihf.so"
hdr=$(readelf -h "$so" 2>&1 || true)
contains "readelf: ELF32" "$hdr" "ELF32"
contains "readelf: machine ARM" "$hdr" "Machine:                           ARM"
contains "readelf: hard-float ABI" "$hdr" "hard-float ABI"
attrs=$(readelf -A "$so" 2>&1 || true)
contains "readelf: Tag_CPU_arch v7" "$attrs" "Tag_CPU_arch: v7"
contains "readelf: float arguments in VFP registers" "$attrs" "Tag_ABI_VFP_args: VFP registers"
contains "... linked against the sysroot's libyaml" "$(readelf -d "$so")" "libyaml-0.so.2"

# --------------------------------------------------------------- refusals
build_for arm-linux-gnueabihf "$sysroot_arm" armv6l hard "$tmp/out-v6"
expect_rc "armv7 code built for an armv6l target is refused: 4" 4
contains "... naming the wheel and the file" "$err" "pyyaml-6.0.3-cp313-cp313-linux_armv6l.whl: yaml/_yaml.cpython-313-arm-linux-gnueabihf.so is ARM v7 code, the target is armv6l"
check "... and no wheel is left in --out" test -z "$(ls -A "$tmp/out-v6" 2>/dev/null)"
build_for arm-linux-gnueabihf "$sysroot_arm" armv7l soft "$tmp/out-soft"
expect_rc "hard-float code built for a soft-float target is refused: 4" 4
contains "... naming the float ABI" "$err" "is hard-float ABI, the target is soft-float"
run env CC=false "$build" --sdist "$sdist" --out "$tmp/o" --python-version "$xy" --arch aarch64 \
    --sysconfigdata "$sysroot_a64/usr/lib/python$xy" --build-python "$other_py"
if [[ $("$other_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') != "$xy" ]]; then
    expect_rc "a build Python of another X.Y than the target's: 5" 5
    contains "... says why" "$err" "give a Python $xy"
fi

# ------------------------------- the same check in build-target-venv (opt-in)
printf 'PyYAML==6.0.3\n' >"$tmp/requirements.txt"
mkdir -p "$tmp/wh-arm"
cp -- "$arm_wheel" "$tmp/wh-arm/"
venv_for() {
    run "$venv_builder" --name ramp_writer --requirements "$tmp/requirements.txt" --wheelhouse "$1" \
        --python-version "$xy" --platform "$2" --destdir "$tmp/root-$RANDOM" --compile-python "$build_py" "${@:3}"
}
venv_for "$tmp/wh-arm" linux_armv7l --binary-wheels ''
expect_rc "build-target-venv takes the armv7 wheel built from source without an opt-in: 0" 0
venv_for "$tmp/wh-arm" linux_armv7l --float-abi soft --binary-wheels ''
expect_rc "... refuses it for a soft-float target: 4" 4
contains "... naming the file" "$err" "_yaml.cpython-313-arm-linux-gnueabihf.so is hard-float ABI, the target is soft-float"

index_wheels=$cache/wheelhouse/cp313-manylinux2014_aarch64-pyyaml-6.0.3
run "$fetch" --requirements "$tmp/requirements.txt" --wheelhouse "$index_wheels" --python-version "$xy" \
    --platform manylinux2014_aarch64 --format sha256sum
expect_rc "fetch PyYAML 6.0.3's manylinux aarch64 wheel: 0" 0
venv_for "$index_wheels" manylinux2014_aarch64 --binary-wheels ''
expect_rc "a compiled wheel from the index without an opt-in is refused: 4" 4
contains "... saying how to opt in" "$err" "--binary-wheels pyyaml (Yocto: OPENPLC_PLUGIN_BINARY_WHEELS, Buildroot: <PKG>_BINARY_WHEELS)"
venv_for "$index_wheels" manylinux2014_aarch64 --binary-wheels 'PyYAML'
expect_rc "... accepted when opted in: 0" 0
venv_for "$index_wheels" manylinux2014_x86_64 --binary-wheels 'PyYAML'
expect_rc "an opted-in wheel is still refused for another CPU: not 0" "$([[ $rc != 0 ]] && echo "$rc" || echo nonzero)"

finish
