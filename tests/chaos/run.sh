#!/bin/bash
# run.sh — the fault matrix (docs/reliability.md): each tests/chaos/fault-*.sh (or those
# whose name contains PATTERN) in a fresh machine PREFIX1 (PREFIX2 is a second machine for
# faults that need two), with STAGE_DIR installed. Prints each fault's output, then one line
# per fault (survived or not, containers lost, requests failed, time to recover), and
# writes the same as a Markdown table to target/chaos-report.md. Exits non-zero if any
# fault was not survived. Every machine of the prefix is taken down at the end.
#
#   usage: run.sh STAGE_DIR [PATTERN]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTBED=$HERE/../system/testbed.sh
PREFIX=${GEAR_TB_PREFIX:-gear-c}
MACHINE=${PREFIX}1
PEER=${PREFIX}2
FAULT_TIMEOUT=400           # seconds per fault script
REPORT=$HERE/../../target/chaos-report.md

if [ $# -lt 1 ] || [ ! -d "$1" ]; then sed -n '9p' "$0" | sed 's/^# *//' >&2; exit 2; fi
STAGE=$(cd "$1" && pwd)
PATTERN=${2:-}

down_ours() {
  local m
  for m in $("$TESTBED" list | awk -v p="^$PREFIX[0-9]+\$" 'NR > 1 && $1 ~ p {print $1}'); do
    "$TESTBED" down "$m" >/dev/null 2>&1 || echo "WARNING: could not take $m down" >&2
  done
}
trap 'down_ours' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

faults=()
for f in "$HERE"/fault-*.sh; do [[ $(basename "$f") == *"$PATTERN"* ]] && faults+=("$f"); done
[ ${#faults[@]} -gt 0 ] || { echo "no faults match '$PATTERN'" >&2; exit 2; }

"$TESTBED" deps
"$TESTBED" rootfs >/dev/null
results=()
for f in "${faults[@]}"; do
  name=$(basename "$f" .sh)
  echo "=== $name"
  down_ours
  "$TESTBED" up "$MACHINE" --bridge --stage "$STAGE" >/dev/null 2>&1
  "$TESTBED" images "$MACHINE" >/dev/null 2>&1
  log=$(mktemp)
  rc=0
  TESTBED=$TESTBED MACHINE=$MACHINE PEER=$PEER STAGE=$STAGE \
    timeout "$FAULT_TIMEOUT" bash "$f" </dev/null 2>&1 | tee "$log" | sed 's/^/    /' || rc=$?
  line=$(grep '^RESULT|' "$log" | tail -1 || true)
  if [ -z "$line" ]; then
    # The script stopped before its verdict (an assertion failed, or it timed out).
    line="RESULT|$name|no|?|?|-|-|-"
  elif ! grep -q '^RESULT|[^|]*|yes|' <<<"$line" || [ "$rc" != 0 ]; then
    line=$(awk -F'|' -v OFS='|' '{ $3 = "no"; print }' <<<"$line")
  fi
  results+=("$line")
  rm -f "$log"
done
down_ours

{
  echo "| fault | survived | containers lost | requests failed | recovery | requests (answered with an error) | leaks |"
  echo "|---|---|---|---|---|---|---|"
  for r in "${results[@]}"; do awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7, $8 }' <<<"$r"; done
} > "$REPORT"
echo
printf '%-48s %-9s %-6s %-8s %s\n' FAULT SURVIVED LOST FAILED RECOVERY
for r in "${results[@]}"; do
  awk -F'|' '{ printf "%-48s %-9s %-6s %-8s %s\n", $2, $3, $4, $5, $6 }' <<<"$r"
done
echo "(Markdown table: $REPORT)"
! printf '%s\n' "${results[@]}" | grep -q '^RESULT|[^|]*|no|'
