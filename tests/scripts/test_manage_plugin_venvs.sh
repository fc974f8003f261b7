#!/usr/bin/env bash
# Tests scripts/manage_plugin_venvs.sh for real: real venvs, real pip, real
# wheels (built here, so no network is needed), every command and its failures.
# The script runs from a copy in a scratch project so that "the project root"
# (plugins/, examples/, venvs/, target/) is under the test's control.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

script=$project/scripts/manage_plugin_venvs.sh
this_test=$(realpath -- "${BASH_SOURCE[0]}")
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# Nothing of the caller's environment may choose the runtime, config or venvs.
unset OPENPLC_RUNTIME OPENPLC_CONFIG OPENPLC_VENVS_DIR
if existing=$(command -v openplc-runtime); then
    PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$(dirname -- "$existing")" | paste -sd: -)
fi
host_version=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
host_xy=${host_version%.*}

proj=$tmp/proj
mkdir -p "$proj/scripts" "$proj/plugins/demo" "$tmp/wheels"
cp -- "$script" "$proj/scripts/"
m=$proj/scripts/manage_plugin_venvs.sh

# Two versions of a tiny real wheel, so pip installs offline and an upgrade is visible.
python3 - "$tmp/wheels" <<'EOF'
import base64, hashlib, sys, zipfile
def rec(data):
    d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "sha256=%s,%d" % (d, len(data))
