#!/usr/bin/env bash
# A new user's host: gear installed, and nothing but `systemctl start gear-api.socket` done
# (no preset, nothing enabled). What such a user expects: a started container comes back
# after a reboot, idling works without starting gear-idler by hand, stopped containers
# stay listed, `gear status` reads like `systemctl status`, bad input gets clear errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tb systemctl daemon-reload
tb systemctl disable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1 || true
tb systemctl stop gear-api.service >/dev/null 2>&1 || true
assert_eq disabled "$(tb systemctl is-enabled container-active.target || true)"
tb systemctl start gear-api.socket

step "install --start on a host where nothing is enabled: the agent enables the boot target"
out=$(tb gear install gear-test/httpd localhost/nu-web1 --start -p 8080:0)
port=$(sed -n 's/.*8080->\([0-9]*\).*/\1/p' <<<"$out")
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS "http://127.0.0.1:$port/")"
assert_eq enabled "$(tb systemctl is-enabled container-active.target)"

step "an idle policy starts (and enables) gear-idler"
assert_eq inactive "$(tb systemctl is-active gear-idler.service || true)"
tb gear idle-policy localhost/nu-web1 --after 1h >/dev/null
assert_eq active "$(tb systemctl is-active gear-idler.service)"
assert_eq enabled "$(tb systemctl is-enabled gear-idler.service)"

step "stopped and never-started containers are listed"
tb gear install gear-test/httpd localhost/nu-web2 >/dev/null
tb gear install gear-test/httpd localhost/nu-web3 --start >/dev/null
tb gear stop localhost/nu-web3 >/dev/null
list=$(tb gear list-units localhost)
assert_contains "$list" "nu-web2  inactive"
assert_contains "$list" "nu-web3  inactive"
assert_contains "$(tb curl -fsS http://127.0.0.1:43273/containers)" '"Id":"nu-web3","ActiveState":"inactive"'

step "gear status reads like systemctl status"
st=$(tb gear status localhost/nu-web1)
assert_contains "$st" "● localhost/nu-web1 - ctr-nu-web1.service"
assert_contains "$st" "State: active (running) since"
assert_contains "$st" "Main PID: $(tb systemctl show -p MainPID --value ctr-nu-web1.service)"
assert_contains "$st" "Image: gear-test/httpd"
assert_contains "$st" "Ports: 8080->$port"
assert_contains "$st" "Idles: after 1h without traffic (stop)"
assert_contains "$st" "Started ctr-nu-web1.service"
json=$(tb gear status --json localhost/nu-web1)
assert_contains "$json" '"Unit":"ctr-nu-web1.service"'
assert_contains "$json" '"MainPid":'

step "bad input: clear errors, nothing written"
out=$(tb gear install gear-test/httpd localhost/-web1 2>&1 || true)
assert_contains "$out" "must not start with '-'"
out=$(tb gear install gear-test/httpd localhost/nu-web4 --slice container- 2>&1 || true)
assert_contains "$out" "not a valid slice name"
out=$(tb gear install no-such/image:gone localhost/nu-web4 2>&1 || true)
assert_contains "$out" "could not be pulled"
assert_eq 1 "$(grep -o '(422)' <<<"$out" | wc -l)" "statuses in one failed pull's message"
[[ $out != *"Internal Server Error"* ]] || fail "Docker's status leaks: $out"
tb test ! -e /var/lib/containers/units/ctr-nu-web4.service || fail "a failed install left a unit"

step "a reboot brings nu-web1 back, though the user enabled nothing"
"$TESTBED" reboot "$MACHINE"
wait_until 60 tb systemctl is-active ctr-nu-web1.service
wait_until 30 tb curl -fsS "http://127.0.0.1:$port/"
assert_eq inactive "$(tb systemctl is-active ctr-nu-web3.service || true)"
assert_eq active "$(tb systemctl is-active gear-idler.service)"

tb systemctl start gear-api.socket
for id in nu-web1 nu-web2 nu-web3; do tb gear delete "localhost/$id" >/dev/null; done
tb ls /run/gear/locks 2>/dev/null | grep . && fail "lock files left behind" || true
leaked=$(tb sh -c 'for p in /var/lib/containers/ports/*; do [ -L "$p" ] && echo "$p -> $(readlink "$p")"; done | grep " nu-" || true')
[ -z "$leaked" ] || fail "port reservations left behind: $leaked"
