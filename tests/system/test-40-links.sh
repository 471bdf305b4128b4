#!/usr/bin/env bash
# Links, for real: a container reaches a container on the same machine and one on a second
# machine through its local addresses, also after restarts; links change on a running
# container; applying is idempotent; a link that cannot be applied fails the start loudly.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
peer() { "$TESTBED" exec "$PEER" "$@"; }
# What a container gets from ADDRESS:PORT inside itself (busybox nc; wget crashes there).
fetch() { tb docker exec "ctr-$1" sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $2 $3" | tail -1; }
trap '"$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT

step "a second machine on the bridge, serving web-2"
"$TESTBED" up "$PEER" --bridge --stage "$STAGE" >/dev/null
"$TESTBED" images "$PEER" >/dev/null
peer_ip=$("$TESTBED" ip "$PEER")
for m in "$MACHINE" "$PEER"; do
  "$TESTBED" exec "$m" systemctl daemon-reload
  "$TESTBED" exec "$m" systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
done
peer gear install gear-test/httpd:latest localhost/web-2 --start -p 8080:0 >/dev/null
p2=$(peer curl -fsS $api/container/web-2/ports | sed -n 's/.*"External":\([0-9]*\).*/\1/p')
peer docker exec ctr-web-2 sh -c 'echo hello from web-2 > /www/index.html'

step "web-1 on this machine; a client linked to both"
tb gear install gear-test/httpd:latest localhost/web-1 --start -p 8080:0 >/dev/null
p1=$(tb curl -fsS $api/container/web-1/ports | sed -n 's/.*"External":\([0-9]*\).*/\1/p')
tb gear install gear-test/loop:latest localhost/client --start \
  -n "127.0.0.2:80:localhost:$p1" -n "127.0.0.3:80:$peer_ip:$p2" >/dev/null
assert_eq "hello from gear-test/httpd" "$(fetch client 127.0.0.2 80)" "same-machine link"
assert_eq "hello from web-2" "$(fetch client 127.0.0.3 80)" "cross-machine link"

step "links survive a restart of the client and of the target"
tb gear restart localhost/client >/dev/null
peer gear restart localhost/web-2 >/dev/null
peer docker exec ctr-web-2 sh -c 'echo hello from web-2 > /www/index.html'
assert_eq "hello from gear-test/httpd" "$(fetch client 127.0.0.2 80)"
assert_eq "hello from web-2" "$(fetch client 127.0.0.3 80)"

step "applying the same links again changes no rule"
rules() { tb sh -c "nsenter --net=/proc/\$(docker inspect -f '{{.State.Pid}}' ctr-client)/ns/net iptables -t nat -S"; }
before=$(rules)
tb curl -H "Content-Type: application/json" -fsS -X POST -d "{\"Links\":[{\"Id\":\"client\",\"NetworkLinks\":[{\"FromHost\":\"127.0.0.2\",\"FromPort\":80,\"ToHost\":\"localhost\",\"ToPort\":$p1},{\"FromHost\":\"127.0.0.3\",\"FromPort\":80,\"ToHost\":\"$peer_ip\",\"ToPort\":$p2}]}]}" $api/containers/links >/dev/null
assert_eq "$before" "$(rules)" "nat rules after re-applying"
assert_eq 1 "$(grep -c -- '-A OUTPUT -j GEAR-LINKS' <<<"$before")"

step "new links reach a running container at once; the old ones are gone"
started=$(tb systemctl show -P ExecMainStartTimestampMonotonic ctr-client.service)
assert_contains "$(tb gear link -n "127.0.0.4:80:$peer_ip:$p2" localhost/client)" "links set on client"
assert_eq "hello from web-2" "$(fetch client 127.0.0.4 80)"
assert_eq "" "$(fetch client 127.0.0.2 80 2>/dev/null || true)" "removed link"
assert_eq "$started" "$(tb systemctl show -P ExecMainStartTimestampMonotonic ctr-client.service)" "client start time"

step "a link that cannot be applied fails the start, with the reason in the journal"
tb gear install gear-test/loop:latest localhost/badlink -n 80:no-such-host.invalid:80 >/dev/null
out=$(tb gear start localhost/badlink 2>&1 || true)
assert_contains "$out" "error: localhost/badlink"
wait_until 10 sh -c "$TESTBED exec $MACHINE journalctl -u ctr-badlink.service -o cat | grep -q 'cannot resolve no-such-host.invalid'"
assert_eq "" "$(tb docker ps -aq --filter name=^ctr-badlink$)"

step "delete removes the links with the container"
tb gear delete localhost/badlink localhost/client localhost/web-1 >/dev/null
peer gear delete localhost/web-2 >/dev/null
