#!/usr/bin/env bash
# Tests the parts of scripts/check-yocto-layer that do not need bitbake: its
# command line, the skip when no oe-core/bitbake trees are there, and its
# helper that checks the files a recipe references (fed real `bitbake -e`-style
# dumps naming real files). The bitbake steps themselves run in
# scripts/check-yocto-layer, called by scripts/test.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

check=$project/scripts/check-yocto-layer
files_helper=$project/scripts/lib/check_recipe_files.py
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

shellcheck_clean "check-yocto-layer and this test are shellcheck-clean" "$check" "$this_test"

run "$check" --help
expect_rc "--help exits 0" 0
contains "--help names the task-graph step" "$out" "bitbake -g openplc-image"
contains "--help names the environment variables" "$out" "OPENPLC_OECORE_DIR"

mkdir "$tmp/empty"
run env -u OPENPLC_OECORE_DIR -u OPENPLC_BITBAKE_DIR "$check" --upstream "$tmp/empty"
expect_rc "no trees: skipped, exit 0" 0
contains "the skip says so plainly" "$out" "SKIP"
contains "the skip names the tarball it looked for" "$out" "$tmp/empty/openembedded-core-yocto-6.0.2.tar.xz"
contains "the skip says the layer was not checked" "$out" "NOT checked"

run "$check" --oe-core "$tmp/empty"
expect_rc "--oe-core without --bitbake is a usage error" 2

run "$check" --oe-core "$tmp/empty" --bitbake "$tmp/empty"
expect_rc "an oe-core tree without meta/ exits 3" 3
contains "and names it" "$err" "$tmp/empty"

run "$check" --frobnicate
expect_rc "an unknown option is a usage error" 2

# The layer carries the example recipes' files (so that a copy of the layer
# alone works): each must equal the repository's example it copies (bytecode
# caches, which running the examples leaves, aside).
sync_pairs=(
    "meta-openplc/recipes-examples/openplc-plugin-ramp-writer/files/ramp_writer examples/plugins/ramp_writer"
    "meta-openplc/recipes-examples/openplc-plugin-image-logger/files/image_logger examples/plugins/image_logger"
    "meta-openplc/recipes-examples/openplc-program-io-demo/files/io_demo/generated examples/programs/io_demo/generated"
    "meta-openplc/recipes-plugins/openplc-plugin-modbus-server/files/modbus_server examples/plugins/modbus_server"
    "meta-openplc/recipes-plugins/openplc-plugin-opcua-server/files/opcua_server examples/plugins/opcua_server"
)
for pair in "${sync_pairs[@]}"; do
    read -r copy original <<<"$pair"
    run diff -r -x __pycache__ "$project/$copy" "$project/$original"
    expect_rc "$copy equals $original (copy it again after changing the example)" 0
done
# And the comparison sees a difference: a changed copy is reported.
cp -r -- "$project/examples/plugins/ramp_writer" "$tmp/ramp_writer"
echo '# changed' >>"$tmp/ramp_writer/plugin.py"
run diff -r "$tmp/ramp_writer" "$project/examples/plugins/ramp_writer"
expect_rc "a copy that differs from its example is caught" 1
# No recipe of the layer reaches out of it for files.
run grep -rn -- '\.\./\.\./\.\./examples' "$project/meta-openplc"
expect_rc "no recipe reads ../../../examples" 1

# check_recipe_files.py: a recipe whose sources sit in a "checkout" found on
# FILESPATH, with a licence line checksum, as bitbake -e prints it.
mkdir -p "$tmp/checkout/src" "$tmp/work/sources"
cp "$project/Cargo.toml" "$tmp/checkout/Cargo.toml"
echo 'fn main() {}' >"$tmp/checkout/src/main.rs"
md5=$(sed -n 7p "$project/Cargo.toml" | md5sum | cut -d' ' -f1)
dump() { # dump LICENCE-URL SRC-URI: a bitbake -e excerpt
    cat <<EOF
PN="demo"
FILESPATH="$tmp/nowhere:$tmp/checkout"
UNPACKDIR="$tmp/work/sources"
S="$tmp/work/sources/demo-1.0"
SRC_URI="file://Cargo.toml;subdir=demo-1.0 file://src;subdir=demo-1.0 crate://crates.io/libc/0.2.191"
LIC_FILES_CHKSUM="$1"
do_install() {
    install -m 0644 $tmp/work/sources/demo-1.0/src/main.rs $tmp/work/image/main.rs
    install -m 0644 $tmp/work/sources/demo-1.0/${2:-src/main.rs} $tmp/work/image/x
}
EOF
}
dump "file://Cargo.toml;beginline=7;endline=7;md5=$md5" >"$tmp/good.env"
run python3 "$files_helper" --env "$tmp/good.env"
expect_rc "sources found on FILESPATH, licence line checksum right" 0
contains "it counts what it checked" "$out" "2 local sources, 1 licence files"

