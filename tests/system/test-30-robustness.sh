#!/usr/bin/env bash
# What must hold when things go wrong or get busy: limits reach the container, a container
# that dies is seen by systemd, hostile values stay values, concurrent installs get distinct
# ports, kill -9 of the agent mid-install leaves every container whole or absent, and a
# reboot brings back exactly the started containers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1

step "memory and CPU limits apply to the container's processes"
tb gear install gear-test/loop:latest localhost/limited --start --memory 64M --cpus 0.5 >/dev/null
assert_eq 67108864 "$(tb docker inspect -f '{{.HostConfig.Memory}}' ctr-limited)"
assert_eq 500000000 "$(tb docker inspect -f '{{.HostConfig.NanoCpus}}' ctr-limited)"
# The kernel's own limit on the container's cgroup (wherever the cgroup mount puts it).
cid=$(tb docker inspect -f '{{.Id}}' ctr-limited)
cg=$(tb find /sys/fs/cgroup/memory -type d -name "$cid" | head -1)
[ -n "$cg" ] || fail "no memory cgroup for container $cid"
assert_eq 67108864 "$(tb cat "$cg/memory.limit_in_bytes")"
tb gear delete localhost/limited >/dev/null

step "the container's processes run in the slice given at install"
tb gear install gear-test/loop:latest localhost/sliced --start --slice container-small >/dev/null
pid=$(tb docker inspect -f '{{.State.Pid}}' ctr-sliced)
assert_contains "$(tb grep name=systemd /proc/$pid/cgroup)" "/container.slice/container-small.slice/"
assert_eq container-small.slice "$(tb systemctl show -P Slice ctr-sliced.service)"
tb gear delete localhost/sliced >/dev/null

step "a container that dies is reflected in its unit (restart policy no)"
tb gear install gear-test/loop:latest localhost/dies-1 --start --restart no >/dev/null
tb docker kill ctr-dies-1 >/dev/null
wait_until 10 sh -c "[ \"\$($TESTBED exec $MACHINE systemctl is-active ctr-dies-1.service)\" = failed ]"
assert_eq "" "$(tb docker ps -aq --filter name=^ctr-dies-1$)"
tb gear start localhost/dies-1 >/dev/null
assert_eq active "$(tb systemctl is-active ctr-dies-1.service)"
tb gear delete localhost/dies-1 >/dev/null

step "a container left by a host crash does not block the next start"
tb gear install gear-test/httpd:latest localhost/left-1 >/dev/null
tb docker create --name ctr-left-1 gear-test/httpd:latest >/dev/null
tb sh -c 'mkdir -p /var/lib/containers/started && touch /var/lib/containers/started/left-1'
tb gear start localhost/left-1 >/dev/null
assert_eq active "$(tb systemctl is-active ctr-left-1.service)"
tb gear stop localhost/left-1 >/dev/null
tb test ! -e /var/lib/containers/started/left-1 || fail "a clean stop left the marker"
tb gear delete localhost/left-1 >/dev/null

step "hostile values stay values"
tb sh -c 'printf "%s\n" "PCT=%n%%" "DOLLAR=\$HOME" "QUOTE=\"q\" '\''s'\''" > /tmp/hostile.env'
tb gear install gear-test/loop:latest localhost/hostile --start --env-file /tmp/hostile.env >/dev/null
assert_eq '%n%%|$HOME|"q" '\''s'\''' "$(tb docker exec ctr-hostile sh -c 'printf "%s|%s|%s" "$PCT" "$DOLLAR" "$QUOTE"')"
assert_eq 400 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PUT -d '{"Image":"a","Environment":{"Variables":[{"Name":"X","Value":"1\nExecStartPre=/bin/false"}]}}' $api/container/hostile2)"
assert_eq 400 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PUT -d '{"Image":"a%n"}' $api/container/hostile2)"
assert_eq 400 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PUT -d '{"Image":"a"}' "$api/container/x%0Ay1")"
tb test ! -e /var/lib/containers/units/ctr-hostile2.service || fail "hostile install left a unit"
tb systemd-analyze verify /var/lib/containers/units/ctr-hostile.service
tb gear delete localhost/hostile >/dev/null

step "20 concurrent installs get 20 distinct ports"
tb sh -c 'for i in $(seq 1 20); do curl -H "Content-Type: application/json" -fsS -o /dev/null -X PUT -d "{\"Image\":\"gear-test/httpd:latest\",\"Ports\":[{\"Internal\":8080}]}" http://127.0.0.1:43273/container/par-$i & done; wait'
assert_eq 20 "$(tb sh -c 'ls /var/lib/containers/units | grep -c ^ctr-par-')"
assert_eq 20 "$(tb sh -c 'readlink /var/lib/containers/ports/* | grep -c ^par-')"
assert_eq 20 "$(tb sh -c 'ls /var/lib/containers/ports | sort -u | wc -l')"

step "kill -9 of the agent during installs leaves each container whole or absent"
tb sh -c 'for i in $(seq 1 40); do curl -H "Content-Type: application/json" -s -o /dev/null -X PUT -d "{\"Image\":\"gear-test/httpd:latest\",\"Ports\":[{\"Internal\":8080}]}" http://127.0.0.1:43273/container/crash-$i; done' &
loop=$!
sleep 1
tb sh -c 'kill -9 $(systemctl show -P MainPID gear-api.service)'
wait $loop || true
for i in $(seq 1 40); do
  if tb test -e "/var/lib/containers/units/ctr-crash-$i.service"; then
    tb test -s "/var/lib/containers/specs/crash-$i.json" || fail "crash-$i has a unit but no spec"
    tb sh -c "readlink /var/lib/containers/ports/* | grep -q '^crash-$i:'" || fail "crash-$i has a unit but no port"
  fi
done
assert_eq 200 "$(tb curl -s -o /dev/null -w '%{http_code}' $api/containers?all=1)"
# The next install of any of them works, whatever state the crash left.
for i in $(seq 1 40); do tb curl -H "Content-Type: application/json" -fsS -o /dev/null -X PUT -d '{"Image":"gear-test/httpd:latest","Ports":[{"Internal":8080}]}' "$api/container/crash-$i"; done
assert_eq 40 "$(tb sh -c 'ls /var/lib/containers/units | grep -c ^ctr-crash-')"

step "a reboot brings back exactly the started containers"
tb gear install gear-test/httpd:latest localhost/boot-up --start -p 8080:18090 >/dev/null
tb gear install gear-test/httpd:latest localhost/boot-down -p 8080:18091 >/dev/null
"$TESTBED" reboot "$MACHINE"
wait_until 60 "$TESTBED" exec "$MACHINE" curl -fsS http://127.0.0.1:18090/
assert_eq active "$(tb systemctl is-active ctr-boot-up.service)"
assert_eq inactive "$(tb systemctl is-active ctr-boot-down.service || true)"
assert_contains "$(tb gear list-units --all localhost)" "boot-down  inactive  dead"

step "clean up"
for id in $(tb ls /var/lib/containers/specs | sed 's/\.json$//'); do tb gear delete "localhost/$id" >/dev/null; done
assert_eq '{"Containers":[]}' "$(tb curl -fsS "$api/containers?all=1")"
