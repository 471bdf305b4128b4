#!/usr/bin/env bash
# An agent on a network address: other hosts need a token (401 without), loopback does not;
# gear never sends a token in the clear to another host without --insecure; once the agent
# has a certificate (gear init-tls) it speaks TLS to other hosts and refuses plain HTTP from
# them, gear reaches it by a pinned fingerprint and refuses a wrong one, tokens can be per
# host; and the CLI fans out over many hosts with a bounded time, reporting a dead one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

peer() { "$TESTBED" exec "$PEER" "$@"; }
# The CLI's pins and tokens for the peer go with it: later tests share this machine.
trap 'tb rm -f /root/.config/gear/hosts /root/.config/gear/token >/dev/null 2>&1 || true; "$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT

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
out=$(tb gear --insecure list-units "$peer_ip" 2>&1 || true)
assert_contains "$out" "error: $peer_ip: unauthorized"

step "a token made on the peer lets this machine in; a wrong one does not"
token=$(peer gear new-token)
assert_eq 600 "$(peer stat -c %a /etc/gear/tokens)"
assert_eq 401 "$(tb curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer 0000000000000000000000000' "http://$peer_ip:43273/containers")"
assert_eq '{"Containers":[]}' "$(tb curl -fsS -H "Authorization: Bearer $token" "http://$peer_ip:43273/containers")"
tb sh -c "mkdir -p /root/.config/gear && echo $token > /root/.config/gear/token"

step "gear does not send the token in the clear to another host unless --insecure"
seen=$(peer journalctl -u gear-api.service --no-pager | grep -c 'GET /containers' || true)
out=$(tb gear list-units "$peer_ip" 2>&1) && fail "plain HTTP to another host without --insecure"
assert_contains "$out" "refusing to send requests and tokens to another host in the clear"
assert_eq "$seen" "$(peer journalctl -u gear-api.service --no-pager | grep -c 'GET /containers' || true)" "requests the peer saw"
tb gear --insecure install gear-test/httpd:latest "$peer_ip/remote-1" >/dev/null 2>&1 && fail "the peer has no image gear-test/httpd: the install should fail"
"$TESTBED" images "$PEER" >/dev/null
assert_contains "$(tb gear --insecure install gear-test/httpd:latest "$peer_ip/remote-1" --start -p 8080:0)" "$peer_ip/remote-1: installed and started"
assert_contains "$(tb gear --insecure list-units "$peer_ip")" "$peer_ip  remote-1  active  running"

step "with a certificate the agent speaks TLS to other hosts and refuses plain HTTP from them"
fp=$(peer gear init-tls --name "$peer_ip")
assert_eq 600 "$(peer stat -c %a /etc/gear/tls/key.pem)"
assert_eq "$fp" "$(peer gear init-tls 2>/dev/null)" "a second init-tls keeps the certificate"
peer systemctl restart gear-api.service
assert_eq 426 "$(tb curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$peer_ip:43273/containers")"
out=$(tb gear --insecure list-units "$peer_ip" 2>&1) && fail "plain HTTP was served to another host"
assert_contains "$out" "speaks only TLS to other hosts"
assert_contains "$(tb curl -fsSk -H "Authorization: Bearer $token" "https://$peer_ip:43273/containers")" '"Id":"remote-1"'
assert_eq 401 "$(tb curl -sk -o /dev/null -w '%{http_code}' "https://$peer_ip:43273/containers")"

step "a pinned fingerprint lets gear in over TLS; a wrong one is refused before any request"
tb sh -c "echo '$peer_ip fingerprint=$fp' > /root/.config/gear/hosts"
assert_contains "$(tb gear list-units "$peer_ip")" "$peer_ip  remote-1  active  running"
before=$(peer journalctl -u gear-api.service --no-pager | grep -c 'GET /containers' || true)
wrong="SHA256:$(printf 'AB:%.0s' $(seq 31))AB"
tb sh -c "echo '$peer_ip fingerprint=$wrong' > /root/.config/gear/hosts"
out=$(tb gear list-units "$peer_ip" 2>&1) && fail "a wrong fingerprint was accepted"
assert_contains "$out" "its certificate $fp is not the one pinned for it"
out=$(tb gear --insecure list-units "$peer_ip" 2>&1) && fail "--insecure overrode a pin"
assert_contains "$out" "is not the one pinned"
assert_eq "$before" "$(peer journalctl -u gear-api.service --no-pager | grep -c 'GET /containers' || true)" "requests the peer saw"

step "tokens per host: the host's line wins over ~/.config/gear/token"
tb sh -c "echo 00000000000000000000000000 > /root/.config/gear/token"
tb sh -c "echo '$peer_ip fingerprint=$fp token=$token' > /root/.config/gear/hosts && chmod 600 /root/.config/gear/hosts"
assert_contains "$(tb gear list-units "$peer_ip")" "$peer_ip  remote-1  active  running"
tb chmod 644 /root/.config/gear/hosts
out=$(tb gear list-units "$peer_ip" 2>&1) && fail "a hosts file with tokens others can read was used"
assert_contains "$out" "chmod 600"
tb sh -c "echo '$peer_ip fingerprint=$fp' > /root/.config/gear/hosts && echo $token > /root/.config/gear/token"

step "loopback needs no token, and plain HTTP stays for it beside TLS"
assert_contains "$(peer curl -fsS http://127.0.0.1:43273/containers)" '"Id":"remote-1"'
assert_contains "$(peer gear list-units 127.0.0.1)" 'remote-1'

step "a token file others can read is not trusted"
peer chmod 644 /etc/gear/tokens
assert_eq 401 "$(tb curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "https://$peer_ip:43273/containers")"
peer chmod 600 /etc/gear/tokens

step "fan-out: one dead host is reported and does not hold up the others"
start=$SECONDS
out=$(tb gear --timeout 3s list-units localhost "$peer_ip" 10.231.77.250 2>&1) && fail "a dead host must fail the command"
assert_contains "$out" "$peer_ip  remote-1  active"
assert_contains "$out" "error: 10.231.77.250"
[ $((SECONDS - start)) -le 8 ] || fail "fan-out took $((SECONDS - start)) s with a 3 s limit"
tb gear delete "$peer_ip/remote-1" >/dev/null
