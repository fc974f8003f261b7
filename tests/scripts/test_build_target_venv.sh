#!/usr/bin/env bash
# Tests scripts/build-target-venv and scripts/fetch-target-wheels for real:
# real manylinux aarch64 wheels from PyPI (one compiled: PyYAML, one pure:
# tabulate, with a console script), fetched by fetch-target-wheels into a cache
# so later runs are quick; an aarch64 venv built offline and checked file by
# file; a second build compared byte for byte; the refusals; and a venv for this
# host built by the same script, loaded by the runtime.
#
# Needs the network (PyPI) for the fetch, python3 with pip, and a Python of the
# target's X.Y to compile .pyc (3.13 when this machine has one, else python3's).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

build=$project/scripts/build-target-venv
fetch=$project/scripts/fetch-target-wheels
helper=$project/scripts/lib/target_venv.py
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
cache=${XDG_CACHE_HOME:-$HOME/.cache}/openplc-runtime/wheelhouse
epoch=1700000000
export PIP_DISABLE_PIP_VERSION_CHECK=1

host_xy=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_prefix=$(python3 -c 'import sys; print(sys.base_prefix)')
host_arch=$(uname -m)

# python_of XY: a working interpreter of that version, or nothing.
python_of() {
    local candidate
    for candidate in "python$1" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1"*/bin/"python$1" "/usr/bin/python$1"; do
        if [[ $("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) == "$1" ]]; then
            command -v "$candidate"
            return 0
        fi
    done
    return 0
}

# The target: Debian 13's Python 3.13 when this host can compile for it.
xy=3.13
compile_py=$(python_of "$xy")
if [[ -z $compile_py ]]; then
    xy=$host_xy
    compile_py=$(python_of "$xy")
    printf '# no Python 3.13 here: the aarch64 venv is built for Python %s instead\n' "$xy"
fi
abi=cp${xy/./}
platform=manylinux2014_aarch64
printf '# target: CPython %s on %s; .pyc compiled by %s\n' "$xy" "$platform" "$compile_py"

req=$tmp/req/requirements.txt
mkdir -p "$tmp/req"
printf 'PyYAML==6.0.2\ntabulate==0.9.0\n' >"$req"

# ------------------------------------------------------- fetch-target-wheels
run "$fetch" --help
expect_rc "fetch-target-wheels --help: 0" 0
contains "fetch --help documents exit codes" "$out" "Exit codes"
run "$fetch" --requirements "$req" --wheelhouse "$tmp/x" --python-version 3 --platform "$platform"
expect_rc "fetch with a bad --python-version: 2" 2
one_line_error "fetch usage error: one line"
run "$fetch" --requirements "$tmp/none.txt" --wheelhouse "$tmp/x" --python-version "$xy" --platform "$platform"
expect_rc "fetch with a missing requirements file: 3" 3

wheelhouse=$cache/$abi-$platform
run "$fetch" --requirements "$req" --wheelhouse "$wheelhouse" --python-version "$xy" --platform "$platform"
expect_rc "fetch-target-wheels ($abi, $platform): 0" 0
fetched=$out
yaml_whl=$(sed -n 's/^[0-9a-f]\{64\}  \(PyYAML-6\.0\.2-.*\.whl\)$/\1/p' <<<"$fetched")
tab_whl=$(sed -n 's/^[0-9a-f]\{64\}  \(tabulate-0\.9\.0-py3-none-any\.whl\)$/\1/p' <<<"$fetched")
contains "fetch got a compiled aarch64 PyYAML wheel for $abi" "$yaml_whl" "-$abi-$abi-manylinux"
contains "... for aarch64" "$yaml_whl" "aarch64"
equals "fetch got the pure tabulate wheel" "$tab_whl" "tabulate-0.9.0-py3-none-any.whl"
sums=$(grep -E '^[0-9a-f]{64}  ' <<<"$fetched" || true)
verify_sums() { (cd "$wheelhouse" && sha256sum --quiet -c <<<"$sums"); }
check "the printed sha256 lines verify with sha256sum -c in the wheelhouse" verify_sums
yaml_sha=$(sha256sum "$wheelhouse/$yaml_whl" | cut -d' ' -f1 || true)
contains "BitBake SRC_URI line with the PyPI URL" "$fetched" \
    "SRC_URI += \"https://files.pythonhosted.org/"
contains "BitBake checksum line" "$fetched" "SRC_URI[pyyaml.sha256sum] = \"$yaml_sha\""
contains "Buildroot .hash line" "$fetched" "sha256  $yaml_sha  $yaml_whl"
run "$fetch" --requirements "$req" --wheelhouse "$wheelhouse" --python-version "$xy" --platform "$platform" --format buildroot
expect_rc "fetch --format buildroot: 0" 0
equals "--format buildroot prints only .hash lines (and # URL comments)" \
    "$(grep -cvE '^(#|sha256  [0-9a-f]{64}  )' <<<"$out" || true)" "0"

# Hash-pinned requirements, as a recipe would carry them.
hreq=$tmp/req/hashed.txt
while read -r sum file; do
    case $file in
        PyYAML-*) printf 'PyYAML==6.0.2 \\\n    --hash=sha256:%s\n' "$sum" ;;
        tabulate-*) printf 'tabulate==0.9.0 --hash=sha256:%s\n' "$sum" ;;
    esac
done <<<"$sums" >"$hreq"

# ---------------------------------------------------------- usage and inputs
run "$build" --help
expect_rc "build-target-venv --help: 0" 0
contains "build --help documents exit codes" "$out" "Exit codes"
common=(--name demo --requirements "$hreq" --wheelhouse "$wheelhouse" --python-version "$xy" --platform "$platform")
run "$build" --name demo --requirements "$hreq" --python-version "$xy" --platform "$platform"
expect_rc "build without --wheelhouse: 2" 2
one_line_error "build usage error: one line"
run "$build" "${common[@]}" --platform 'x86 64'
expect_rc "build with a bad --platform: 2" 2
run "$build" "${common[@]}" --prefix relative/path --destdir "$tmp/s0"
expect_rc "build with a relative --prefix: 2" 2
run "$build" --name demo --requirements "$tmp/none.txt" --wheelhouse "$wheelhouse" --python-version "$xy" --platform "$platform"
expect_rc "build with a missing requirements file: 3" 3
run "$build" "${common[@]}" --python-version 3.99 --destdir "$tmp/s0"
expect_rc "build for a Python this host cannot compile for: 5" 5
one_line_error "no compile Python: one line"
contains "no compile Python: names the version" "$err" "no Python 3.99"
if [[ $xy != "$host_xy" ]]; then
    run "$build" "${common[@]}" --compile-python python3 --destdir "$tmp/s0"
    expect_rc "--compile-python of another X.Y ($host_xy for $xy): 5" 5
    contains "wrong compile Python: explains the magic number" "$err" "magic number"
fi
mkdir -p "$tmp/s0/usr/lib/openplc/venvs/demo" && touch "$tmp/s0/usr/lib/openplc/venvs/demo/precious"
SOURCE_DATE_EPOCH=$epoch run "$build" "${common[@]}" --destdir "$tmp/s0"
expect_rc "build over a directory that is not a venv: 3" 3
check "... which is left alone" test -f "$tmp/s0/usr/lib/openplc/venvs/demo/precious"

# ------------------------------------------------------ the aarch64 venv
stage1=$tmp/stage1
stage2=$tmp/stage2
offline=()
if unshare -n true 2>/dev/null; then
    # No network namespace but loopback: proves the build never needs the network.
    offline=(unshare -n)
else
    skip "unshare -n is not permitted here: the build's offline-ness is not enforced"
fi
SOURCE_DATE_EPOCH=$epoch run "${offline[@]}" "$build" "${common[@]}" --destdir "$stage1"
expect_rc "build the aarch64 venv (hash-checked, ${offline[*]:-online}): 0" 0
v1=$stage1/usr/lib/openplc/venvs/demo
equals "stdout is the venv's path" "$out" "$v1"
site=$v1/lib/python$xy/site-packages
prefix=/usr/lib/openplc/venvs/demo

equals "pyvenv.cfg: home = /usr/bin, the target version" "$(cat "$v1/pyvenv.cfg" 2>&1)" \
    "home = /usr/bin
include-system-site-packages = false
version = $xy"
equals "bin/python3 -> /usr/bin/python3" "$(readlink "$v1/bin/python3")" /usr/bin/python3
equals "bin/python -> python3" "$(readlink "$v1/bin/python")" python3
equals "bin/python$xy -> python3" "$(readlink "$v1/bin/python$xy")" python3
equals "the console script's #! is the venv's python on the target" \
    "$(head -n 1 "$v1/bin/tabulate" 2>&1)" "#!$prefix/bin/python3"
check "tabulate (pure) is in lib/python$xy/site-packages" test -f "$site/tabulate/__init__.py"
so=$(find "$site/yaml" -name "_yaml.cpython-*.so" -print -quit)
contains "PyYAML's extension is built for the target ABI" "$so" "_yaml.cpython-${xy/./}-aarch64-linux-gnu.so"
# ELF e_machine 183 is AArch64.
equals "the extension is an AArch64 ELF" "$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(20); print(int.from_bytes(d[18:20],"little"))' "$so")" 183
check "no direct_url.json (it holds build-host URLs)" test -z "$(find "$v1" -name direct_url.json)"
equals "INSTALLER says pip" "$(cat "$site/tabulate-0.9.0.dist-info/INSTALLER")" pip

# RECORD: the script moved to ../../../bin with the hash of its new #! line.
record_check=$(python3 - "$site" <<'EOF'
import base64, csv, glob, hashlib, os, sys
site = sys.argv[1]
problems = []
for record in glob.glob(os.path.join(site, "*.dist-info", "RECORD")):
    for row in csv.reader(open(record)):
        path = os.path.normpath(os.path.join(site, row[0]))
        if not os.path.exists(path):
            problems.append("missing " + row[0])
        elif row[1]:
            digest = base64.urlsafe_b64encode(hashlib.sha256(open(path, "rb").read()).digest()).rstrip(b"=").decode()
            if row[1] != "sha256=" + digest:
                problems.append("hash of " + row[0])
print("; ".join(problems) or "ok")
EOF
)
equals "every RECORD entry exists with the right hash" "$record_check" ok
contains "RECORD lists the script at ../../../bin" "$(cat "$site/tabulate-0.9.0.dist-info/RECORD")" "../../../bin/tabulate,sha256="
contains "RECORD lists the compiled .pyc" "$(cat "$site/tabulate-0.9.0.dist-info/RECORD")" "tabulate/__pycache__/__init__.cpython-${xy/./}.pyc,,"

# .pyc: one per module, the target version's magic, unchecked-hash, right
# source hash, and the target path as co_filename.
pyc_check=$(env -u PYTHONPATH "$compile_py" - "$site" "$prefix/lib/python$xy/site-packages" <<'EOF'
import glob, importlib.util, marshal, os, sys
site, target = sys.argv[1:]
problems, count = [], 0
for py in sorted(glob.glob(os.path.join(site, "**", "*.py"), recursive=True)):
    pyc = importlib.util.cache_from_source(py)
    rel = os.path.relpath(py, site)
    if not os.path.exists(pyc):
        problems.append("no .pyc for " + rel)
        continue
    data = open(pyc, "rb").read()
    count += 1
    if data[:4] != importlib.util.MAGIC_NUMBER:
        problems.append("wrong magic in " + rel)
    if int.from_bytes(data[4:8], "little") != 0b01:
        problems.append("not unchecked-hash: " + rel)
    if data[8:16] != importlib.util.source_hash(open(py, "rb").read()):
        problems.append("stale source hash: " + rel)
    code = marshal.loads(data[16:])
    if code.co_filename != os.path.join(target, rel):
        problems.append("co_filename %s" % code.co_filename)
print("; ".join(problems[:5]) or "ok %d" % count)
EOF
)
contains "every module has a correct unchecked-hash .pyc for $xy at the target path" "$pyc_check" "ok "

# No build-host path anywhere: staging root, wheelhouse, scratch dirs, this
# host's Python and home (as a path of its own, not inside another path such
# as the wheel's /opt/rh/devtoolset-10/root/...).
forbidden=("$stage1" "$wheelhouse" "$tmp" "$project")
# The host's Python counts unless it lives in /usr, where the target's does too
# (Debian's python3 is /usr/bin/python3 on both).
for path in "$host_prefix/" "$compile_py"; do
    [[ $path == /usr/* ]] || forbidden+=("$path")
done
leaks=''
for path in "${forbidden[@]}"; do
    leaks+=$(grep -rlF -- "$path" "$v1" || true)
    leaks+=$(find "$v1" -type l -lname "*$path*")
done
home_re=${HOME//./\\.}
leaks+=$(grep -rlE -- "(^|[^[:alnum:]_./-])$home_re/" "$v1" || true)
equals "no build-host path in any file or symlink" "$leaks" ""

equals "every mtime is SOURCE_DATE_EPOCH" "$(find "$v1" -printf '%Ts\n' | sort -u)" "$epoch"
equals "nothing is group- or world-writable" "$(find "$v1" ! -type l -perm /022 | wc -l)" 0

# Reproducible: the same inputs into another staging root give the same bytes.
SOURCE_DATE_EPOCH=$epoch run "$build" "${common[@]}" --destdir "$stage2"
expect_rc "second build: 0" 0
v2=$stage2/usr/lib/openplc/venvs/demo
check "the two builds have the same contents (diff -r)" diff -r --no-dereference "$v1" "$v2"
manifest() { (cd "$1" && find . -printf '%P %y %m %s %T@ %l\n' | sort); }
equals "... the same names, types, modes, sizes, mtimes and links" "$(manifest "$v1" | sha256sum)" "$(manifest "$v2" | sha256sum)"
tarsum() { tar --sort=name --owner=0 --group=0 --numeric-owner -C "$1" -cf - . | sha256sum; }
equals "... and the same tar archive" "$(tarsum "$v1")" "$(tarsum "$v2")"

# A build over the previous one replaces it.
SOURCE_DATE_EPOCH=$epoch run "$build" "${common[@]}" --destdir "$stage2"
expect_rc "rebuilding over the previous venv: 0" 0
contains "... says it replaces it" "$err" "replacing"
check "no scratch directory is left in the staging root" test -z "$(find "$stage2/usr/lib/openplc/venvs" -name '.demo.build.*')"

# A build host whose Python has a long path (a Yocto native sysroot): pip then
# writes /bin/sh launchers instead of #! lines; the venv must not keep them.
long_dir=$tmp/$(printf 'long%.0s' {1..30})
mkdir -p "$long_dir"
ln -s "$(command -v python3)" "$long_dir/python3"
SOURCE_DATE_EPOCH=$epoch run "$build" "${common[@]}" --destdir "$tmp/stage-long" --host-python "$long_dir/python3"
expect_rc "build with a long build-host Python path: 0" 0
equals "... the console script still starts with the target's #! line" \
    "$(head -n 1 "$tmp/stage-long$prefix/bin/tabulate" 2>&1)" "#!$prefix/bin/python3"
check "... and is the same file as in the first build" cmp "$tmp/stage-long$prefix/bin/tabulate" "$v1/bin/tabulate"

# ----------------------------------------------------------------- refusals
# Wheels for another Python: this host's Python as the target, wheels of 3.13
# (or 3.12 if this host is 3.13).
other_xy=3.13
[[ $host_xy != 3.13 ]] || other_xy=3.12
other_wh=$cache/cp${other_xy/./}-$platform
if [[ $other_xy != "$xy" ]]; then
    run "$fetch" --requirements "$req" --wheelhouse "$other_wh" --python-version "$other_xy" --platform "$platform" --format sha256sum
    expect_rc "fetch $other_xy wheels: 0" 0
fi
other_yaml=''
for whl in "$other_wh"/PyYAML-6.0.2-cp"${other_xy/./}"-*aarch64*.whl; do
    [[ ! -f $whl ]] || other_yaml=${whl##*/}
done
SOURCE_DATE_EPOCH=$epoch run "$build" --name demo --requirements "$req" --wheelhouse "$other_wh" \
    --python-version "$host_xy" --platform "$platform" --destdir "$tmp/s3"
expect_rc "a wheel for the wrong Python is refused: 4" 4
contains "... naming the wheel" "$err" "$other_yaml"
contains "... and why" "$err" "built for Python cp${other_xy/./}"
check "... and nothing is installed" test ! -e "$tmp/s3/usr/lib/openplc/venvs/demo"

# Wheels for another CPU: this host's own wheels offered to an aarch64 target.
host_wh=$cache/cp${host_xy/./}-manylinux2014_$host_arch
run "$fetch" --requirements "$req" --wheelhouse "$host_wh" --python-version "$host_xy" --platform "manylinux2014_$host_arch" --format sha256sum
expect_rc "fetch $host_arch wheels: 0" 0
host_yaml=$(sed -n 's/^[0-9a-f]\{64\}  \(PyYAML-.*\)$/\1/p' <<<"$out")
SOURCE_DATE_EPOCH=$epoch run "$build" --name demo --requirements "$req" --wheelhouse "$host_wh" \
    --python-version "$host_xy" --platform "$platform" --destdir "$tmp/s4"
expect_rc "a wheel for the wrong platform is refused: 4" 4
contains "... naming the wheel" "$err" "$host_yaml"
contains "... and why" "$err" "built for platform"

printf 'tabulate==0.8.10\n' >"$tmp/req/missing.txt"
SOURCE_DATE_EPOCH=$epoch run "$build" --name demo --requirements "$tmp/req/missing.txt" --wheelhouse "$wheelhouse" \
    --python-version "$xy" --platform "$platform" --destdir "$tmp/s5"
expect_rc "a requirement with no wheel in the wheelhouse: 4" 4
contains "... says which and what to do" "$err" "no wheel for tabulate==0.8.10"

sed "s/--hash=sha256:[0-9a-f]*/--hash=sha256:$(printf '0%.0s' {1..64})/" "$hreq" >"$tmp/req/badhash.txt"
SOURCE_DATE_EPOCH=$epoch run "$build" --name demo --requirements "$tmp/req/badhash.txt" --wheelhouse "$wheelhouse" \
    --python-version "$xy" --platform "$platform" --destdir "$tmp/s6"
expect_rc "a wheel whose sha256 differs from the pinned hash: 1" 1
contains "... pip's hash error is shown" "$err" "HASHES"

equals "armv7l targets accept older manylinux wheels" \
    "$(python3 "$helper" platforms --platform manylinux_2_36_armv7l | grep -cxE 'manylinux_2_(36|17)_armv7l|manylinux2014_armv7l')" 3

# ------------------------------------- a host venv, loaded by the runtime
runtime=${OPENPLC_RUNTIME:-$project/target/debug/openplc-runtime}
rt_reason=''
if [[ ! -x $runtime ]]; then
    rt_reason="$runtime does not exist (cargo build)"
elif ! rt_info=$("$runtime" python-info 2>&1); then
    rt_reason="$runtime python-info failed: $rt_info"
fi
if [[ -n $rt_reason ]]; then
    if [[ -n ${CI-} ]]; then
        not_ok "the runtime loads a plugin from a venv built by build-target-venv" "$rt_reason"
    else
        skip "runtime test: $rt_reason"
    fi
else
    rt_xy=$(sed -n 's/^major_minor=//p' <<<"$rt_info")
    rt_prefix=$(sed -n 's/^prefix=//p' <<<"$rt_info")
    rt_python=$rt_prefix/bin/python$rt_xy
    [[ -x $rt_python ]] || rt_python=$(python_of "$rt_xy")
    rt_wh=$cache/cp${rt_xy/./}-manylinux2014_$host_arch
    if [[ $rt_wh != "$host_wh" ]]; then
        run "$fetch" --requirements "$req" --wheelhouse "$rt_wh" --python-version "$rt_xy" --platform "manylinux2014_$host_arch" --format sha256sum
        expect_rc "fetch wheels for the runtime's Python $rt_xy: 0" 0
    fi
    hostvenv=$tmp/host/venvs/hostdemo
    SOURCE_DATE_EPOCH=$epoch run "$build" --name hostdemo --requirements "$req" --wheelhouse "$rt_wh" \
        --python-version "$rt_xy" --platform "manylinux2014_$host_arch" --destdir '' \
        --prefix "$hostvenv" --target-python "$rt_python" --compile-python "$rt_python"
    expect_rc "build a venv for this host (Python $rt_xy, in place): 0" 0
    equals "the host venv works as a venv" \
        "$("$hostvenv/bin/python3" -c 'import sys, yaml; print(sys.prefix == sys.argv[1], yaml.__with_libyaml__)' "$hostvenv" 2>&1)" "True True"
    equals "its console script runs" "$(printf 'a b\n' | "$hostvenv/bin/tabulate" 2>&1 | head -n 1)" "-  -"
    mkdir -p "$tmp/host/plugin"
    cat >"$tmp/host/plugin/plugin.py" <<EOF
import yaml, tabulate
# Fail the import unless both packages come from the venv built above.
assert yaml.__file__.startswith("$hostvenv/"), yaml.__file__
assert tabulate.__file__.startswith("$hostvenv/"), tabulate.__file__
assert yaml.__with_libyaml__, "the compiled extension did not load"

def init(args):
    pass
EOF
    printf 'hostdemo,%s,1,0,,%s\n' "$tmp/host/plugin/plugin.py" "$hostvenv" >"$tmp/host/plugins.conf"
    run "$runtime" check --config "$tmp/host/plugins.conf"
    expect_rc "openplc-runtime check imports the plugin from the built venv: 0" 0
    contains "... and reports the plugin" "$out$err" hostdemo
fi

shellcheck_clean "build-target-venv, fetch-target-wheels are shellcheck-clean" "$build" "$fetch"
shellcheck_clean "this test is shellcheck-clean" "$this_test"
if python3 -m pyflakes --version >/dev/null 2>&1; then
    check "target_venv.py is pyflakes-clean" python3 -m pyflakes "$helper"
fi

finish
