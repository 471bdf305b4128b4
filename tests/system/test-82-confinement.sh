#!/usr/bin/env bash
# Confinement: every gear service and a container's unit keep a systemd-analyze security
# exposure of 5.0 or below (docs/security.md has the scores), the sandbox is really applied
# to the running agent, and a container cannot open raw sockets (ping) unless installed
# with --relax net-raw.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

id=confine-1
cleanup() { tb gear delete "localhost/$id" "localhost/${id}r" "localhost/${id}p" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# score UNIT: the overall exposure systemd-analyze gives UNIT, e.g. 3.7.
score() {
  tb systemd-analyze security --no-pager "$1" | sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p'
}
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1

step "install and start a container, so its unit exists"
tb gear install gear-test/httpd "localhost/$id" --start -p 8080:0 >/dev/null

step "every unit's exposure is 5.0 or below"
for unit in gear-api.service gear-idler.service gear-enter@probe.service \
  container-resume.service "ctr-$id.service"; do
  s=$(score "$unit")
  [ -n "$s" ] || fail "no score for $unit"
  echo "$unit: $s"
  at_most "$s" 5.0 || fail "$unit is exposed at $s, above 5.0"
done

step "the agent runs with its bounding set and no new privileges"
tb curl -sf http://127.0.0.1:43273/containers >/dev/null
pid=$(tb systemctl show -P MainPID gear-api.service)
[ "$pid" -gt 0 ] || fail "gear-api is not running"
status=$(tb cat "/proc/$pid/status")
assert_contains "$status" "NoNewPrivs:	1" "gear-api's status"
# CAP_SYS_MODULE (bit 16) and CAP_SYS_TIME (bit 25) are out of its bounding set.
capbnd=$(awk '/^CapBnd:/ {print $2}' <<<"$status")
(( (0x$capbnd >> 16 & 1) == 0 && (0x$capbnd >> 25 & 1) == 0 )) || fail "gear-api's CapBnd $capbnd holds SYS_MODULE or SYS_TIME"

step "a container cannot open raw sockets (ping) unless installed with --relax net-raw"
tb gear install gear-test/httpd "localhost/${id}r" --start -p 8080:0 --relax net-raw >/dev/null
out=$(tb docker exec "ctr-$id" ping -c1 -W2 127.0.0.1 2>&1) && fail "ping worked without NET_RAW: $out"
assert_contains "$out" "permission denied" "ping without NET_RAW"
tb docker exec "ctr-${id}r" ping -c1 -W2 127.0.0.1 >/dev/null || fail "ping failed with --relax net-raw"
inspect=$(tb docker inspect -f '{{.HostConfig.SecurityOpt}} {{.HostConfig.CapDrop}} {{.HostConfig.PidsLimit}}' "ctr-$id")
assert_eq "[no-new-privileges] [NET_RAW] 4096" "$inspect" "the container's Docker options"

step "host ports below 1024 only when asked for"
out=$(tb gear install gear-test/httpd "localhost/${id}p" -p 8080:80 2>&1) && fail "port 80 was published: $out"
assert_contains "$out" "host port 80 is below 1024" "the refusal"
assert_contains "$out" "--relax privileged-ports" "the refusal"
tb test ! -e "/var/lib/containers/units/ctr-${id}p.service" || fail "a refused install left a unit"
tb gear install gear-test/httpd "localhost/${id}p" --start -p 8080:80 --relax privileged-ports >/dev/null
wait_until 10 tb curl -sf http://127.0.0.1:80/
tb gear delete "localhost/${id}p" >/dev/null
