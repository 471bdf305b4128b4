#!/usr/bin/env bash
# Faults a host really has (docs/reliability.md), the quick ones: a restart of the system
# bus leaves the agent and the idler working without a restart of their own; Docker
# stopped then started, killed, or restarted brings every started container back within
# 10 s of the engine, and leaves stopped ones stopped. The slow fault matrix is `make chaos`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

port=18600
page="hello from gear-test/httpd"
is_state() { [ "$(tb systemctl is-active "ctr-$1.service" || true)" = "$2" ]; }
answers() { [[ $(tb curl -fsS -m 2 "http://127.0.0.1:$port/") == *"$page"* ]]; }
# ms since the epoch, inside the machine (the clock the journal uses).
now_ms() { tb date +%s%3N; }

tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1
tb gear install gear-test/httpd:latest localhost/fault-up --start -p 8080:$port >/dev/null
tb gear install gear-test/httpd:latest localhost/fault-down >/dev/null
# Started, then stopped: systemd still remembers it among the target's wants until a reload.
tb gear install gear-test/httpd:latest localhost/fault-was-up --start >/dev/null
tb gear stop localhost/fault-was-up >/dev/null
wait_until 10 answers

step "D-Bus restarted: the agent's next request works, the idler stops complaining"
tb gear status localhost/fault-up >/dev/null             # the agent is up and connected
api_pid=$(tb systemctl show -P MainPID gear-api.service)
idler_pid=$(tb systemctl show -P MainPID gear-idler.service)
tb systemctl restart dbus.service
assert_contains "$(tb gear list-units)" "fault-up"
tb gear stop localhost/fault-up >/dev/null
tb gear start localhost/fault-up >/dev/null
assert_eq active "$(tb systemctl is-active ctr-fault-up.service)"
assert_eq "$api_pid" "$(tb systemctl show -P MainPID gear-api.service)" "the agent's pid (no restart)"
sleep 3                                                   # three idler ticks
since=$(( $(now_ms) / 1000 - 2 ))
quiet=$(tb journalctl -u gear-idler.service --since "@$since" -o cat | grep -c 'WARN\|ERROR' || true)
assert_eq 0 "$quiet" "idler warnings in the last 2 s"
assert_eq "$idler_pid" "$(tb systemctl show -P MainPID gear-idler.service)" "the idler's pid"
tb journalctl -u gear-idler.service -o cat | grep -q "connecting again" || fail "the idler did not reconnect"

# fault NAME CMD: inject CMD, then wait for the engine and for the started container.
fault() {
  local name=$1; shift
  step "Docker $name: the started container is back within 10 s of the engine, the stopped one stays down"
  tb sh -c "$*"
  wait_until 30 tb docker info
  local up=$SECONDS
  wait_until 10 is_state fault-up active
  wait_until 10 answers
  echo "$name: container back $((SECONDS - up)) s after the engine"
  assert_eq inactive "$(tb systemctl is-active ctr-fault-down.service || true)" "the never started container"
  assert_eq inactive "$(tb systemctl is-active ctr-fault-was-up.service || true)" "the stopped container"
}
fault "stopped then started" 'systemctl stop docker.socket docker.service; sleep 2; systemctl start docker.service'
fault "stopped (socket left listening) then started" 'systemctl stop docker.service; sleep 2; systemctl start docker.service'
fault "killed (kill -9)" 'kill -9 $(systemctl show -P MainPID docker.service); sleep 2'
fault "restarted" 'systemctl restart docker.service'

tb gear delete localhost/fault-up localhost/fault-down localhost/fault-was-up >/dev/null
