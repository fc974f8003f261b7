#!/usr/bin/env bash
# Tests scripts/install-plugin for real: an example plugin installed into a
# staging root, its drop-in, modes and writable-path links checked file by file,
# the tmpfiles entry realised by the real systemd-tmpfiles --root, a re-run and
# SOURCE_DATE_EPOCH reproducibility, the refusals, and the runtime's own
# `check --root` reading what the script staged.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

install=$project/scripts/install-plugin
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

shellcheck_clean "install-plugin and this test are shellcheck-clean" "$install" "$this_test"

run "$install" --help
expect_rc "--help exits 0" 0
contains "--help documents --writable" "$out" "--writable SUB"

# A plugin source as a package would have it: the plugin, its config, a
# requirements file and a bytecode cache (neither belongs in the image), a
# helper script with its executable bit, and a certs directory with a default.
src=$tmp/src
mkdir -p "$src/certs" "$src/__pycache__" "$src/tools"
cp "$project/examples/plugins/image_logger/plugin.py" "$project/examples/plugins/image_logger/config.json" "$src/"
cp "$project/examples/plugins/image_logger/requirements.txt" "$src/"
echo "junk" >"$src/__pycache__/plugin.cpython-311.pyc"
printf '#!/bin/sh\necho hi\n' >"$src/tools/helper.sh"
chmod 0775 "$src/tools/helper.sh"
chmod 0664 "$src/config.json"
echo "default trust list" >"$src/certs/trusted.txt"

root=$tmp/root
export SOURCE_DATE_EPOCH=1700000000
run "$install" --destdir "$root" --name logger --source "$src" --entry plugin.py \
    --config config.json --venv --writable certs --writable cache/data --order 40
expect_rc "installs a plugin" 0
pdir=$root/usr/lib/openplc/plugins/logger
check "plugin file installed" test -f "$pdir/plugin.py"
check "config installed" test -f "$pdir/config.json"
check "requirements.txt left out" test ! -e "$pdir/requirements.txt"
check "__pycache__ left out" test ! -e "$pdir/__pycache__"
equals "config mode is 0644 (not group-writable as in the source)" "$(stat -c %a "$pdir/config.json")" 644
equals "executable keeps an x bit, loses group write" "$(stat -c %a "$pdir/tools/helper.sh")" 755
equals "plugin directory is 0755" "$(stat -c %a "$pdir")" 755
equals "mtime is SOURCE_DATE_EPOCH" "$(stat -c %Y "$pdir/plugin.py")" 1700000000

dropin=$root/usr/lib/openplc/plugins.conf.d/40-logger.conf
check "drop-in named by --order and name" test -f "$dropin"
equals "drop-in's plugin line" "$(grep -v '^#' "$dropin")" \
    "logger,/usr/lib/openplc/plugins/logger/plugin.py,1,0,/usr/lib/openplc/plugins/logger/config.json,/usr/lib/openplc/venvs/logger"

equals "certs is a link into the state directory" "$(readlink "$pdir/certs")" /var/lib/openplc/plugins/logger/certs
equals "a nested writable path links too" "$(readlink "$pdir/cache/data")" /var/lib/openplc/plugins/logger/cache/data
check "the nested path's parent stays a read-only directory" test -d "$pdir/cache" -a ! -L "$pdir/cache"
check "certs' default content shipped as factory data" \
    test -f "$root/usr/share/openplc/factory/logger/certs/trusted.txt"
tmpfiles=$root/usr/lib/tmpfiles.d/openplc-plugin-logger.conf
check "tmpfiles entry written" test -f "$tmpfiles"

if command -v systemd-tmpfiles >/dev/null; then
    run systemd-tmpfiles --root="$root" --create "$tmpfiles"
    expect_rc "systemd-tmpfiles --root accepts the entry" 0
    equals "state directory created 0750" "$(stat -c %a "$root/var/lib/openplc/plugins/logger")" 750
    check "empty writable path created" test -d "$root/var/lib/openplc/plugins/logger/cache/data"
    equals "factory default copied into the writable path" \
        "$(cat "$root/var/lib/openplc/plugins/logger/certs/trusted.txt")" "default trust list"
    check "the link resolves inside the staged root" test -f "$(realpath -m "$root$(readlink "$pdir/certs")")/trusted.txt"
elif [[ -n ${CI-} ]]; then
    not_ok "systemd-tmpfiles is needed (apt-get install systemd)"
else
    skip "systemd-tmpfiles not installed: the tmpfiles entry is not exercised"
fi

