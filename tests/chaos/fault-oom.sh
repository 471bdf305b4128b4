#!/usr/bin/env bash
# A container killed by the kernel's OOM killer (gear-test/hog grabs memory past its
# --memory 32M) while gear installs, starts and stops others: with --restart always it is
# started again, with --restart no it stays failed; no other container is touched.
source "$(dirname "$0")/lib.sh"
chaos_begin
t0=$(tb date +%s)
tb gear install gear-test/hog:latest localhost/hog-always --start --memory 32M --restart always >/dev/null
tb gear install gear-test/hog:latest localhost/hog-never --start --memory 32M --restart no >/dev/null
sleep 10
ooms=$(tb docker events --since "$t0" --until "$(tb date +%s)" --filter event=oom --format '{{.Actor.Attributes.name}}' | sort | uniq -c | tr -s ' ' | paste -sd, -)
echo "OOM kills seen by Docker: $ooms"
assert_contains "$ooms" "ctr-hog-always"
assert_contains "$ooms" "ctr-hog-never"
restarts=$(tb systemctl show -P NRestarts ctr-hog-always.service)
[ "$restarts" -ge 1 ] || fail "hog-always was not restarted after its OOM kill"
echo "hog-always restarted $restarts times"
assert_eq failed "$(tb systemctl is-active ctr-hog-never.service || true)" "hog-never (restart no)"
assert_eq 0 "$(tb systemctl show -P NRestarts ctr-hog-never.service)" "restarts of hog-never"
st=$(tb gear status localhost/hog-never)
echo "$st"
assert_contains "$st" "Last end: killed by the kernel: out of memory"
assert_contains "$(tb curl -fsS http://127.0.0.1:43273/container/hog-never/status)" '"Result":"oom-kill"'
tb gear delete localhost/hog-always localhost/hog-never >/dev/null
chaos_end "container OOM-killed (restart always / no)"
