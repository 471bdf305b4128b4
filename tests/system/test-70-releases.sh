#!/usr/bin/env bash
# Releases (docs/releases.md), against real systemd, Docker and netfilter: a readiness probe
# from the host on an image FROM scratch that listens only after 5 s keeps the unit
# `activating` until it answers, and `gear install --start` returns within 0.5 s of that; a
# probe that never passes fails the start with the reason. Under a load of 50 requests per
# second (a new connection each), a restart, an update to a new image, a rollback and an
# update to an image that never gets ready (rolled back, non-zero exit) fail no request;
# the worst added latency is printed. A health check that starts failing restarts the
# container; passing checks add no journal line. An update with --verify whose health
# endpoint fails 2 s after it got ready is switched back: old content served, non-zero exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

port=18700
cleanup() {
  local rc=$?
  [ "$rc" = 0 ] || { echo "journal of the test's units, last lines:"; tb journalctl -b -u 'ctr-rel-*' -o cat -n 30 || true; } >&2
  tb sh -c 'touch /tmp/load.stop; for id in rel-slow rel-never rel-web rel-health rel-verify; do gear delete localhost/$id >/dev/null 2>&1; done; true'
}
trap cleanup EXIT

now_ms() { tb date +%s%3N; }
# Measurements are printed, and appended to $GEAR_TEST_REPORT when set (a passing test's
# output is not shown).
report() { echo "$*"; [ -z "${GEAR_TEST_REPORT:-}" ] || echo "$*" >> "$GEAR_TEST_REPORT"; }
active() { tb systemctl is-active "ctr-$1.service" || true; }

tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1

# Images FROM scratch (gear-test/httpd is busybox on scratch), built here from it.
build() {  # build TAG CMD-JSON [RUN]
  printf 'FROM gear-test/httpd:latest\n%s\nCMD %s\n' "${3:-}" "$2" |
    tb docker build -q -t "$1" - >/dev/null
}
build gear-test/slow:latest '["/bin/sh", "-c", "sleep 5; exec httpd -f -p 8080 -h /www"]'
build gear-test/never:latest '["/bin/sh", "-c", "exec sleep 1000"]'
build gear-test/healthy:latest '["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]' 'RUN ["/bin/sh", "-c", "echo ok > /www/health"]'
# Ready at once, then its health endpoint goes away after 2 s.
build gear-test/sick:latest '["/bin/sh", "-c", "(sleep 2; rm /www/health) & exec httpd -f -p 8080 -h /www"]' 'RUN ["/bin/sh", "-c", "echo ok > /www/health; echo sick > /www/index.html"]'
build gear-test/web2:latest '["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]' 'RUN ["/bin/sh", "-c", "echo version 2 > /www/index.html"]'

step "a readiness probe: the unit is active only once the container answers, and the start returns then"
# Watches the unit and the published port every 50 ms: "MS STATE HTTP-CODE" lines.
tb sh -c "rm -f /tmp/watch.log; while :; do s=\$(systemctl is-active ctr-rel-slow.service); c=\$(curl -s -o /dev/null -m 0.3 -w %{http_code} http://127.0.0.1:$port/); echo \"\$(date +%s%3N) \$s \$c\" >> /tmp/watch.log; sleep 0.05; done >/dev/null 2>&1 & echo \$! > /tmp/watch.pid"
t0=$(now_ms)
tb gear install gear-test/slow:latest localhost/rel-slow --start -p 8080:$port --ready-http /:8080 --ready-timeout 20s >/dev/null
t1=$(now_ms)
sleep 0.3
tb sh -c 'kill $(cat /tmp/watch.pid)'
log=$(tb cat /tmp/watch.log)
ready=$(awk '$3 == 200 {print $1; exit}' <<<"$log")
[ -n "$ready" ] || fail "the port never answered: $log"
early=$(awk -v r="$ready" '$1 < r && $2 == "active"' <<<"$log")
[ -z "$early" ] || fail "the unit was active before the container answered: $early"
report "readiness: install --start took $((t1 - t0)) ms; answered after $((ready - t0)) ms; returned $((t1 - ready)) ms after that"
[ $((ready - t0)) -ge 5000 ] || fail "answered after only $((ready - t0)) ms: the image waits 5 s"
[ $((t1 - ready)) -le 500 ] || fail "the start returned $((t1 - ready)) ms after the container answered (want <= 500)"
assert_eq active "$(active rel-slow)"
assert_contains "$(tb gear status --json localhost/rel-slow)" '"Ready":{"Http":"/","Port":8080,"Timeout":"20s"}'
assert_contains "$(tb journalctl -b -u ctr-rel-slow.service -o cat)" "ready after"

step "a probe that never passes fails the start, with the reason"
t0=$(now_ms)
out=$(tb gear install gear-test/never:latest localhost/rel-never --start -p 8080:$((port + 1)) --ready-tcp 8080 --ready-timeout 2s 2>&1) && fail "the start succeeded: $out"
report "never ready: failed after $(( $(now_ms) - t0 )) ms: $out"
assert_contains "$out" "ended with 'failed'"
assert_contains "$(tb journalctl -b -u ctr-rel-never.service -o cat)" "not ready within 2s"
[ "$(active rel-never)" != active ] || fail "a container that never got ready is active"
tb gear delete localhost/rel-never >/dev/null
tb gear delete localhost/rel-slow >/dev/null