# Re-run with fewer options: the plugin is replaced as a whole, the old
# drop-in with another order number and the tmpfiles entry go away.
run "$install" --destdir "$root" --name logger --source "$src" --entry plugin.py --disabled --type 0
expect_rc "re-run succeeds" 0
check "the 40- drop-in is gone" test ! -e "$dropin"
equals "new drop-in: disabled, no config, no venv" \
    "$(grep -v '^#' "$root/usr/lib/openplc/plugins.conf.d/50-logger.conf")" \
    "logger,/usr/lib/openplc/plugins/logger/plugin.py,0,0,,"
check "no tmpfiles entry without --writable" test ! -e "$tmpfiles"
check "certs is a plain directory again" test -d "$pdir/certs" -a ! -L "$pdir/certs"
check "no factory data without --writable" test ! -e "$root/usr/share/openplc/factory/logger"

# Reproducible: the same inputs twice give the same files, bytes and mtimes
# (the paths the script owns; shared parents are the image builder's).
for r in a b; do
    "$install" --destdir "$tmp/repro-$r" --name logger --source "$src" --entry plugin.py \
        --config config.json --venv --writable certs >/dev/null
done
owned() {
    (cd "$1" && find usr/lib/openplc/plugins/logger usr/lib/openplc/plugins.conf.d/50-logger.conf \
        usr/lib/tmpfiles.d/openplc-plugin-logger.conf usr/share/openplc/factory/logger \
        -printf '%p %m %T@ %l\n' -exec sh -c 'test -f "$1" && md5sum <"$1" || true' sh {} \; | sort)
}
repro_a=$(owned "$tmp/repro-a")
equals "two installs are identical" "$repro_a" "$(owned "$tmp/repro-b")"
contains "the comparison covered the factory data" "$repro_a" "usr/share/openplc/factory/logger/certs/trusted.txt 644 1700000000"
unset SOURCE_DATE_EPOCH

# What the script staged is what the runtime loads: `check --root` reads the
# drop-in, resolves its absolute paths under the staged root, opens the venv
# and imports the plugin.
runtime_bin=$project/target/debug/openplc-runtime
if [[ -x $runtime_bin ]]; then
    mini=$tmp/mini-src
    mkdir -p "$mini"
    printf 'def init(args):\n    pass\n' >"$mini/plugin.py"
    staged=$tmp/staged
    "$install" --destdir "$staged" --name mini --source "$mini" --entry plugin.py --venv --order 30 >/dev/null
    python3 -m venv --without-pip "$staged/usr/lib/openplc/venvs/mini"
    run "$runtime_bin" check --root "$staged"
    expect_rc "openplc-runtime check --root accepts the staged plugin" 0
    contains "check lists it with its drop-in as origin" "$out" \
        "mini: ok (python, venv $staged/usr/lib/openplc/venvs/mini (0 distributions), imports, has init), $staged/usr/lib/openplc/plugins.conf.d/30-mini.conf:6"
    contains "check says the main plugins.conf is absent" "$out" "source: $staged/etc/openplc/plugins.conf: absent"
elif [[ -n ${CI-} ]]; then
    not_ok "the runtime binary $runtime_bin is needed (cargo build)"
else
    skip "no $runtime_bin (cargo build): check --root of the staged plugin not run"
fi

# Refusals: one line, naming what is wrong, nothing installed.
refuse() {
    local description=$1 needle=$2
    shift 2
    run "$install" --destdir "$tmp/refused" "$@"
    if [[ $rc == 2 && $err == *"$needle"* ]]; then ok "$description"; else
        not_ok "$description" "exit $rc, stderr: $err"; fi
}
refuse "name with a comma" "--name 'a,b'" --name a,b --source "$src" --entry plugin.py
refuse "name too long" "longer than 63" --name "$(printf 'n%.0s' {1..64})" --source "$src" --entry plugin.py
refuse "missing entry file" "--entry 'nope.py': no such file" --name x --source "$src" --entry nope.py
refuse "entry outside the source" "without '..'" --name x --source "$src" --entry ../x.py
refuse "absolute config" "must be relative" --name x --source "$src" --entry plugin.py --config /etc/passwd
refuse "writable path that is a file" "is not a directory" --name x --source "$src" --entry plugin.py --writable config.json
refuse "writable path holding the plugin" "contains the plugin file" --name x --source "$src" --entry tools/helper.sh --writable tools
refuse "bad order" "two digits" --name x --source "$src" --entry plugin.py --order 5
refuse "bad type" "--type '2'" --name x --source "$src" --entry plugin.py --type 2
refuse "unknown option" "unknown argument" --name x --source "$src" --entry plugin.py --bogus
check "nothing installed by the refusals" test ! -e "$tmp/refused"

finish
