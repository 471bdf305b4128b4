#!/usr/bin/env bash
# One-off jobs against real systemd and Docker: gear run streams output as it comes and
# exits with the job's code; --env, -v and limits reach the container; --timeout stops it
# (124); Ctrl-C (the client killed) stops it; after each, no unit, no Docker container and
# no file is left. Use case: a backup of a container's volume, and a migration writing into it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1

# nothing_left: no job unit loaded, no job container, no job file.
nothing_left() {
  [ -z "$(tb systemctl list-units --all --no-legend 'gear-job-*' | tr -d ' ')" ] &&
  [ -z "$(tb docker ps -aq --filter label=gear.job)" ] &&
  [ -z "$(tb sh -c 'ls /run/gear/jobs 2>/dev/null')" ]
}

step "gear run prints the output and exits with the job's code"
out=$(tb gear run gear-test/httpd localhost -- sh -c 'echo hello; echo oops >&2; exit 3') && fail "exit 0"
code=$?
assert_eq 3 "$code" "exit code"
# stdout and stderr both arrive (Docker copies them separately: their order may differ).
assert_eq $'hello\noops' "$(sort <<<"$out")"
wait_until 10 nothing_left

step "success, environment, limits"
out=$(tb gear run gear-test/httpd localhost -e GREETING=hi --memory 64M --cpus 0.5 -- \
  sh -c 'echo "$GREETING"; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes')
assert_eq $'hi\n67108864' "$out"
wait_until 10 nothing_left

step "output streams as it comes, not at the end"
tb sh -c 'gear run gear-test/httpd localhost -- sh -c "echo first; sleep 3; echo second" > /tmp/stream.out' &
wait_until 3 sh -c "$TESTBED exec $MACHINE cat /tmp/stream.out | grep -q first"
[ -z "$(tb sh -c 'grep second /tmp/stream.out || true')" ] || fail "second came before its time"
wait
assert_eq $'first\nsecond' "$(tb cat /tmp/stream.out)"
wait_until 10 nothing_left

step "--timeout stops it with 124"
t0=$SECONDS
tb gear run --timeout 2s gear-test/httpd localhost -- sh -c 'echo started; sleep 60' >/dev/null 2>&1 && fail "exit 0"
code=$?
assert_eq 124 "$code" "exit code after timeout"
[ $((SECONDS - t0)) -lt 20 ] || fail "the timeout took $((SECONDS - t0)) s"
wait_until 15 nothing_left

step "Ctrl-C on the client stops the job"
tb sh -c 'gear run gear-test/httpd localhost -- sh -c "echo running; sleep 300" > /tmp/int.out 2>&1 & echo $! > /tmp/int.pid; wait' &
wait_until 10 sh -c "$TESTBED exec $MACHINE grep -q running /tmp/int.out"
[ -n "$(tb docker ps -q --filter label=gear.job)" ] || fail "no job container while it runs"
tb sh -c 'kill -INT "$(cat /tmp/int.pid)"'
wait
wait_until 15 nothing_left

step "bad jobs are refused before anything runs"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"Image":"gear-test/httpd","Volumes":[{"Target":"/data"}]}' $api/jobs)"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"Image":"gear-test/httpd","Volumes":[{"Source":"/etc","Target":"/x"}]}' $api/jobs)"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"Image":"gear-test/httpd","VolumesFrom":"nosuch-1"}' $api/jobs)"
assert_eq 422 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"Image":"no-such/image"}' $api/jobs)"
out=$(tb curl -fsS -X POST -H 'Content-Type: application/json' -d '{"Image":"gear-test/httpd","Command":"/bin/echo","Arguments":["geard","style"],"Name":"x"}' $api/jobs)
assert_contains "$out" '{"Output":"geard style\n"}'
assert_contains "$(tail -1 <<<"$out")" '{"Ended":{"ExitCode":0,"Result":"success"}}'
wait_until 10 nothing_left

step "use case: a migration writes into a container's volume, a backup reads it"
tb mkdir -p /srv/backups
tb gear install gear-test/httpd localhost/db-1 --start -v /data >/dev/null
tb gear run gear-test/httpd localhost --volumes-from db-1 -- \
  sh -c 'echo "schema v2" > /data/schema && echo migrated' | grep -q migrated || fail "migration"
assert_eq "schema v2" "$(tb docker exec ctr-db-1 cat /data/schema)"
tb gear run gear-test/httpd localhost --volumes-from db-1 -v /srv/backups:/backups -- \
  tar -C /data -cf /backups/db-1.tar . >/dev/null
assert_contains "$(tb tar -tf /srv/backups/db-1.tar)" "./schema"
wait_until 10 nothing_left

step "clean up"
tb gear delete --volumes localhost/db-1 >/dev/null
