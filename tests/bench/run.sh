#!/bin/bash
# run.sh — `make bench`: boot machine gear-bench with the staged install, run bench.sh inside
# it (the figures of docs/benchmarks.md), and take the machine down again.
#
#   usage: run.sh STAGE_DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTBED=$HERE/../system/testbed.sh
M=gear-bench
if [ $# -ne 1 ] || [ ! -d "$1" ]; then sed -n '5p' "$0" | sed 's/^# *//' >&2; exit 2; fi
STAGE=$(cd "$1" && pwd)

trap '"$TESTBED" down "$M" || true' EXIT
"$TESTBED" deps
"$TESTBED" rootfs >/dev/null
"$TESTBED" down "$M" 2>/dev/null || true
"$TESTBED" up "$M" --stage "$STAGE"
"$TESTBED" images "$M"
"$TESTBED" exec "$M" bash -s < "$HERE/bench.sh"