for version in ("1.0", "2.0"):
    files = {
        "tinydep/__init__.py": "VERSION = %r\n" % version,
        "tinydep-%s.dist-info/METADATA" % version:
            "Metadata-Version: 2.1\nName: tinydep\nVersion: %s\n" % version,
        "tinydep-%s.dist-info/WHEEL" % version:
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join("%s,%s\n" % (n, rec(t.encode())) for n, t in files.items())
    files["tinydep-%s.dist-info/RECORD" % version] = record + "tinydep-%s.dist-info/RECORD,,\n" % version
    with zipfile.ZipFile("%s/tinydep-%s-py3-none-any.whl" % (sys.argv[1], version), "w") as z:
        for n, t in files.items():
            z.writestr(n, t)
EOF

# requirements FILE VERSION: an offline requirements file (the wheel directory
# is relative to the file, as a plugin's own wheels would be).
requirements() {
    mkdir -p -- "$(dirname -- "$1")"
    printf -- '--no-index\n--find-links %s\ntinydep==%s\n' \
        "$(realpath --relative-to="$(dirname -- "$1")" "$tmp/wheels")" "$2" >"$1"
}
requirements "$proj/plugins/demo/requirements.txt" 1.0
printf 'def init(args):\n    pass\n' >"$proj/plugins/demo/plugin.py"
cd "$proj"

installed() { # VENV: the tinydep version importable in it
    "$1/bin/python" -c 'import tinydep; print(tinydep.VERSION)' 2>/dev/null || true
}

# --------------------------------------------------------------- help, usage
for flag in help -h --help; do
    run "$m" "$flag"
    expect_rc "'$flag' exits 0" 0
    contains "'$flag' documents the exit codes" "$out" "Exit codes:"
done
for word in create install list remove info; do
    contains "--help documents '$word'" "$out" "  $word"
done
contains "--help documents --yes" "$out" "--yes"

run "$m"
expect_rc "no command: usage error 2" 2
one_line_error "no command: one line on stderr"
run "$m" frobnicate
expect_rc "unknown command: 2" 2
contains "unknown command: names it" "$err" "'frobnicate'"
run "$m" --frob list
expect_rc "unknown option: 2" 2
one_line_error "unknown option: one line on stderr"
run "$m" create
expect_rc "create without NAME: 2" 2
contains "create without NAME: says what to type" "$err" "create NAME"
run "$m" create ../evil
expect_rc "a NAME with a slash: 2" 2
run "$m" list extra
expect_rc "list with a NAME: 2" 2
run "$m" --recreate info demo
expect_rc "--recreate with info: 2" 2

# ---------------------------------------------- create with no runtime binary
run "$m" create demo
expect_rc "create (no runtime, no tty): exit 0" 0
contains "create without runtime warns about python3" "$err" "warning: no openplc-runtime binary"
contains "the warning names the Python used" "$err" "using python3 ($host_version)"
check "create made venvs/demo at the project root" test -f "$proj/venvs/demo/pyvenv.cfg"
equals "create installed the plugin's requirements" "$(installed "$proj/venvs/demo")" "1.0"
equals "create prints the plugins.conf line (relative venv)" "$out" "demo,./plugins/demo/plugin.py,1,0,,./venvs/demo"
contains "the venv's Python is python3's" "$(cat "$proj/venvs/demo/pyvenv.cfg")" "$host_version"

# Re-running create keeps the venv (a file inside it survives) and updates it.
touch "$proj/venvs/demo/keep-me"
requirements "$proj/plugins/demo/requirements.txt" 2.0
start=$SECONDS
run "$m" create --yes demo
expect_rc "create again: exit 0" 0
contains "create again says it keeps the venv" "$err" "keeping it"
check "create again did not destroy the venv" test -f "$proj/venvs/demo/keep-me"
equals "create again brought the requirements up to date" "$(installed "$proj/venvs/demo")" "2.0"
if ((SECONDS - start < 20)); then ok "create again is quick ($((SECONDS - start)) s)"; else not_ok "create again took $((SECONDS - start)) s"; fi

run "$m" create --recreate demo
expect_rc "create --recreate without --yes and without a tty: exit 4" 4
one_line_error "create --recreate refusal: one line"
contains "the refusal says to use --yes" "$err" "--yes"
check "the refused recreate left the venv alone" test -f "$proj/venvs/demo/keep-me"
run "$m" create demo --recreate --yes
expect_rc "create --recreate --yes (options after NAME): exit 0" 0
check "create --recreate --yes rebuilt the venv" test ! -e "$proj/venvs/demo/keep-me"
equals "the rebuilt venv has the requirements" "$(installed "$proj/venvs/demo")" "2.0"

# ------------------------------------------------------------------- install
requirements "$proj/plugins/demo/requirements.txt" 1.0
run "$m" install demo
expect_rc "install: exit 0" 0
equals "install installed the pinned version" "$(installed "$proj/venvs/demo")" "1.0"
run "$m" install demo
expect_rc "install again (idempotent): exit 0" 0
contains "install again: pip found it satisfied" "$err" "already satisfied"

requirements "$tmp/elsewhere/reqs.txt" 2.0
run "$m" install --requirements "$tmp/elsewhere/reqs.txt" demo
expect_rc "install --requirements FILE: exit 0" 0
equals "install --requirements used that file" "$(installed "$proj/venvs/demo")" "2.0"
run "$m" install --requirements "$tmp/missing.txt" demo
expect_rc "install --requirements missing file: 3" 3
one_line_error "missing requirements file: one line"

run "$m" install nosuch
expect_rc "install without any requirements.txt: 3" 3
one_line_error "no requirements: one line"
contains "no requirements: lists where it looked" "$err" "plugins/nosuch/requirements.txt"
check "install without requirements created nothing" test ! -e "$proj/venvs/nosuch"

requirements "$proj/examples/plugins/fresh/requirements.txt" 1.0
run "$m" install fresh
expect_rc "install on a plugin without venv creates it: exit 0" 0
equals "install found examples/plugins/NAME/requirements.txt" "$(installed "$proj/venvs/fresh")" "1.0"

requirements "$proj/plugins/broken/requirements.txt" 9.9
run "$m" install broken
expect_rc "install with an unsatisfiable requirement: exit 1" 1
contains "pip failure: says what to run next" "$err" "install broken"

# -------------------------------------------------------------- plugins.conf
mkdir -p "$proj/etc" "$proj/drivers/odd_dir"
requirements "$proj/drivers/odd_dir/requirements.txt" 1.0
printf 'def init(args):\n    pass\n' >"$proj/drivers/odd_dir/main.py"
printf '%s\r\n' '# name,path,enabled,type,config_path,venv_path' \
    '   # an indented comment' '' \
    'odd,../drivers/odd_dir/main.py,1,0' \
    'other,../plugins/demo/plugin.py,0,0,./cfg.json,' >"$proj/etc/plugins.conf"
run "$m" --config etc/plugins.conf --venvs-dir "$tmp/vv" create odd
expect_rc "create via plugins.conf (legacy 4-field CRLF line): exit 0" 0
equals "requirements found next to the plugin file of the conf line" "$(installed "$tmp/vv/odd")" "1.0"
equals "printed line keeps the fields and adds the venv relative to the conf" \
    "$out" "odd,../drivers/odd_dir/main.py,1,0,,$(realpath --relative-to="$proj/etc" "$tmp/vv/odd")"
# The same, written as a drop-in: paths absolute (a drop-in's relative paths
# would be relative to its own directory), plugins.conf left alone.
mkdir -p "$tmp/conf.d"
conf_before=$(md5sum <"$proj/etc/plugins.conf")
run "$m" --config etc/plugins.conf --venvs-dir "$tmp/vv" create odd --dropin "$tmp/conf.d"
expect_rc "create --dropin: exit 0" 0
equals "the drop-in holds the line with absolute paths" "$(grep -v '^#' "$tmp/conf.d/50-odd.conf")" \
    "odd,$proj/drivers/odd_dir/main.py,1,0,,$tmp/vv/odd"
contains "create --dropin says where it wrote" "$err" "wrote $tmp/conf.d/50-odd.conf"
equals "create --dropin leaves plugins.conf alone" "$(md5sum <"$proj/etc/plugins.conf")" "$conf_before"
run "$m" --config etc/plugins.conf --venvs-dir "$tmp/vv" create odd --dropin "$tmp/no-such-dir"
expect_rc "create --dropin to a missing directory: 3" 3
one_line_error "missing drop-in directory: one line"
run "$m" info odd --dropin "$tmp/conf.d"
expect_rc "--dropin with info: 2" 2
OPENPLC_CONFIG=$proj/etc/plugins.conf OPENPLC_VENVS_DIR=$tmp/vv run "$m" info odd
expect_rc "OPENPLC_CONFIG and OPENPLC_VENVS_DIR are honoured (info: exit 0)" 0
contains "info shows the plugins.conf line" "$out" "plugins.conf:   $proj/etc/plugins.conf:4: odd,"
run "$m" --config "$tmp/nope.conf" list
expect_rc "--config to a missing file: 3" 3

# The README's command: examples/plugins.conf with examples/venvs.
mkdir -p "$proj/examples/plugins/ex"
requirements "$proj/examples/plugins/ex/requirements.txt" 1.0
printf 'def init(args):\n    pass\n' >"$proj/examples/plugins/ex/plugin.py"
printf 'ex,./plugins/ex/plugin.py,1,0,,./venvs/ex\n' >"$proj/examples/plugins.conf"
for round in first second; do
    run "$m" --config examples/plugins.conf --venvs-dir examples/venvs create --yes ex
    expect_rc "README command, $round run: exit 0" 0
    equals "README command, $round run: line as in examples/plugins.conf" "$out" "ex,./plugins/ex/plugin.py,1,0,,./venvs/ex"
done
contains "README command: says the conf already has the line" "$err" "already has the line"
equals "README command: venv in examples/venvs" "$(installed "$proj/examples/venvs/ex")" "1.0"

# ------------------------------------------------------- the seed's own layout
seed_plugin=$proj/core/src/drivers/plugins/python/my_plugin
requirements "$seed_plugin/requirements.txt" 1.0
run ./scripts/manage_plugin_venvs.sh create my_plugin
expect_rc "seed guide: create my_plugin: exit 0" 0
equals "seed guide: requirements from core/src/drivers/plugins/python/my_plugin" "$(installed "$proj/venvs/my_plugin")" "1.0"
run ./scripts/manage_plugin_venvs.sh info my_plugin
expect_rc "seed guide: info my_plugin: exit 0" 0
contains "info lists the installed packages" "$out" "tinydep==1.0"
contains "info shows the requirements file" "$out" "$seed_plugin/requirements.txt"
contains "info says the runtime is unknown" "$out" "matches:        unknown"

# ---------------------------------------------------------------------- list
run "$m" list
expect_rc "list: exit 0" 0
for venv in demo fresh my_plugin; do
    contains "list shows $venv (every venv, not just the first)" "$out" "$venv "
done
mkdir -p "$proj/venvs/stray"
run "$m" list
contains "list marks a directory that is not a venv" "$out" "not a venv"
rmdir "$proj/venvs/stray"
run "$m" --venvs-dir "$tmp/empty" list
expect_rc "list with no venvs: exit 0" 0
contains "list with no venvs says so" "$out" "no venvs in"

# ---------------------------------------------------------- runtime matching
# A stand-in runtime binary prints python-info like the real one, for a Python
# this machine has: another X.Y when there is one, else python3's own.
alt=''
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[0-9]*/bin/python3.1[0-9] /usr/bin/python3.1[0-9]; do
    version=$("$candidate" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)
    if [[ -n $version && ${version%.*} != "$host_xy" ]] && "$candidate" -c 'import venv, ensurepip' 2>/dev/null; then
        alt=$candidate
        break
    fi
done
fake_runtime() { # FILE VERSION PREFIX
    # shellcheck disable=SC2016 # $1 belongs to the generated script
    printf '#!/bin/sh\n[ "$1" = python-info ] || exit 64\nprintf "version=%s\\nmajor_minor=%s\\nprefix=%s\\n"\n' \
        "$2" "${2%.*}" "$3" >"$1"
    chmod +x "$1"
}
if [[ -n $alt ]]; then
    alt_version=$("$alt" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    fake_runtime "$tmp/rt-alt" "$alt_version" "$(dirname -- "$(dirname -- "$alt")")"
    run "$m" --runtime "$tmp/rt-alt" create altp --requirements "$proj/plugins/demo/requirements.txt"
    expect_rc "create with a runtime embedding $alt_version: exit 0" 0
    lacks "no warning when the runtime answers" "$err" "warning"
    contains "the venv is made with the runtime's Python ($alt_version)" "$(cat "$proj/venvs/altp/pyvenv.cfg")" "$alt_version"
    equals "the runtime-version venv has its packages" "$(installed "$proj/venvs/altp")" "1.0"
else
    skip "no second Python X.Y on this machine: create-with-another-runtime-version not tested"
fi

fake_runtime "$tmp/rt-host" "$host_version" "$(python3 -c 'import sys; print(sys.base_prefix)')"
OPENPLC_RUNTIME=$tmp/rt-host run "$m" info demo
expect_rc "info, venv matches the runtime: exit 0" 0
contains "info says it matches" "$out" "matches:        yes"
# The runtime found in the project's target/ directory (after cargo build).
mkdir -p "$proj/target/debug"
cp -- "$tmp/rt-host" "$proj/target/debug/openplc-runtime"
run "$m" info demo
contains "info asks target/debug/openplc-runtime" "$out" "runtime:        $proj/target/debug/openplc-runtime"
rm -rf -- "$proj/target"

fake_runtime "$tmp/rt-future" 3.99.0 /nonexistent
OPENPLC_RUNTIME=$tmp/rt-future run "$m" info demo
expect_rc "info, venv does not match the runtime: exit 5" 5
contains "info says NO and how to rebuild" "$out" "NO: runtime embeds 3.99; rebuild: manage_plugin_venvs.sh create --recreate --yes demo"
OPENPLC_RUNTIME=$tmp/rt-future run "$m" list
contains "list marks the mismatch" "$out" "NO"
OPENPLC_RUNTIME=$tmp/rt-future run "$m" create demo
expect_rc "create when no Python of the runtime's X.Y exists: 5" 5
one_line_error "no such Python: one line"
contains "no such Python: names it" "$err" "python3.99"
OPENPLC_RUNTIME=$tmp/rt-future run "$m" --python python3 install demo
expect_rc "--python of another X.Y than the runtime: 5" 5
run "$m" --runtime "$tmp/not-there" list
expect_rc "--runtime to a missing file: 3" 3
if [[ -n $alt ]]; then
    OPENPLC_RUNTIME=$tmp/rt-alt run "$m" create demo
    expect_rc "create on a venv of another X.Y than the runtime: 5" 5
    contains "mismatch: tells to recreate" "$err" "create --recreate --yes demo"
    check "mismatch: the venv is untouched" test -f "$proj/venvs/demo/pyvenv.cfg"
    OPENPLC_RUNTIME=$tmp/rt-alt run "$m" install demo
    expect_rc "install on a venv of another X.Y: 5" 5
fi

# The real runtime, when it has been built.
for real in "$project/target/debug/openplc-runtime" "$project/target/release/openplc-runtime"; do
    [[ -x $real ]] || continue
    if ! real_xy=$("$real" python-info 2>/dev/null | sed -n 's/^major_minor=//p') || [[ -z $real_xy ]]; then
        if [[ -n ${CI-} ]]; then not_ok "$real python-info works"; else skip "$real python-info does not work yet"; fi
        break
    fi
    run "$m" --runtime "$real" create realp --requirements "$proj/plugins/demo/requirements.txt"
    expect_rc "create with the real runtime ($real_xy): exit 0" 0
    contains "the venv has the real runtime's X.Y" "$(cat "$proj/venvs/realp/pyvenv.cfg")" "$real_xy"
    break
done

# -------------------------------------------------------------------- remove
run "$m" remove demo
expect_rc "remove without --yes and without a tty: 4" 4
one_line_error "remove refusal: one line"
check "the refused remove left the venv" test -f "$proj/venvs/demo/pyvenv.cfg"
if command -v script >/dev/null; then
    # On a terminal it asks; "n" keeps the venv, "y" deletes it.
    rc=0
    answer=$(printf 'n\n' | script -qec "$m remove demo" /dev/null 2>&1) || rc=$?
    expect_rc "remove on a terminal, answered n: 4" 4
    contains "remove on a terminal asks" "$answer" "delete venvs/demo? [y/N]"
    check "answered n: the venv is still there" test -f "$proj/venvs/demo/pyvenv.cfg"
    rc=0
    printf 'y\n' | script -qec "$m remove demo" /dev/null >/dev/null 2>&1 || rc=$?
    expect_rc "remove on a terminal, answered y: 0" 0
    check "answered y: the venv is gone" test ! -e "$proj/venvs/demo"
else
    skip "no script(1): terminal prompts not tested"
    run "$m" remove --yes demo
fi
run "$m" remove --yes fresh
expect_rc "remove --yes: exit 0" 0
check "remove --yes deleted the venv" test ! -e "$proj/venvs/fresh"
run "$m" remove --yes fresh
expect_rc "remove of a missing venv: 3" 3
one_line_error "remove missing: one line"
mkdir -p "$proj/venvs/precious" && touch "$proj/venvs/precious/data"
run "$m" remove --yes precious
expect_rc "remove refuses a directory that is not a venv: 3" 3
check "the non-venv directory is untouched" test -f "$proj/venvs/precious/data"
run "$m" info gone
expect_rc "info on a missing venv: 3" 3
one_line_error "info missing: one line"

# The guide's "recreate" recipe, without a terminal.
run "$m" remove --yes my_plugin
expect_rc "guide recreate: remove --yes" 0
run "$m" create my_plugin
expect_rc "guide recreate: create" 0

shellcheck_clean "manage_plugin_venvs.sh is shellcheck-clean" "$script"
shellcheck_clean "this test is shellcheck-clean" "$this_test" "$project/tests/scripts/lib.sh"

finish
