#!/usr/bin/env bash
# Releases (docs/releases.md), against real systemd and Docker: a readiness probe from the
# host on an image FROM scratch that listens only after 5 s keeps the unit `activating`
# until it answers, and `gear install --start` returns within 0.5 s of that; a probe that
# never passes fails the start with the reason.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

port=18700
cleanup() {
  local rc=$?
  [ "$rc" = 0 ] || { echo "journal of the test's units, last lines:"; tb journalctl -b -u 'ctr-rel-*' -o cat -n 30 || true; } >&2
  tb sh -c 'for id in rel-slow rel-never rel-web; do gear delete localhost/$id >/dev/null 2>&1; done; true'
}
trap cleanup EXIT

now_ms() { tb date +%s%3N; }
active() { tb systemctl is-active "ctr-$1.service" || true; }

tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1

# Images FROM scratch (gear-test/httpd is busybox on scratch), built here from it.
build() {  # build TAG CMD-JSON [RUN]
  printf 'FROM gear-test/httpd:latest\n%s\nCMD %s\n' "${3:-}" "$2" |
    tb docker build -q -t "$1" - >/dev/null
}
build gear-test/slow:latest '["/bin/sh", "-c", "sleep 5; exec httpd -f -p 8080 -h /www"]'
build gear-test/never:latest '["/bin/sh", "-c", "exec sleep 1000"]'

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
echo "install --start took $((t1 - t0)) ms; answered after $((ready - t0)) ms; returned $((t1 - ready)) ms after that"
[ $((ready - t0)) -ge 5000 ] || fail "answered after only $((ready - t0)) ms: the image waits 5 s"
[ $((t1 - ready)) -le 500 ] || fail "the start returned $((t1 - ready)) ms after the container answered (want <= 500)"
assert_eq active "$(active rel-slow)"
assert_contains "$(tb gear status --json localhost/rel-slow)" '"Ready":{"Http":"/","Port":8080,"Timeout":"20s"}'
assert_contains "$(tb journalctl -b -u ctr-rel-slow.service -o cat)" "ready after"

step "a probe that never passes fails the start, with the reason"
t0=$(now_ms)
out=$(tb gear install gear-test/never:latest localhost/rel-never --start -p 8080:$((port + 1)) --ready-tcp 8080 --ready-timeout 2s 2>&1) && fail "the start succeeded: $out"
echo "failed after $(( $(now_ms) - t0 )) ms: $out"
assert_contains "$out" "ended with 'failed'"
assert_contains "$(tb journalctl -b -u ctr-rel-never.service -o cat)" "not ready within 2s"
[ "$(active rel-never)" != active ] || fail "a container that never got ready is active"
tb gear delete localhost/rel-never >/dev/null
tb gear delete localhost/rel-slow >/dev/null
