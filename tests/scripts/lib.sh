# shellcheck shell=bash
# Tiny assertion helpers shared by tests/scripts/test_*.sh. Each check prints
# "ok - ..." or "not ok - ..." (with the evidence), and `finish` prints the
# closing "N passed, M failed" line CI reads, exiting non-zero on any failure.

passed=0
failed=0

# The project under test: the repository this file belongs to.
# shellcheck disable=SC2034 # read by the tests that source this file
project=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)

ok() {
    passed=$((passed + 1))
    printf 'ok - %s\n' "$1"
}

not_ok() {
    failed=$((failed + 1))
    printf 'not ok - %s\n' "$1"
    if [[ $# -gt 1 && -n $2 ]]; then
        printf '%s\n' "$2" | sed -e 's/^/    # /' | head -n 40
    fi
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
    local description=$1
    shift
    if "$@"; then ok "$description"; else not_ok "$description" "command failed: $*"; fi
}

# run COMMAND...: runs it with stdin from /dev/null (no terminal), keeping its
# stdout in $out, stderr in $err and exit status in $rc.
out='' err='' rc=0
run() {
    local o e
    o=$(mktemp) e=$(mktemp)
    rc=0
    "$@" </dev/null >"$o" 2>"$e" || rc=$?
    out=$(cat "$o") err=$(cat "$e")
    rm -f -- "$o" "$e"
}

# expect_rc DESCRIPTION CODE: the last `run` exited with CODE.
expect_rc() {
    if [[ $rc == "$2" ]]; then
        ok "$1"
    else
        not_ok "$1" "exit status $rc, wanted $2"$'\n'"stdout: $out"$'\n'"stderr: $err"
    fi
}

# contains DESCRIPTION TEXT NEEDLE: TEXT includes NEEDLE (fixed string).
contains() {
    if [[ $2 == *"$3"* ]]; then
        ok "$1"
    else
        not_ok "$1" "wanted to find: $3"$'\n'"in: $2"
    fi
}

# lacks DESCRIPTION TEXT NEEDLE: TEXT does not include NEEDLE.
lacks() {
    if [[ $2 != *"$3"* ]]; then
        ok "$1"
    else
        not_ok "$1" "did not want: $3"$'\n'"in: $2"
    fi
}

# equals DESCRIPTION ACTUAL EXPECTED
equals() {
    if [[ $2 == "$3" ]]; then
        ok "$1"
    else
        not_ok "$1" "got:    $2"$'\n'"wanted: $3"
    fi
}

# one_line_error DESCRIPTION: the last `run` failed with exactly one line on stderr.
one_line_error() {
    local lines
    lines=$(printf '%s' "$err" | grep -c . || true)
    if [[ $rc != 0 && $lines == 1 ]]; then
        ok "$1"
    else
        not_ok "$1" "exit $rc, $lines stderr lines: $err"
    fi
}

skip() {
    printf 'SKIP - %s\n' "$1"
}

finish() {
    printf '%d passed, %d failed\n' "$passed" "$failed"
    [[ $failed == 0 ]]
}

# Usage: shellcheck_clean DESCRIPTION FILE...; passes when `shellcheck -S style` finds nothing. In CI
# a missing shellcheck is a failure, not a skip.
shellcheck_clean() {
    local description=$1
    shift
    if ! command -v shellcheck >/dev/null; then
        if [[ -n ${CI-} ]]; then
            not_ok "$description" "shellcheck is not installed (apt-get install shellcheck)"
        else
            skip "$description: shellcheck is not installed (apt-get install shellcheck)"
        fi
        return
    fi
    local report
    if report=$(shellcheck -S style -x "$@" 2>&1); then ok "$description"; else not_ok "$description" "$report"; fi
}
