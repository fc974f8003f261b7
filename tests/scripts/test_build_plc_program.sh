#!/usr/bin/env bash
# Tests scripts/build-plc-program for real: the example program compiled by
# the pinned STruC++ (scripts/install-deps --program) and g++ into a native
# plugin exporting exactly OpenPLC's plugin ABI and the program extension,
# its debug map, the same build from STruC++'s output directory, the cross
# targets when their compilers are installed (scripts/install-deps --cross),
# and the refusals (a half-built output, an unknown target, STruC++ errors).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
this_test=$(realpath -- "${BASH_SOURCE[0]}")

build=$project/scripts/build-plc-program
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

shellcheck_clean "build-plc-program, its library and this test are shellcheck-clean" \
    "$build" "$project/scripts/lib/plc_toolchain.sh" "$this_test"

run "$build" --help
expect_rc "--help exits 0" 0
contains "--help documents --from-output" "$out" "--from-output DIR"

run "$build" "$project/examples/programs/counter.st" -o "$tmp/host" --keep
expect_rc "builds the example program" 0
lib=$tmp/host/libplc_counter.so
check "writes libplc_counter.so" test -f "$lib"
check "writes debug-map.json" test -f "$tmp/host/debug-map.json"
contains "the debug map names the program's variables" "$(cat "$tmp/host/debug-map.json")" '"path": "INST0.COUNT"'
symbols=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort | tr '\n' ' ')
equals "exports only OpenPLC's plugin ABI and the program extension (C++ stays inside)" "$symbols" \
    "cleanup init openplc_program_abi openplc_program_debug_array_count openplc_program_debug_elem_count openplc_program_debug_read openplc_program_debug_set openplc_program_debug_size openplc_program_debug_write openplc_program_retain_restore openplc_program_retain_save openplc_program_retain_signature openplc_program_retain_size openplc_program_run_task openplc_program_task_count openplc_program_task_time_ns openplc_program_tasks openplc_program_var_count openplc_program_vars start_loop stop_loop "
check "keeps the STruC++ output with --keep" test -f "$tmp/host/generated/configuration.cpp"

run "$build" --from-output "$tmp/host/generated" --name again -o "$tmp/again"
expect_rc "builds from a directory of STruC++ output" 0
check "the output build has the program extension" \
    bash -c "nm -D --defined-only '$tmp/again/libplc_again.so' | grep -q ' openplc_program_run_task$'"

mkdir -p "$tmp/half"
cp "$tmp/host/generated/"* "$tmp/half/"
rm "$tmp/half/generated_debug.cpp"
run "$build" --from-output "$tmp/half" -o "$tmp/halfout"
expect_rc "refuses an output without generated_debug.cpp" 1
contains "names the missing file" "$err" "has no generated_debug.cpp"

cp "$tmp/host/generated/generated_debug.cpp" "$tmp/half/"
rm "$tmp/half/pou_COUNTER.cpp"
run "$build" --from-output "$tmp/half" -o "$tmp/halfout"
expect_rc "refuses an output missing a POU at link time, not at load" 1
contains "the linker names the missing symbol" "$err" "Program_COUNTER"
check "leaves no library behind" test ! -e "$tmp/halfout/libplc_half.so"

printf 'PROGRAM P\n  VAR x : INT; END_VAR\n  x := y;\nEND_PROGRAM\n' >"$tmp/bad.st"
run "$build" "$tmp/bad.st" -o "$tmp/bad"
expect_rc "refuses a program STruC++ cannot compile" 1
contains "STruC++'s error names the file and line" "$err" "bad.st:3:"

printf 'PROGRAM P\n  VAR x : INT; END_VAR\n  x := x + 1;\nEND_PROGRAM\n' >"$tmp/noconf.st"
run "$build" "$tmp/noconf.st" -o "$tmp/noconf"
expect_rc "refuses a program without a CONFIGURATION" 1
contains "says a CONFIGURATION is needed" "$err" "a program needs exactly one CONFIGURATION"

run "$build" --target sparc "$project/examples/programs/counter.st"
expect_rc "refuses an unknown target" 2

for t in aarch64:aarch64-linux-gnu-g++:AArch64 armv7:arm-linux-gnueabihf-g++:ARM; do
    IFS=: read -r target cxx machine <<<"$t"
    if ! command -v "$cxx" >/dev/null; then
        skip "--target $target: $cxx is not installed (scripts/install-deps --cross)"
        continue
    fi
    run "$build" --target "$target" "$project/examples/programs/counter.st" -o "$tmp/$target"
    expect_rc "builds for $target" 0
    contains "the $target library is for $machine" "$(readelf -h "$tmp/$target/libplc_counter.so")" "$machine"
done

finish
