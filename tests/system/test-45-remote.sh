#!/usr/bin/env bash
# An agent on a network address: other hosts need a token (401 without), loopback does not,
# and the CLI fans out over many hosts with a bounded time, reporting a dead one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

peer() { "$TESTBED" exec "$PEER" "$@"; }
trap '"$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT

step "the peer's agent listens on its bridge address too (a second socket)"
"$TESTBED" up "$PEER" --bridge --stage "$STAGE" >/dev/null
peer_ip=$("$TESTBED" ip "$PEER")
peer mkdir -p /etc/systemd/system/gear-api.socket.d
peer sh -c "printf '[Socket]\nListenStream=$peer_ip:43273\nFreeBind=yes\n' > /etc/systemd/system/gear-api.socket.d/listen.conf"
peer systemctl daemon-reload
peer systemctl enable --now gear-api.socket >/dev/null 2>&1
peer systemctl restart gear-api.socket
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket >/dev/null 2>&1

step "without a token another host is refused"
assert_eq 401 "$(tb curl -s -o /dev/null -w '%{http_code}' "http://$peer_ip:43273/containers")"
assert_contains "$(tb curl -s "http://$peer_ip:43273/containers")" "needs Authorization: Bearer"
assert_contains "$(tb curl -s -H 'Authorization: Bearer 0123456789abcdef0123' "http://$peer_ip:43273/containers")" "gear new-token"
out=$(tb gear list-units "$peer_ip" 2>&1 || true)
assert_contains "$out" "error: $peer_ip: unauthorized"

step "a token made on the peer lets this machine in; a wrong one does not"
token=$(peer gear new-token)
assert_eq 600 "$(peer stat -c %a /etc/gear/tokens)"
assert_eq 401 "$(tb curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer 0000000000000000000000000' "http://$peer_ip:43273/containers")"
assert_eq '{"Containers":[]}' "$(tb curl -fsS -H "Authorization: Bearer $token" "http://$peer_ip:43273/containers")"
tb sh -c "mkdir -p /root/.config/gear && echo $token > /root/.config/gear/token"
tb gear install gear-test/httpd:latest "$peer_ip/remote-1" >/dev/null 2>&1 && fail "the peer has no image gear-test/httpd: the install should fail"
"$TESTBED" images "$PEER" >/dev/null
assert_contains "$(tb gear install gear-test/httpd:latest "$peer_ip/remote-1" --start -p 8080:0)" "$peer_ip/remote-1: installed and started"
assert_contains "$(tb gear list-units "$peer_ip")" "$peer_ip  remote-1  active  running"

step "loopback needs no token"
assert_contains "$(peer curl -fsS http://127.0.0.1:43273/containers)" '"Id":"remote-1"'

step "a token file others can read is not trusted"
peer chmod 644 /etc/gear/tokens
assert_eq 401 "$(tb curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$peer_ip:43273/containers")"
peer chmod 600 /etc/gear/tokens

step "fan-out: one dead host is reported and does not hold up the others"
start=$SECONDS
out=$(tb gear --timeout 3s list-units localhost "$peer_ip" 10.231.77.250 2>&1) && fail "a dead host must fail the command"
assert_contains "$out" "$peer_ip  remote-1  active"
assert_contains "$out" "error: 10.231.77.250"
[ $((SECONDS - start)) -le 8 ] || fail "fan-out took $((SECONDS - start)) s with a 3 s limit"
tb gear delete "$peer_ip/remote-1" >/dev/null
