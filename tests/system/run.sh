#!/bin/bash
# run.sh — run gear's system tests: boot machine gear-t1 (bridge networking, STAGE_DIR installed
# into it), build the test images, run every tests/system/test-*.sh (optionally only those whose
# name contains PATTERN), and always take every machine down again.
#
#   usage: run.sh STAGE_DIR [PATTERN]      STAGE_DIR is a `make install DESTDIR=` tree
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTBED=$HERE/testbed.sh
# Machine names: PREFIX1 runs the tests, PREFIX2 is the peer for two-host tests. Another
# prefix (GEAR_TB_PREFIX) lets a second run share this host without touching these.
PREFIX=${GEAR_TB_PREFIX:-gear-t}
MACHINE=${PREFIX}1
PEER=${PREFIX}2
TEST_TIMEOUT=300            # seconds per test script

if [ $# -lt 1 ] || [ ! -d "$1" ]; then sed -n '6p' "$0" | sed 's/^# *//' >&2; exit 2; fi
STAGE=$(cd "$1" && pwd)
PATTERN=${2:-}

test_pid=""     # the running test's `timeout`, so the trap can stop it
cleaned=0

# Stop the running test and every machine; must hold on success, failure, Ctrl-C and TERM.
cleanup() {
  [ "$cleaned" = 1 ] && return 0
  cleaned=1
  if [ -n "$test_pid" ]; then
    # timeout runs in its own process group (a terminal's Ctrl-C does not reach it): tell it,
    # and it passes the signal on to the test.
    kill -TERM "$test_pid" 2>/dev/null || true
    wait "$test_pid" 2>/dev/null || true
  fi
  echo "--- down ${PREFIX}*"
  down_ours || echo "WARNING: taking the test machines down failed" >&2
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Takes down this run's machines (PREFIX followed by digits), and only those.
down_ours() {
  local m rc=0
  for m in $("$TESTBED" list | awk -v p="^$PREFIX[0-9]+\$" 'NR > 1 && $1 ~ p {print $1}'); do
    "$TESTBED" down "$m" || rc=1
  done
  return "$rc"
}

# Run one test script with a time limit; print PASS/FAIL, and its output when it fails.
run_test() {
  local t=$1 name log start rc=0
  name=$(basename "$t" .sh)
  log=$(mktemp)
  start=$SECONDS
  # Backgrounded and waited for, so a signal runs the trap at once instead of after the test.
  TESTBED=$TESTBED MACHINE=$MACHINE PEER=$PEER STAGE=$STAGE \
    timeout "$TEST_TIMEOUT" bash "$t" >"$log" 2>&1 </dev/null &
  test_pid=$!
  wait "$test_pid" || rc=$?
  test_pid=""
  if [ "$rc" = 0 ]; then
    echo "PASS $name ($((SECONDS - start)) s)"
  else
    if [ "$rc" = 124 ]; then echo "(timed out after $TEST_TIMEOUT s)"; else echo "(exit status $rc)"; fi >> "$log"
    echo "FAIL $name ($((SECONDS - start)) s)"
    sed 's/^/    /' "$log"
  fi
  rm -f "$log"
  return "$rc"
}

main() {
  local t m passed=0 failed=0 tests=()
  for t in "$HERE"/test-*.sh; do
    [[ $(basename "$t") == *"$PATTERN"* ]] && tests+=("$t")
  done
  [ ${#tests[@]} -gt 0 ] || { echo "no tests match '$PATTERN'" >&2; exit 2; }

  echo "--- set up (deps, rootfs, $MACHINE, images)"
  "$TESTBED" deps
  "$TESTBED" rootfs >/dev/null
  # Test machines left by an earlier run that was killed (other machines, e.g. gear-demo, stay).
  down_ours
  "$TESTBED" up "$MACHINE" --bridge --stage "$STAGE"
  "$TESTBED" images "$MACHINE"

  for t in "${tests[@]}"; do
    if run_test "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}

main
