#!/usr/bin/env bash
# The agent under real systemd: socket activation (inactive until the first connection),
# READY notification, healing after kill -9, idle exit, JSON errors, and `gear list-units`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273

step "enable the socket as the README says"
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket
assert_eq active "$(tb systemctl is-active gear-api.socket)"
assert_eq inactive "$(tb systemctl is-active gear-api.service || true)"

step "the first connection starts the agent, which answers JSON"
assert_eq '{"Containers":[]}' "$(tb curl -fsS $api/containers)"
assert_eq active "$(tb systemctl is-active gear-api.service)"
# Type=notify: the status text comes from the agent's own READY message.
assert_eq serving "$(tb systemctl show -P StatusText gear-api.service)"

step "gear list-units localhost prints the table"
out=$(tb gear list-units localhost)
assert_eq "HOST  ID  ACTIVE  SUB  LOAD  JOB" "$(head -1 <<<"$out")"

step "an installed container unit shows up, with its state; a stray ctr- unit does not"
# Installed as gear installs: the unit file under /var/lib/containers/units, linked into
# systemd's directory.
tb sh -c 'mkdir -p /var/lib/containers/units && cat > /var/lib/containers/units/ctr-fake_1.2.service <<UNIT
[Service]
ExecStart=/bin/sleep infinity
UNIT
ln -sf /var/lib/containers/units/ctr-fake_1.2.service /etc/systemd/system/ctr-fake_1.2.service
printf "[Service]\nExecStart=/bin/sleep infinity\n" > /etc/systemd/system/ctr-stray1.service'
tb systemctl daemon-reload
tb systemctl start ctr-fake_1.2.service ctr-stray1.service
out=$(tb gear list-units localhost)
assert_contains "$out" "localhost  fake_1.2  active  running  loaded"
json=$(tb gear list-units --json localhost)
assert_contains "$json" '"Id": "fake_1.2"'
assert_eq '{"Containers":[{"Id":"fake_1.2","ActiveState":"active","SubState":"running","LoadState":"loaded"}]}' \
  "$(tb curl -fsS $api/containers)"
[[ $out != *stray1* ]] || fail "a unit gear did not install is listed: $out"
tb systemctl stop ctr-fake_1.2.service ctr-stray1.service
tb rm /etc/systemd/system/ctr-fake_1.2.service /etc/systemd/system/ctr-stray1.service /var/lib/containers/units/ctr-fake_1.2.service
tb systemctl daemon-reload

step "errors are JSON with fitting codes"
assert_eq 404 "$(tb curl -s -o /dev/null -w '%{http_code}' $api/nope)"
assert_contains "$(tb curl -s $api/nope)" '"Message":'
assert_eq 405 "$(tb curl -s -o /dev/null -w '%{http_code}' -X PATCH $api/containers)"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' "$api/containers?all=maybe")"
tb sh -c 'head -c 20000000 /dev/zero > /tmp/big'
assert_eq 413 "$(tb curl -H "Content-Type: application/json" -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @/tmp/big $api/containers)"
assert_eq active "$(tb systemctl is-active gear-api.service)"

step "kill -9 of the agent is healed by the next request"
pid=$(tb systemctl show -P MainPID gear-api.service)
tb kill -9 "$pid"
wait_until 10 sh -c "! $TESTBED exec $MACHINE systemctl is-active -q gear-api.service"
assert_eq '{"Containers":[]}' "$(tb curl -fsS $api/containers)"
assert_eq active "$(tb systemctl is-active gear-api.service)"
[ "$(tb systemctl show -P MainPID gear-api.service)" != "$pid" ] || fail "the agent was not restarted"

step "an idle agent exits cleanly and comes back on demand"
tb mkdir -p /etc/systemd/system/gear-api.service.d
tb sh -c 'printf "[Service]\nExecStart=\nExecStart=/usr/libexec/gear/gear-api --exit-idle-time=1s\n" > /etc/systemd/system/gear-api.service.d/idle.conf'
tb systemctl daemon-reload
tb systemctl restart gear-api.service
wait_until 10 sh -c "[ \"\$($TESTBED exec $MACHINE systemctl is-active gear-api.service)\" = inactive ]"
assert_eq success "$(tb systemctl show -P Result gear-api.service)"
assert_eq '{"Containers":[]}' "$(tb curl -fsS $api/containers)"
tb rm -r /etc/systemd/system/gear-api.service.d
tb systemctl daemon-reload
