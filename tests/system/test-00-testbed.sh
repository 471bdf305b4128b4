#!/bin/bash
# test-00-testbed.sh — smoke test of the test machine itself, before any gear test relies on it:
# systemd state (inside and over D-Bus from the host), journald, a unit from a file, dockerd with
# both test images, and a second machine reaching the first over the bridge.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PEER=${PEER:-gear-t2}
cleanup() {
  "$TESTBED" down "$PEER" >/dev/null 2>&1 || true
  tb docker rm -f tb-web tb-loop tb-web-br >/dev/null 2>&1 || true
  tb rm -f /etc/systemd/system/tb-smoke.service 2>/dev/null || true
}
trap cleanup EXIT

step "systemd has booted cleanly"
assert_eq running "$(tb systemctl is-system-running || true)" "is-system-running"
cpid=$("$TESTBED" cpid "$MACHINE")
state=$(busctl --address="unix:path=/proc/$cpid/root/run/dbus/system_bus_socket" get-property \
  org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState)
assert_eq 's "running"' "$state" "SystemState over the machine's bus from the host"
assert_eq "$MACHINE" "$(tb hostname)" "hostname"

step "journald stores a line (read inside and from the host)"
tag=tb-smoke-$RANDOM$RANDOM
echo "$tag" | tb systemd-cat -t tb-smoke
wait_until 10 tbsh "journalctl -b -t tb-smoke -o cat | grep -qx $tag"
assert_eq "$tag" "$(tb journalctl -b -t tb-smoke -o cat)" "journal line inside"
assert_eq "$tag" "$(journalctl --root="/proc/$cpid/root" -b -t tb-smoke -o cat)" "journal line from the host"

step "a unit installed from a file starts, logs and stops"
tb sh -c 'cat > /etc/systemd/system/tb-smoke.service' <<'UNIT'
[Service]
ExecStart=/bin/sh -c 'echo tb-smoke started; echo ok > /run/tb-smoke; exec sleep infinity'
UNIT
tb systemctl daemon-reload
tb systemctl start tb-smoke.service
assert_eq active "$(tb systemctl is-active tb-smoke.service || true)" "tb-smoke ActiveState"
assert_eq ok "$(tb cat /run/tb-smoke)" "file written by the unit"
wait_until 5 tbsh "journalctl -b -u tb-smoke -o cat | grep -qx 'tb-smoke started'"
tb systemctl stop tb-smoke.service
assert_eq inactive "$(tb systemctl is-active tb-smoke.service || true)" "tb-smoke after stop"

step "dockerd runs gear-test/httpd with a published port"
tb docker run --init -d --name tb-web -p 127.0.0.1:18080:8080 gear-test/httpd:latest >/dev/null
wait_until 10 tb curl -fsS -m 2 -o /dev/null http://127.0.0.1:18080/
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS -m 5 http://127.0.0.1:18080/)" "page on 127.0.0.1:18080"

step "dockerd runs gear-test/loop, its stdout reaches docker logs"
tb docker run --init -d --name tb-loop gear-test/loop:latest >/dev/null
wait_until 10 tbsh "docker logs tb-loop | grep -qx 'tick 3'"
assert_eq "$(printf 'tick 1\ntick 2\ntick 3')" "$(tb docker logs tb-loop | sed -n 1,3p)" "first ticks"

step "bridge: the host and a second machine reach $MACHINE"
ip1=$("$TESTBED" ip "$MACHINE")
# Not a fixed address: machines of another run (another GEAR_TB_PREFIX) may hold .11 and .12.
[[ $ip1 == 10.231.77.* ]] || fail "$MACHINE's bridge address $ip1 is not on the bridge"
tb docker run --init -d --name tb-web-br -p "$ip1:18081:8080" gear-test/httpd:latest >/dev/null
wait_until 10 curl -fsS -m 2 -o /dev/null "http://$ip1:18081/"
assert_eq "hello from gear-test/httpd" "$(curl -fsS -m 5 "http://$ip1:18081/")" "page from the host"
"$TESTBED" up "$PEER" --bridge
ip2=$("$TESTBED" ip "$PEER")
[[ $ip2 == 10.231.77.* && $ip2 != "$ip1" ]] || fail "$PEER's bridge address $ip2 (next to $ip1)"
assert_eq "hello from gear-test/httpd" "$("$TESTBED" exec "$PEER" curl -fsS -m 5 "http://$ip1:18081/")" "page from $PEER"

step "down $PEER leaves $MACHINE running"
"$TESTBED" down "$PEER"
list=$("$TESTBED" list)
[[ $list != *"$PEER"* ]] || fail "$PEER still listed: $list"
assert_contains "$list" "$MACHINE " "testbed list"
assert_eq running "$(tb systemctl is-system-running || true)" "$MACHINE after $PEER went down"
