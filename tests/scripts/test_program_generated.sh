#!/usr/bin/env bash
# Tests the example program's committed STruC++ output (the source the
# firmware trees compile, with no Node in BitBake or Buildroot): it is what
# the pinned STruC++ makes from examples/programs/io_demo/io_demo.st today
# (this fails when the .st or the STruC++ pin changes and generated/ does
# not), a changed program is caught, and the committed output builds into a
# program plugin with scripts/build-plc-program --from-output for the host
# and for aarch64, exporting the program extension.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

update=$project/examples/programs/update-generated
demo=$project/examples/programs/io_demo
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# Node and STruC++ (pinned, in ~/.cache; a second run takes a second).
"$project/scripts/install-deps" --program >/dev/null 2>&1 ||
    not_ok "scripts/install-deps --program" "it failed; run it by hand to see why"

run "$update" --check "$demo"
expect_rc "examples/programs/io_demo/generated is what the pinned STruC++ makes from io_demo.st" 0
[[ $rc == 0 ]] || printf '%s\n' "$err" | tail -n 30 | sed -e 's/^/    # /'
for f in generated.hpp configuration.cpp pou_IODEMO.cpp generated_debug.cpp debug-map.json NOTICE; do
    check "generated/$f is committed" test -s "$demo/generated/$f"
done

# A changed program with the old output: --check fails, shows the changed
# line and says how to regenerate; nothing is written.
cp -r -- "$demo" "$tmp/io_demo"
sed -i -e 's/doubled := level \* scale;/doubled := level * 3;/' "$tmp/io_demo/io_demo.st"
before=$(cd "$tmp/io_demo/generated" && sha256sum -- *)
run "$update" --check "$tmp/io_demo"
expect_rc "--check fails on a program changed after its output was made" 1
contains "the diff shows the new expression" "$err" "* 3"
contains "the message says how to regenerate" "$err" "run examples/programs/update-generated"
equals "--check writes nothing" "$(cd "$tmp/io_demo/generated" && sha256sum -- *)" "$before"

# The committed output builds (what the Yocto class and the Buildroot macro
# do, without STruC++): host and aarch64, the program extension exported.
for target in host aarch64; do
    run "$project/scripts/build-plc-program" --from-output "$demo/generated" --name io_demo \
        --target "$target" -o "$tmp/$target"
    expect_rc "--from-output generated/ --target $target builds libplc_io_demo.so" 0
    if [[ -f $tmp/$target/libplc_io_demo.so ]]; then
        syms=$(nm -D --defined-only "$tmp/$target/libplc_io_demo.so" 2>&1 || true)
        contains "$target: the library exports openplc_program_abi" "$syms" " openplc_program_abi"
        contains "$target: the library exports openplc_program_run_task" "$syms" " openplc_program_run_task"
    fi
done
contains "the aarch64 build is an aarch64 ELF" "$(file -b "$tmp/aarch64/libplc_io_demo.so" 2>&1)" "ARM aarch64"

finish
