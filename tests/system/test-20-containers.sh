#!/usr/bin/env bash
# Containers as systemd units, against real systemd and Docker: install --start serves on
# an allocated port, the unit is active only with the container running, output reaches
# the journal, stop is prompt and removes the container, a killed docker client leaves no
# orphan, delete removes exactly one container, errors are JSON.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1

step "install --start publishes an allocated port and serves"
out=$(tb gear install gear-test/httpd:latest localhost/web-1 --start -p 8080:0)
assert_contains "$out" "localhost/web-1: installed and started, ports 8080->"
port=$(tb curl -fsS $api/container/web-1/ports | sed -n 's/.*"External":\([0-9]*\).*/\1/p')
[ -n "$port" ] || fail "no external port reported"
# Never one the kernel may hand to a client's connection, which would fail a later start.
read -r eph_lo eph_hi < <(tb cat /proc/sys/net/ipv4/ip_local_port_range)
[ "$port" -lt "$eph_lo" ] || [ "$port" -gt "$eph_hi" ] || fail "allocated $port is an ephemeral port ($eph_lo-$eph_hi)"
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS "http://127.0.0.1:$port/")"
assert_eq active "$(tb systemctl is-active ctr-web-1.service)"
assert_eq true "$(tb docker inspect -f '{{.State.Running}}' ctr-web-1)"
st=$(tb gear status localhost/web-1)
assert_contains "$st" "● localhost/web-1 - ctr-web-1.service"
assert_contains "$st" "State: active (running) since"
assert_contains "$st" "Image: gear-test/httpd:latest"

step "a neighbour sharing the first characters, with dots and underscores in its id"
tb gear install gear-test/loop:latest localhost/we_b.2 --start >/dev/null
wait_until 10 sh -c "$TESTBED exec $MACHINE journalctl -u ctr-we_b.2.service -o cat | grep -q tick"
assert_contains "$(tb gear list-units localhost)" "localhost  we_b.2  active  running  loaded"

step "stop is prompt, removes the container and survives as 'stopped'"
t0=$(date +%s%N)
tb gear stop localhost/web-1 >/dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "stop took ${ms} ms"
[ "$ms" -lt 5000 ] || fail "stop took ${ms} ms"
assert_eq inactive "$(tb systemctl is-active ctr-web-1.service || true)"
assert_eq "" "$(tb docker ps -aq --filter name=^ctr-web-1$)"
[ ! -e "$(tb readlink -f /etc/systemd/system/container-active.target.wants)/ctr-web-1.service" ] || true
tb test ! -e /etc/systemd/system/container-active.target.wants/ctr-web-1.service || fail "stopped container still starts at boot"

step "start again: no name conflict, same port"
tb gear start localhost/web-1 >/dev/null
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS "http://127.0.0.1:$port/")"

step "kill -9 of the docker client leaves no orphan, and the policy restarts it"
pid=$(tb systemctl show -P MainPID ctr-web-1.service)
tb kill -9 "$pid"
wait_until 15 sh -c "[ \"\$($TESTBED exec $MACHINE systemctl show -P MainPID ctr-web-1.service)\" != $pid ] && $TESTBED exec $MACHINE systemctl is-active -q ctr-web-1.service"
wait_until 10 "$TESTBED" exec "$MACHINE" curl -fsS "http://127.0.0.1:$port/"
assert_eq 1 "$(tb docker ps -q --filter name=^ctr-web-1$ | wc -l)"

step "errors are JSON with fitting codes"
assert_eq 404 "$(tb curl -s -o /dev/null -w '%{http_code}' $api/container/nosuch/status)"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' $api/container/ab/status)"
assert_eq 400 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PUT -d '{"Image":"x\ny"}' $api/container/bad-1)"
assert_eq 422 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PUT -d '{"Image":"no-such/image"}' $api/container/bad-1)"
tb test ! -e /var/lib/containers/units/ctr-bad-1.service || fail "failed install left a unit"
out=$(tb gear install no-such/image localhost/bad-1 2>&1 || true)
assert_contains "$out" "error: localhost/bad-1: localhost: image no-such/image is not on this host and could not be pulled"

step "X-Request-Id: a retried delete is answered again, not redone; a reused id is refused"
tb gear install gear-test/httpd:latest localhost/retry-1 >/dev/null
first=$(tb curl -fsS -X DELETE -H 'X-Request-Id: del-retry-1' $api/container/retry-1)
again=$(tb curl -fsS -X DELETE -H 'X-Request-Id: del-retry-1' $api/container/retry-1)
assert_eq "$first" "$again"
assert_eq 404 "$(tb curl -s -o /dev/null -w '%{http_code}' -X DELETE $api/container/retry-1)"
assert_eq 409 "$(tb curl -s -o /dev/null -w '%{http_code}' -X DELETE -H 'X-Request-Id: del-retry-1' $api/container/web-1)"

step "install with ?progress=1 answers JSON lines ending in the result"
out=$(tb curl -H "Content-Type: application/json" -fsS -X PUT -d '{"Image":"gear-test/httpd:latest"}' "$api/container/prog-1?progress=1")
assert_contains "$(tail -1 <<<"$out")" '{"Installed":{"Id":"prog-1"'
tb gear delete localhost/prog-1 >/dev/null

step "environment: set, read, applied at the next start"
tb gear set-env localhost/we_b.2 GREETING=hello "OTHER=a b" >/dev/null
assert_eq $'GREETING=hello\nOTHER=a b' "$(tb gear env localhost/we_b.2)"
assert_eq 400 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PATCH -d '{"Variables":[{"Name":"A","Value":"x\ny"}]}' $api/environment/we_b.2)"
tb gear restart localhost/we_b.2 >/dev/null
assert_eq hello "$(tb docker exec ctr-we_b.2 sh -c 'echo $GREETING')"

step "logs answer to a plain curl and end by themselves"
out=$(tb curl -fsS --max-time 20 "$api/container/we_b.2/log?timeout=2s")
assert_contains "$out" "tick"
assert_contains "$(tb gear logs localhost/we_b.2 --no-follow -n 3)" "tick"

step "purge stops every container and keeps them installed"
assert_contains "$(tb gear purge localhost)" "localhost: stopped 2 containers"
assert_eq inactive "$(tb systemctl is-active ctr-we_b.2.service || true)"
tb test -e /var/lib/containers/units/ctr-we_b.2.service || fail "purge removed a unit"
tb gear start localhost/we_b.2 >/dev/null

step "delete removes exactly that container"
tb gear delete localhost/web-1 >/dev/null
tb test ! -e /var/lib/containers/units/ctr-web-1.service || fail "unit file left"
tb test ! -e /etc/systemd/system/ctr-web-1.service || fail "unit link left"
assert_eq "" "$(tb docker ps -aq --filter name=^ctr-web-1$)"
tb test ! -e "/var/lib/containers/ports/$port" || fail "port $port still reserved"
assert_eq active "$(tb systemctl is-active ctr-we_b.2.service)"
assert_eq 404 "$(tb curl -s -o /dev/null -w '%{http_code}' -X DELETE $api/container/web-1)"
tb gear delete localhost/we_b.2 >/dev/null
assert_eq '{"Containers":[]}' "$(tb curl -fsS $api/containers)"
