#!/usr/bin/env bash
# The idler's wake budget: a client from another machine that has spent its wakes
# (--wakes-per-source) is refused at once and starts nothing, the container stays idle and
# the journal says why; the machine's own (loopback) clients still wake it.
# Then the host firewall: SYNs it drops wake no idle container, stopped (INPUT) or frozen
# (FORWARD, after Docker's DNAT), while the same client wakes both once it is let through;
# traffic it drops does not keep a container from idling.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

page="hello from gear-test/httpd"
peer() { "$TESTBED" exec "$PEER" "$@"; }
ip1=$("$TESTBED" ip "$MACHINE")
trap '"$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT
active() { tb systemctl is-active "ctr-$1.service" || true; }
idle_mark() { tb cat "/var/lib/containers/idle/$1" 2>/dev/null || echo none; }
is_idle() { [ "$(idle_mark "$1")" = stop ]; }
is_inactive() { [ "$(active "$1")" = inactive ]; }

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

step "the firewall drops the other machine's SYNs: neither a stopped nor a frozen idle container wakes"
ip2=$("$TESTBED" ip "$PEER")
tb gear install gear-test/httpd:latest localhost/fw-stop --start -p 8080:18211 >/dev/null
tb gear install gear-test/httpd:latest localhost/fw-freeze --start -p 8080:18212 >/dev/null
tb gear idle localhost/fw-stop >/dev/null
tb gear idle --freeze localhost/fw-freeze >/dev/null
assert_eq true "$(tb docker inspect -f '{{.State.Paused}}' ctr-fw-freeze)"
# A stopped container's port is the host's (INPUT); a frozen one's is DNATed on to the
# container (FORWARD, where Docker's DOCKER-USER chain is the place for the host's rules).
tb iptables -I INPUT -s "$ip2" -p tcp --dport 18211 -j DROP
tb iptables -I DOCKER-USER -s "$ip2" -p tcp -j DROP
peer curl -sS -m 3 -o /dev/null "http://$ip1:18211/" 2>/dev/null && fail "a dropped SYN was served"
peer curl -sS -m 3 -o /dev/null "http://$ip1:18212/" 2>/dev/null && fail "a dropped SYN was served"
sleep 1
assert_eq inactive "$(active fw-stop)"
assert_eq stop "$(idle_mark fw-stop)"
assert_eq true "$(tb docker inspect -f '{{.State.Paused}}' ctr-fw-freeze)"
assert_eq freeze "$(idle_mark fw-freeze)"
log=$(tb journalctl -b -u gear-idler.service -o cat)
case "$log" in *"waking fw-"*) fail "a dropped SYN woke a container: $log" ;; esac

step "let through, the same client wakes both"
tb iptables -D INPUT -s "$ip2" -p tcp --dport 18211 -j DROP
tb iptables -D DOCKER-USER -s "$ip2" -p tcp -j DROP
assert_eq "$page" "$(peer curl -fsS -m 30 "http://$ip1:18211/")"
assert_eq active "$(active fw-stop)"
assert_eq "$page" "$(peer curl -fsS -m 30 "http://$ip1:18212/")"
assert_eq false "$(tb docker inspect -f '{{.State.Paused}}' ctr-fw-freeze)"
assert_eq none "$(idle_mark fw-freeze)"

step "traffic the firewall drops does not keep a container from idling"
tb gear idle-policy localhost/fw-stop --after 5s >/dev/null
tb iptables -I DOCKER-USER -s "$ip2" -p tcp -j DROP
# A SYN every half second from the other machine, all dropped, for up to 30 s.
peer sh -c "for i in \$(seq 60); do curl -s -m 0.4 -o /dev/null http://$ip1:18211/; sleep 0.1; done" &
spray=$!
wait_until 30 is_idle fw-stop
kill "$spray" 2>/dev/null || true
wait "$spray" 2>/dev/null || true
tb iptables -D DOCKER-USER -s "$ip2" -p tcp -j DROP
# The mark comes first, then the stop.
wait_until 30 is_inactive fw-stop
for c in fw-stop fw-freeze; do tb gear delete "localhost/$c" >/dev/null; done
