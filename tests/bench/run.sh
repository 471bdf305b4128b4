#!/bin/bash
# run.sh — `make bench`: boot machine gear-bench (GEAR_BENCH_MACHINE; GEAR_TB_PREFIX+bench when
# that is set) with the staged install, run bench.sh, idle.sh, keys.sh, switch.sh and builds.sh in it
# (the figures of docs/benchmarks.md, idling.md, ssh.md; GEAR_BENCH_SCRIPTS picks others), take it down.
#
#   usage: run.sh STAGE_DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTBED=$HERE/../system/testbed.sh
M=${GEAR_BENCH_MACHINE:-${GEAR_TB_PREFIX:-gear-}bench}
# The scripts to run in it, each printing its table: the agent's figures, idling's, gear-keys', switches', builds'.
SCRIPTS=${GEAR_BENCH_SCRIPTS:-bench.sh idle.sh keys.sh switch.sh builds.sh}
if [ $# -ne 1 ] || [ ! -d "$1" ]; then sed -n '6p' "$0" | sed 's/^# *//' >&2; exit 2; fi
STAGE=$(cd "$1" && pwd)

trap '"$TESTBED" down "$M" || true' EXIT
"$TESTBED" deps
"$TESTBED" rootfs >/dev/null
"$TESTBED" down "$M" 2>/dev/null || true
"$TESTBED" up "$M" --stage "$STAGE"
"$TESTBED" images "$M"
for script in $SCRIPTS; do
  "$TESTBED" exec "$M" bash -s < "$HERE/$script"
done