dump "file://Cargo.toml;beginline=7;endline=7;md5=0123456789abcdef0123456789abcdef" >"$tmp/md5.env"
run python3 "$files_helper" --env "$tmp/md5.env"
expect_rc "a wrong licence checksum fails" 1
contains "and gives the right one" "$err" "$md5"

dump "file://Cargo.toml;beginline=7;endline=7;md5=$md5" src/missing.rs >"$tmp/missing.env"
run python3 "$files_helper" --env "$tmp/missing.env"
expect_rc "do_install reading a file no source provides fails" 1
contains "and names it" "$err" "\${S}/src/missing.rs"

sed -e 's#file://src;#file://source;#' "$tmp/good.env" >"$tmp/nosrc.env"
run python3 "$files_helper" --env "$tmp/nosrc.env"
expect_rc "a file:// entry not on FILESPATH fails" 1
contains "and names it" "$err" "file://source"

# A git entry (the program class's STruC++): its licence files are found in
# the tree --git names; without one, nothing provides them.
mkdir -p "$tmp/strucpp"
printf 'exception text\n' >"$tmp/strucpp/COPYING.RUNTIME"
lic_md5=$(md5sum <"$tmp/strucpp/COPYING.RUNTIME" | cut -d' ' -f1)
sed -e "s#^SRC_URI=\"#SRC_URI=\"git://example.invalid/strucpp.git;protocol=https;branch=main;name=strucpp;destsuffix=demo-1.0/strucpp #" \
    -e "s#^LIC_FILES_CHKSUM=\"#LIC_FILES_CHKSUM=\"file://strucpp/COPYING.RUNTIME;md5=$lic_md5 #" "$tmp/good.env" >"$tmp/git.env"
run python3 "$files_helper" --env "$tmp/git.env" --git "strucpp=$tmp/strucpp"
expect_rc "a licence file of a git entry, found in the --git tree" 0
run python3 "$files_helper" --env "$tmp/git.env"
expect_rc "without --git the git entry's licence file is not provided" 1
contains "and names it" "$err" "no SRC_URI entry provides \${S}/strucpp/COPYING.RUNTIME"

# run_program_tasks.py on the last check's real bitbake -e of the example
# program recipe: passes, and fails (naming why) when the class's
# install-plugin call loses --type 1 or the STruC++ tree lacks its headers.
env_dump='' tree=''
for dir in "${OPENPLC_CACHE:-$HOME/.cache/openplc-runtime}/yocto" /var/tmp/openplc-runtime-yocto; do
    if [[ -f $dir/env/openplc-program-io-demo.env ]]; then
        env_dump=$dir/env/openplc-program-io-demo.env
        tree=$(find "$dir/strucpp" -mindepth 2 -maxdepth 2 -type d -name 'strucpp-*' 2>/dev/null | head -n 1)
        break
    fi
done
if [[ -n $env_dump && -n $tree ]] && command -v aarch64-linux-gnu-g++ >/dev/null; then
    program_tasks() {
        rm -rf -- "$tmp/w"
        mkdir -p "$tmp/w"
        run python3 "$project/scripts/lib/run_program_tasks.py" --env "$1" --workdir "$tmp/w" --repo "$project" \
            --strucpp "$2" --programs "$project/examples/programs"
    }
    program_tasks "$env_dump" "$tree"
    expect_rc "program class tasks: the real recipe compiles for aarch64 and stages its type-1 drop-in" 0
    contains "it names the compiler and the drop-in" "$out" "libplc_io_demo.so for aarch64; drop-in: io_demo,"
    sed -e '/^do_install() {$/,/^}$/s/--type 1//' "$env_dump" >"$tmp/type0.env"
    program_tasks "$tmp/type0.env" "$tree"
    expect_rc "a drop-in without type 1 fails" 1
    contains "and shows the line" "$err" "drop-in usr/lib/openplc/plugins.conf.d/50-io_demo.conf holds"
    cp -r -- "$tree" "$tmp/noheaders"
    rm -- "$tmp/noheaders/src/runtime/include/iec_std_lib.hpp"
    program_tasks "$env_dump" "$tmp/noheaders"
    expect_rc "a STruC++ tree without the runtime headers fails do_compile" 1
    contains "and says which task" "$err" "openplc-program-io-demo: do_compile failed"
else
    skip "program class tasks on a real bitbake -e: run scripts/check-yocto-layer first"
fi

finish
