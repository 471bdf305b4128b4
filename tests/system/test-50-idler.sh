#!/usr/bin/env bash
# Idling, against real systemd, Docker and netfilter: a container with --idle-after 5s stops
# after 5 s without traffic and is marked idle; the first connection wakes it, from the
# machine itself and from a second machine on the bridge; 50 concurrent first connections
# are all answered; freeze thaws; an idler restart and a reboot keep the idle state; a
# container that cannot start refuses at once; stop, start and delete never fight idling.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PEER=${PEER:-gear-t2}
page="hello from gear-test/httpd"
port=18100
ip1=$("$TESTBED" ip "$MACHINE")
cleanup() { "$TESTBED" down "$PEER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

active() { tb systemctl is-active "ctr-$1.service" || true; }
hold_rules() { tb sh -c "iptables-save -t raw | grep -c 'gear-idle:$1\"' || true"; }
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
assert_contains "$(tb gear status localhost/idle-1)" "inactive (dead), image gear-test/httpd:latest, idle (stop)"
tb test ! -e /etc/systemd/system/container-active.target.wants/ctr-idle-1.service || fail "an idle container must not start at boot"
assert_eq "" "$(tb docker ps -aq --filter name=^ctr-idle-1$)" "docker container"
assert_eq "" "$(tb pgrep -f "docker-proxy.*-host-port $port" || true)" "docker-proxy"
assert_eq 1 "$(hold_rules idle-1)" "hold rules"
assert_contains "$(idler_log)" "idled idle-1 (stop) after"

step "a curl on the machine itself wakes it and gets the page"
assert_eq "$page" "$(tb curl -fsS -m 30 http://127.0.0.1:$port/)"
assert_eq active "$(active idle-1)"
assert_eq none "$(idle_mark idle-1)"
tb test -e /etc/systemd/system/container-active.target.wants/ctr-idle-1.service || fail "a woken container starts at boot again"
wait_until 5 has_hold_rules idle-1 0
assert_contains "$(idler_log)" "woke idle-1 in"

step "a second machine on the bridge wakes it too"
tb gear idle localhost/idle-1 >/dev/null
"$TESTBED" up "$PEER" --bridge --stage "$STAGE"
assert_eq inactive "$(active idle-1)"
assert_eq "$page" "$("$TESTBED" exec "$PEER" curl -fsS -m 30 "http://$ip1:$port/")" "page from $PEER"
assert_eq active "$(active idle-1)"

step "50 concurrent first connections: 50 answers (on the machine, then from $PEER)"
# shellcheck disable=SC2016 # expanded by the inner bash, with the URL as $0
fifty='for i in $(seq 50); do curl -sS -m 30 -o /dev/null -w "%{http_code}\n" "$0" 2>&1 & done; wait'
tb gear idle localhost/idle-1 >/dev/null
assert_eq "50 200" "$(tb bash -c "$fifty" "http://127.0.0.1:$port/" | sort | uniq -c | awk '{print $1, $2}')"
tb gear idle localhost/idle-1 >/dev/null
assert_eq "50 200" "$("$TESTBED" exec "$PEER" bash -c "$fifty" "http://$ip1:$port/" | sort | uniq -c | awk '{print $1, $2}')"
assert_contains "$(idler_log)" "50 held SYN(s) let go"
"$TESTBED" down "$PEER"

step "freeze: the container is paused, and thawed by the first connection"
# Taking the peer down can outlast --idle-after on a busy host: wake the container first.
tb curl -fsS -m 30 -o /dev/null http://127.0.0.1:$port/
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
assert_eq 0 "$(tb sh -c "iptables-save -t raw | grep -c 'doomed' || true")"
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
assert_eq 0 "$(tb sh -c "iptables-save -t raw | grep -c 'gear-' || true")" "rules left after delete"
