#!/usr/bin/env bash
# Idling, against real systemd, Docker and netfilter: a container with --idle-after 5s stops
# after 5 s without traffic and is marked idle; the first connection wakes it, from the
# machine itself and from a second machine on the bridge, over IPv4 and IPv6 ([::1],
# localhost, the machine's IPv6 address); IPv6 traffic keeps it up, and so does an open
# connection that sends nothing; held SYNs go only once every published port answers; 50
# concurrent first connections are all answered; freeze thaws; an idler restart and a reboot
# keep the idle state; a clean stop of the idler lets a held SYN go at once; a container that
# cannot start refuses at once; stop, start and delete never fight idling.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PEER=${PEER:-gear-t2}
page="hello from gear-test/httpd"
port=18100
ip1=$("$TESTBED" ip "$MACHINE")
# IPv6 addresses of the test's own (ULA) on the machines' bridge interface; Docker publishes
# on [::] as well as on 0.0.0.0.
ula=fd00:6765:6172
ip6_1=$ula::1
ip6_2=$ula::2
cleanup() {
  local rc=$?
  # A failure shows what the idler did last.
  [ "$rc" = 0 ] || { echo "gear-idler's journal, last lines:"; tb journalctl -b -u gear-idler.service -o cat -n 25 || true; } >&2
  "$TESTBED" down "$PEER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

active() { tb systemctl is-active "ctr-$1.service" || true; }
hold_rules() { tb sh -c "iptables-save -t security | grep -c 'gear-idle:$1\"' || true"; }
hold_rules6() { tb sh -c "ip6tables-save -t security | grep -c 'gear-idle:$1\"' || true"; }
idle_mark() { tb cat "/var/lib/containers/idle/$1" 2>/dev/null || echo none; }
idler_log() { tb journalctl -b -u gear-idler.service -o cat; }
# For wait_until (it runs shell functions too).
is_state() { [ "$(active "$1")" = "$2" ]; }
has_hold_rules() { [ "$(hold_rules "$1")" = "$2" ]; }
idler_said() { [[ $(idler_log) == *"$1"* ]]; }

tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1
assert_eq active "$(tb systemctl is-active gear-idler.service)"

step "traffic keeps a container with --idle-after 5s up"
tb gear install gear-test/httpd:latest localhost/idle-1 --start -p 8080:$port --idle-after 5s >/dev/null
for _ in 1 2 3 4 5 6 7; do tb curl -fsS -o /dev/null http://127.0.0.1:$port/; sleep 1; done
assert_eq active "$(active idle-1)" "after 7 s of traffic"

step "5 s without traffic: stopped, marked idle, no process left"
quiet_from=$SECONDS
wait_until 20 is_state idle-1 inactive
took=$((SECONDS - quiet_from))
echo "idled after ${took} s without traffic"
[ "$took" -ge 4 ] || fail "idled after only ${took} s"
assert_eq stop "$(idle_mark idle-1)" "idle mark"
st=$(tb gear status localhost/idle-1)
assert_contains "$st" "State: inactive (dead)"
assert_contains "$st" "Idle: yes (stop); the first connection wakes it"
tb test ! -e /etc/systemd/system/container-active.target.wants/ctr-idle-1.service || fail "an idle container must not start at boot"
assert_eq "" "$(tb docker ps -aq --filter name=^ctr-idle-1$)" "docker container"
assert_eq "" "$(tb pgrep -f "docker-proxy.*-host-port $port" || true)" "docker-proxy"
assert_eq 1 "$(hold_rules idle-1)" "hold rules"
assert_eq 1 "$(hold_rules6 idle-1)" "IPv6 hold rules"
assert_contains "$(idler_log)" "idled idle-1 (stop) after"

step "a curl on the machine itself wakes it and gets the page"
assert_eq "$page" "$(tb curl -fsS -m 30 http://127.0.0.1:$port/)"
assert_eq active "$(active idle-1)"
assert_eq none "$(idle_mark idle-1)"
tb test -e /etc/systemd/system/container-active.target.wants/ctr-idle-1.service || fail "a woken container starts at boot again"
wait_until 5 has_hold_rules idle-1 0
assert_contains "$(idler_log)" "woke idle-1 in"

step "IPv6: [::1], localhost and the machine's IPv6 address wake it like 127.0.0.1"
tb ip -6 addr add "$ip6_1/64" dev host0 nodad
for url in "http://[::1]:$port/" "http://localhost:$port/" "http://[$ip6_1]:$port/"; do
  tb gear idle localhost/idle-1 >/dev/null
  assert_eq inactive "$(active idle-1)"
  out=$(tb curl -sS -m 30 -w '%{time_total} s via %{remote_ip}' "$url")  # the page ends with a newline
  echo "$url: ${out##*$'\n'}"
  assert_eq "$page" "${out%$'\n'*}" "page through $url"
  assert_eq active "$(active idle-1)"
  wait_until 5 has_hold_rules idle-1 0
  assert_eq 0 "$(hold_rules6 idle-1)" "IPv6 hold rules after the wake through $url"
done

step "traffic over IPv6 only keeps it up"
for _ in 1 2 3 4 5 6 7; do tb curl -fsS -o /dev/null "http://[::1]:$port/"; sleep 1; done
assert_eq active "$(active idle-1)" "after 7 s of IPv6 traffic"

step "an open connection that sends nothing keeps it up; once closed, it idles"
# A client that connects and says nothing (busybox httpd waits 60 s for a request).
# shellcheck disable=SC2016 # expanded by the machine's sh
tb sh -c 'sleep 600 </dev/null 2>/dev/null | busybox nc 127.0.0.1 "$0" >/dev/null 2>&1 & echo $! > /tmp/nc.pid' $port
sleep 12
assert_eq active "$(active idle-1)" "12 s after a quiet connection was opened"
assert_contains "$(idler_log)" "idle-1 is quiet, but 1 connection(s) open: not idled"
tb sh -c 'kill "$(cat /tmp/nc.pid)"'
closed_at=$SECONDS
wait_until 20 is_state idle-1 inactive
echo "idled $((SECONDS - closed_at)) s after the connection closed"

step "a second machine on the bridge wakes it too, over IPv4 and IPv6"
tb gear idle localhost/idle-1 >/dev/null
"$TESTBED" up "$PEER" --bridge --stage "$STAGE"
"$TESTBED" exec "$PEER" ip -6 addr add "$ip6_2/64" dev host0 nodad
assert_eq inactive "$(active idle-1)"
assert_eq "$page" "$("$TESTBED" exec "$PEER" curl -fsS -m 30 "http://$ip1:$port/")" "page from $PEER"
assert_eq active "$(active idle-1)"
tb gear idle localhost/idle-1 >/dev/null
assert_eq "$page" "$("$TESTBED" exec "$PEER" curl -fsS -m 30 "http://[$ip6_1]:$port/")" "page from $PEER over IPv6"
assert_eq active "$(active idle-1)"

step "50 concurrent first connections: 50 answers (on the machine, then from $PEER)"
# shellcheck disable=SC2016 # expanded by the inner bash, with the URL as $0
fifty='for i in $(seq 50); do curl -sS -m 30 -o /dev/null -w "%{http_code}\n" "$0" 2>&1 & done; wait'
tb gear idle localhost/idle-1 >/dev/null
assert_eq "50 200" "$(tb bash -c "$fifty" "http://127.0.0.1:$port/" | sort | uniq -c | awk '{print $1, $2}')"
tb gear idle localhost/idle-1 >/dev/null
assert_eq "50 200" "$("$TESTBED" exec "$PEER" bash -c "$fifty" "http://$ip1:$port/" | sort | uniq -c | awk '{print $1, $2}')"
# Connections that come while it wakes are held and let go together; how many of the 50
# come before it runs depends on how fast the 50 clients start against how fast it wakes.
assert_contains "$(idler_log)" "held SYN(s) let go"
"$TESTBED" down "$PEER"

step "held SYNs go only once every published port answers"
# Port 8080 answers at once, 8081 a second later: a SYN to the first is held for both.
printf '%s\n' 'FROM gear-test/httpd:latest' \
  'CMD ["/bin/sh", "-c", "httpd -p 8080 -h /www; sleep 1; exec httpd -f -p 8081 -h /www"]' |
  tb docker build -q -t gear-test/two-ports:latest - >/dev/null
tb gear install gear-test/two-ports:latest localhost/two-ports --start -p 8080:18102 -p 8081:18103 >/dev/null
wait_until 10 tb curl -fsS -o /dev/null http://127.0.0.1:18103/
tb gear idle localhost/two-ports >/dev/null
t=$(tb curl -fsS -m 30 -o /dev/null -w '%{time_total}' http://127.0.0.1:18102/)
echo "first answer on 18102 after $t s"
# At once, no retry: the second port answers as soon as the first did.
assert_eq "$page" "$(tb curl -fsS -m 2 http://127.0.0.1:18103/)" "the second port, right after"
awk -v t="$t" 'BEGIN {exit !(t >= 1.0)}' || fail "18102 answered after $t s, before 18103 listened"
tb gear delete localhost/two-ports >/dev/null

step "freeze: the container is paused, and thawed by the first connection"
# Taking the peer down can outlast the 5 s policy on a busy host: wake it first, so that
# there is a running container to freeze.
tb gear unidle localhost/idle-1 >/dev/null
tb gear idle --freeze localhost/idle-1 >/dev/null
assert_eq true "$(tb docker inspect -f '{{.State.Paused}}' ctr-idle-1)"
assert_eq freeze "$(idle_mark idle-1)"
assert_eq "$page" "$(tb curl -fsS -m 30 http://127.0.0.1:$port/)"
assert_eq false "$(tb docker inspect -f '{{.State.Paused}}' ctr-idle-1)"

step "a restart of the idler keeps the idle state"
tb gear idle localhost/idle-1 >/dev/null
tb systemctl restart gear-idler.service
assert_eq stop "$(idle_mark idle-1)"
assert_eq inactive "$(active idle-1)"
assert_eq 1 "$(hold_rules idle-1)"
assert_eq "$page" "$(tb curl -fsS -m 30 http://127.0.0.1:$port/)"

step "a clean stop of the idler lets a held SYN go at once, not on the client's retransmit"
# Its port answers 8 s after it starts: a SYN that wakes it stays held that long.
printf '%s\n' 'FROM gear-test/httpd:latest' \
  'CMD ["/bin/sh", "-c", "sleep 8; exec httpd -f -p 8080 -h /www"]' |
  tb docker build -q -t gear-test/slow:latest - >/dev/null
tb gear install gear-test/slow:latest localhost/slow --start -p 8080:18104 >/dev/null
tb gear idle localhost/slow >/dev/null
assert_eq 1 "$(hold_rules slow)" "hold rules"
tb rm -f /tmp/slow.out /tmp/slow.end
# shellcheck disable=SC2016 # expanded by the machine's sh
tb sh -c '{ curl -sS -m 30 -o /dev/null -w "%{time_connect} %{time_total} %{http_code}" "http://127.0.0.1:$0/" >/tmp/slow.out 2>&1; date +%s.%N >/tmp/slow.end; } </dev/null >/dev/null 2>&1 &' 18104
# Held: the idler is waking it, and the kernel's queue holds its SYN and the SYN's first
# retransmit (1 s later). The stop comes right after that retransmit: the next one is 2 s
# away, so a SYN the stop dropped shows as a connection that ends 2 s late.
wait_until 10 idler_said "waking slow: connection to port"
# queue_total, the third field: packets the kernel holds for the queue's reader now.
queued() { tb awk '$1 == 43273 {n = $3} END {print n + 0}' /proc/net/netfilter/nfnetlink_queue; }
holds_two() { [ "$(queued)" = 2 ]; }
wait_until 5 holds_two
stop_at=$(tb date +%s.%N)
tb systemctl stop gear-idler.service
wait_until 10 tb test -s /tmp/slow.end
out=$(tb cat /tmp/slow.out)
after=$(awk -v a="$stop_at" -v b="$(tb cat /tmp/slow.end)" 'BEGIN {printf "%.3f", b - a}')
echo "curl (time_connect time_total code): $out; it ended $after s after the stop began"
# The SYN goes on to whatever the half-woken container offers (a refusal, or Docker's proxy
# that closes at once).
awk -v t="$after" 'BEGIN {exit !(t < 0.8)}' || fail "the held connection ended $after s after the stop"
[[ $(idler_log) != *"not let go"* ]] || fail "the idler says held packets were not let go"
assert_eq 0 "$(queued)" "packets left in the queue"
tb systemctl start gear-idler.service
tb gear delete localhost/slow >/dev/null

step "a container that cannot start: its connection is refused at once, the failure is in the journal"
tb gear install gear-test/httpd:latest localhost/doomed --start -p 8080:18101 --restart no >/dev/null
tb gear idle localhost/doomed >/dev/null
tb rm /var/lib/containers/env/doomed     # docker run --env-file now fails at once
t0=$SECONDS
rc=0; tb curl -sS -m 30 -o /dev/null http://127.0.0.1:18101/ 2>/dev/null || rc=$?
assert_eq 7 "$rc" "curl's exit code (7: connection refused)"
[ $((SECONDS - t0)) -lt 15 ] || fail "the refusal took $((SECONDS - t0)) s"
wait_until 5 idler_said "waking doomed failed"
assert_eq stop "$(idle_mark doomed)" "a failed wake leaves it idle"

step "gear stop means stopped (no wake); gear start clears the idle mark"
tb gear idle localhost/idle-1 >/dev/null
tb gear stop localhost/idle-1 >/dev/null
assert_eq none "$(idle_mark idle-1)"
assert_eq 0 "$(hold_rules idle-1)"
rc=0; tb curl -sS -m 10 -o /dev/null http://127.0.0.1:$port/ 2>/dev/null || rc=$?
assert_eq 7 "$rc" "a stopped container refuses"
assert_eq inactive "$(active idle-1)"
tb gear idle localhost/idle-1 >/dev/null
tb gear start localhost/idle-1 >/dev/null
assert_eq none "$(idle_mark idle-1)"
assert_eq active "$(active idle-1)"

step "delete removes all its rules"
tb gear delete localhost/doomed >/dev/null
assert_eq 0 "$(tb sh -c "iptables-save -t security | grep -c 'doomed' || true")"
assert_eq none "$(idle_mark doomed)"

step "a reboot keeps the idle container down until its first connection"
tb gear idle localhost/idle-1 >/dev/null
"$TESTBED" reboot "$MACHINE"
wait_until 30 tb systemctl is-active -q gear-idler.service
assert_eq 1 "$(hold_rules idle-1)" "hold rules after boot"
assert_eq inactive "$(active idle-1)" "idle container at boot"
assert_eq stop "$(idle_mark idle-1)"
assert_eq "$page" "$(tb curl -fsS -m 30 http://127.0.0.1:$port/)"
assert_eq active "$(active idle-1)"
tb gear delete localhost/idle-1 >/dev/null
assert_eq 0 "$(tb sh -c "iptables-save -t security | grep -c 'gear-' || true")" "rules left after delete"
