#!/bin/bash
# lib.sh — sourced by tests/chaos/fault-*.sh (after tests/system/lib.sh): a busy gear, the
# fault in the middle, and the verdict. run.sh sets TESTBED, MACHINE, PEER and STAGE.
#
#   chaos_begin            containers that must survive, then load.sh in the background
#   (inject the fault)
#   chaos_end NAME [BOUND] stop the load, wait up to BOUND s (default 30) for every container
#                          to be where it should, check for leaks, print the RESULT line
CHAOS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$CHAOS/../system/lib.sh"

# Ids that must run at the end, and ids that must stay stopped, besides the load's.
STEADY="steady-1 steady-2 steady-3"
PARKED="parked-1"

ms() { date +%s%3N; }

chaos_begin() {
  tb systemctl daemon-reload
  tb systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1
  local id
  for id in $STEADY; do tb gear install gear-test/httpd:latest "localhost/$id" --start >/dev/null; done
  for id in $PARKED; do tb gear install gear-test/httpd:latest "localhost/$id" >/dev/null; done
  tbsh 'rm -rf /tmp/chaos; mkdir -p /tmp/chaos'
  tbsh 'cat > /tmp/chaos/load.sh' < "$CHAOS/load.sh"
  tbsh 'cat > /tmp/chaos/check.sh' < "$CHAOS/check.sh"
  tbsh 'setsid sh /tmp/chaos/load.sh busy </dev/null >/dev/null 2>&1 &'
  # Let the load get going, so the fault lands in the middle of installs and starts.
  sleep "${CHAOS_WARMUP:-3}"
}

# The state every id should end in, from the last answered (2xx) request about it:
# "run", "down" or "gone" (a link or a wake changes none of these); ids whose last request was not answered 2xx are only checked
# for being whole or absent.
intents() {
  local id
  for id in $STEADY; do echo "$id run"; done
  for id in $PARKED; do echo "$id down"; done
  tb cat /tmp/chaos/requests | awk '
    $1 != "link" && $1 != "wake" { last[$2] = $1 " " $3 }
    END { for (id in last) { split(last[id], a, " ");
            if (a[2] !~ /^2/) continue;
            s = (a[1] == "install" || a[1] == "start") ? "run" : (a[1] == "stop") ? "down" : "gone";
            print id, s } }'
}

# wrong_states: one line per id not (yet) where it should be.
wrong_states() {
  local id want state
  while read -r id want; do
    state=$(tb systemctl is-active "ctr-$id.service" || true)
    case $want in
      run) [ "$state" = active ] || echo "$id should run but is $state" ;;
      down) [ "$state" != active ] || echo "$id should be stopped but is active" ;;
      gone) tb test ! -e "/var/lib/containers/units/ctr-$id.service" || echo "$id was deleted but is installed" ;;
    esac
  done < "$INTENTS"
}

# recovered: the containers that ran before the fault run, and the agent answers.
recovered() {
  local id
  for id in $STEADY; do
    [ "$(tb systemctl is-active "ctr-$id.service" || true)" = active ] || return 1
  done
  tb curl -fsS -m 5 -o /dev/null http://127.0.0.1:43273/containers
}

# chaos_end NAME [BOUND]: call right after the fault was injected.
chaos_end() {
  local name=$1 bound=${2:-30} t_fault t_ok="" wrong leaks requests failed errors
  # Recovery: from the end of the fault until the containers that ran before it run again
  # and the agent answers; the load goes on meanwhile.
  t_fault=$(ms)
  local deadline=$(( t_fault + bound * 1000 ))
  until recovered >/dev/null 2>&1; do
    [ "$(ms)" -ge "$deadline" ] && break
    sleep 0.2
  done
  recovered >/dev/null 2>&1 && t_ok=$(ms)
  sleep 2
  tb touch /tmp/chaos/stop
  wait_until 120 sh -c "! $TESTBED exec $MACHINE pgrep -f /tmp/chaos/load.sh"
  # Connections a fault script made (wakes) count as requests too.
  tbsh '[ ! -e /tmp/chaos/wakes ] || cat /tmp/chaos/wakes >> /tmp/chaos/requests'
  INTENTS=$(mktemp)
  intents > "$INTENTS"
  # Then every container of the load must settle where its last answer said, within BOUND.
  deadline=$(( $(ms) + bound * 1000 ))
  while :; do
    wrong=$(wrong_states)
    [ -z "$wrong" ] && break
    [ "$(ms)" -ge "$deadline" ] && break
    sleep 0.5
  done
  leaks=$(tbsh 'sh /tmp/chaos/check.sh')
  requests=$(tb cat /tmp/chaos/requests | wc -l)
  # A request failed if it hung (curl's 28) or got no answer even after its retries.
  failed=$(tb cat /tmp/chaos/requests | awk '$4 != 0' | wc -l)
  errors=$(tb cat /tmp/chaos/requests | awk '$4 == 0 && $3 !~ /^2/' | wc -l)
  local lost=0 survived=yes recovery
  [ -n "$wrong" ] && lost=$(echo "$wrong" | wc -l)
  [ "$lost" = 0 ] && [ "$failed" = 0 ] && [ -z "$leaks" ] && [ -n "$t_ok" ] || survived=no
  if [ -n "$t_ok" ]; then recovery=$(awk -v d=$((t_ok - t_fault)) 'BEGIN { printf "%.1f s", d / 1000 }'); else recovery="> $bound s"; fi
  echo "requests: $requests, answered with an error: $errors, failed: $failed"
  tbsh 'sort /tmp/chaos/errors 2>/dev/null | cut -c1-200 | head -10' | sed 's/^/  error: /'
  [ -z "$wrong" ] || echo "$wrong" | sed 's/^/  wrong: /'
  [ -z "$leaks" ] || echo "$leaks" | sed 's/^/  leak: /'
  printf 'RESULT|%s|%s|%s|%s|%s|%s|%s\n' "$name" "$survived" "$lost" "$failed" "$recovery" \
    "$requests ($errors errors)" "$(echo "$leaks" | grep -c . || true)"
  rm -f "$INTENTS"
  [ "$survived" = yes ]
}