step "under 50 requests/s: restart, update, rollback and a failed update refuse nothing"
web=$((port + 10))
tb gear install gear-test/httpd:latest localhost/rel-web --start -p 8080:$web --ready-http /:8080 --drain-timeout 5s >/dev/null
page() { tb curl -fsS -m 10 "http://127.0.0.1:$web/"; }
v1=$(page)
# The load: a new connection every 20 ms, each line "HTTP-CODE SECONDS", until /tmp/load.stop.
tb sh -c "rm -f /tmp/load.log /tmp/load.stop; (while [ ! -e /tmp/load.stop ]; do curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}\n' http://127.0.0.1:$web/ >> /tmp/load.log 2>/dev/null & sleep 0.02; done; wait) >/dev/null 2>&1 & true"
sleep 2
t=$(now_ms); tb gear restart localhost/rel-web >/dev/null; report "restart: $(( $(now_ms) - t )) ms"
sleep 1
t=$(now_ms); tb gear install gear-test/web2:latest localhost/rel-web --start -p 8080:$web --ready-http /:8080 --drain-timeout 5s >/dev/null
report "update to web2: $(( $(now_ms) - t )) ms"
assert_eq "version 2" "$(page)" "the page after the update"
sleep 1
t=$(now_ms); tb gear rollback localhost/rel-web >/dev/null; report "rollback: $(( $(now_ms) - t )) ms"
assert_eq "$v1" "$(page)" "the page after the rollback"
sleep 1
t=$(now_ms)
out=$(tb gear install gear-test/never:latest localhost/rel-web --start -p 8080:$web --ready-http /:8080 --ready-timeout 3s --drain-timeout 5s 2>&1) && fail "an update that never got ready succeeded: $out"
report "update to an image that never gets ready: $(( $(now_ms) - t )) ms: $out"
assert_contains "$out" "was rolled back"
assert_contains "$out" "not ready within 3s"
assert_eq "$v1" "$(page)" "the page after the failed update"
assert_eq active "$(active rel-web)"
sleep 2
tb touch /tmp/load.stop
sleep 1.5
load=$(tb cat /tmp/load.log)
total=$(wc -l <<<"$load")
bad=$(awk '$1 != 200' <<<"$load" | wc -l)
stats=$(awk '{print $2}' <<<"$load" | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, p99 %.1f ms, worst %.1f ms", a[int(NR*0.5)+1]*1000, a[int(NR*0.99)+1]*1000, a[NR]*1000}')
report "load: $total requests, $bad failed; $stats"
[ "$total" -ge 300 ] || fail "only $total requests were made"
[ "$bad" = 0 ] || fail "$bad of $total requests failed: $(awk '$1 != 200' <<<"$load" | sort | uniq -c | head)"
tb gear history localhost/rel-web
tb gear delete localhost/rel-web >/dev/null

step "health checks: passing ones write nothing; 3 failures in a row restart the container"
tb gear install gear-test/healthy:latest localhost/rel-health --start -p 8080:$((port + 20)) --health-http /health --health-interval 1s --health-failures 3 >/dev/null
journal_lines() { tb journalctl -b -u gear-idler.service -u ctr-rel-health.service -o cat | wc -l; }
sleep 2
before=$(journal_lines)
sleep 5
after=$(journal_lines)
report "health: $((after - before)) journal lines over 5 s of passing checks (one a second)"
assert_eq "$before" "$after" "journal lines while the checks pass"
tb test ! -e /var/lib/containers/health/rel-health || fail "a passing check wrote its state"
old=$(tb docker inspect -f '{{.Id}}' ctr-rel-health)
tb docker exec ctr-rel-health rm /www/health
failed_at=$(now_ms)
restarted() { [ "$(tb docker inspect -f '{{.Id}}' ctr-rel-health 2>/dev/null)" != "$old" ] && [ "$(active rel-health)" = active ]; }
wait_until 30 restarted
report "health: restarted $(( $(now_ms) - failed_at )) ms after the check began to fail (3 checks, 1 s apart)"
assert_contains "$(tb journalctl -b -u gear-idler.service -o cat)" "rel-health: 3 health checks failed in a row"
passing() { tb gear status localhost/rel-health | grep -q 'Health: passing'; }
wait_until 10 passing
st=$(tb gear status localhost/rel-health)
echo "$st"
assert_contains "$st" "Restarts: 1 after failed checks"
assert_contains "$st" "answered 404"
tb gear delete localhost/rel-health >/dev/null

step "--verify: an update whose health checks fail after it got ready is switched back, non-zero exit"
v=$((port + 30))
health=(--ready-http /:8080 --health-http /health --health-interval 1s --health-failures 2)
tb gear install gear-test/healthy:latest localhost/rel-verify --start -p 8080:$v "${health[@]}" >/dev/null
before=$(tb curl -s "http://127.0.0.1:$v/")
t=$(now_ms)
out=$(tb gear install gear-test/sick:latest localhost/rel-verify --start -p 8080:$v "${health[@]}" --verify 20s 2>&1) && fail "a failing verified update succeeded: $out"
report "verify: rolled back $(( $(now_ms) - t )) ms after the update began: $out"
assert_contains "$out" "was rolled back: it failed its verification"
[ "$(tb curl -s "http://127.0.0.1:$v/")" = "$before" ] || fail "not the old content after the rollback"
[ "$(tb curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$v/health")" = 200 ] || fail "the old version's /health does not answer"
assert_contains "$(tb gear history localhost/rel-verify)" "gear-test/sick:latest"
tb gear delete localhost/rel-verify >/dev/null
