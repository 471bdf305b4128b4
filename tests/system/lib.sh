#!/bin/bash
# lib.sh — helpers sourced by tests/system/test-*.sh. run.sh sets TESTBED (path to testbed.sh),
# MACHINE (the booted machine, gear-t1), PEER (the name for a second machine, gear-t2, booted
# by the tests that need it) and STAGE (the staged `make install` tree).
set -euo pipefail

: "${TESTBED:?run me through tests/system/run.sh}" "${MACHINE:?}"

# tb CMD...: run CMD inside $MACHINE (stdin, stdout and exit code pass through).
tb() { "$TESTBED" exec "$MACHINE" "$@"; }

# tbsh 'SCRIPT': run a shell script inside $MACHINE.
tbsh() { "$TESTBED" sh "$MACHINE" "$1"; }

step() { echo "--- $*"; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
  [ "$1" = "$2" ] || fail "${3:-value}: expected '$1', got '$2'"
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
  [[ $1 == *"$2"* ]] || fail "${3:-output} does not contain '$2': '$1'"
}

# wait_until TIMEOUT CMD...: run CMD every 0.1 s until it succeeds; fail after TIMEOUT seconds,
# showing CMD's output from one last try.
wait_until() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      "$@" || true
      fail "timed out after ${timeout}s: $*"
    fi
    sleep 0.1
  done
}
