#!/usr/bin/env bash
# The idler's wake budget: a client from another machine that has spent its wakes
# (--wakes-per-source) is refused at once and starts nothing, the container stays idle and
# the journal says why; the machine's own (loopback) clients still wake it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

page="hello from gear-test/httpd"
peer() { "$TESTBED" exec "$PEER" "$@"; }
ip1=$("$TESTBED" ip "$MACHINE")
trap '"$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT
active() { tb systemctl is-active "ctr-$1.service" || true; }
idle_mark() { tb cat "/var/lib/containers/idle/$1" 2>/dev/null || echo none; }

step "an idler that lets each client start one container per 10 minutes; two idle containers"
"$TESTBED" up "$PEER" --bridge --stage "$STAGE" >/dev/null
tb mkdir -p /etc/systemd/system/gear-idler.service.d
tb sh -c "printf '[Service]\nExecStart=\nExecStart=/usr/libexec/gear/gear-idler --wakes-per-source 1 --wake-window 10m\n' > /etc/systemd/system/gear-idler.service.d/budget.conf"
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1
tb systemctl restart gear-idler.service
for n in 1 2; do
  tb gear install gear-test/httpd:latest "localhost/budget-$n" --start -p "8080:1820$n" >/dev/null
  tb gear idle "localhost/budget-$n" >/dev/null
  assert_eq stop "$(idle_mark "budget-$n")" "budget-$n's idle mark"
done

step "the other machine's first connection wakes budget-1"
assert_eq "$page" "$(peer curl -fsS -m 30 "http://$ip1:18201/")"
assert_eq active "$(active budget-1)"

step "its second wake is refused at once, and budget-2 stays idle"
start=$SECONDS
peer curl -sS -m 10 -o /dev/null "http://$ip1:18202/" 2>/dev/null && fail "a wake past the budget was served"
[ $((SECONDS - start)) -le 3 ] || fail "the refusal took $((SECONDS - start)) s"
assert_eq inactive "$(active budget-2)"
assert_eq stop "$(idle_mark budget-2)"
assert_contains "$(tb journalctl -b -u gear-idler.service -o cat)" "not waking budget-2 for a connection to port 18202"

step "the machine's own client still wakes budget-2"
assert_eq "$page" "$(tb curl -fsS -m 30 http://127.0.0.1:18202/)"
assert_eq active "$(active budget-2)"

step "clean up"
tb rm /etc/systemd/system/gear-idler.service.d/budget.conf
tb systemctl daemon-reload
tb systemctl restart gear-idler.service
for n in 1 2; do tb gear delete "localhost/budget-$n" >/dev/null; done
