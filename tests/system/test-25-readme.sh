#!/usr/bin/env bash
# geard's README examples for containers and environments, run exactly as written (its
# images are our test images under geard's names: no registry is reachable).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
tb docker tag gear-test/httpd:latest pmorie/sti-html-app
tb docker tag gear-test/loop:latest ccoleman/envtest
readme() { echo "--- \$ $1" >&2; tb sh -c "cd /root && $1"; }

readme 'gear install pmorie/sti-html-app my-sample-service'
readme 'gear stop localhost/my-sample-service'
readme 'gear install pmorie/sti-html-app localhost/my-sample-service.1 localhost/my-sample-service.2'
readme 'gear start localhost/my-sample-service.1 localhost/my-sample-service.2'
assert_eq active "$(tb systemctl is-active ctr-my-sample-service.2.service)"

readme 'gear install pmorie/sti-html-app localhost/my-sample-service --start -p 8080:0'
out=$(readme 'curl -X PUT "http://localhost:43273/container/my-sample-service" -H "Content-Type: application/json" -d '\''{"Image": "pmorie/sti-html-app", "Started":true, "Ports":[{"Internal":8080}]}'\''')
assert_contains "$out" '"Id":"my-sample-service"'
port=$(sed -n 's/.*"External":\([0-9]*\).*/\1/p' <<<"$out")
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS "http://127.0.0.1:$port/")"

readme 'gear stop localhost/my-sample-service'
readme 'gear start localhost/my-sample-service'
readme 'gear restart localhost/my-sample-service'
readme 'curl -X PUT "http://localhost:43273/container/my-sample-service/stopped"'
assert_eq inactive "$(tb systemctl is-active ctr-my-sample-service.service || true)"
readme 'curl -X PUT "http://localhost:43273/container/my-sample-service/started"'
readme 'curl -X POST "http://localhost:43273/container/my-sample-service/restart"'
assert_eq active "$(tb systemctl is-active ctr-my-sample-service.service)"

readme 'gear status localhost/my-sample-service'
assert_contains "$(readme 'curl "http://localhost:43273/container/my-sample-service/status"')" '"ActiveState":"active"'
# The log follows for its default 30 s, then the answer ends by itself.
start=$SECONDS
assert_contains "$(readme 'curl "http://localhost:43273/container/my-sample-service/log"')" "Started ctr-my-sample-service.service"
[ $((SECONDS - start)) -le 40 ] || fail "the log did not end after its 30 s"

assert_contains "$(readme 'gear list-units localhost')" "localhost  my-sample-service.2  active"
assert_contains "$(readme 'curl "http://localhost:43273/containers"')" '{"Id":"my-sample-service"'

readme 'gear set-env localhost/my-sample-service A=B B=C'
assert_eq $'A=B\nB=C' "$(readme 'gear env localhost/my-sample-service')"
assert_eq $'A=B\nB=C' "$(readme 'curl "http://localhost:43273/environment/my-sample-service"')"
readme 'gear set-env localhost/my-sample-service --reset'
assert_eq "" "$(readme 'gear env localhost/my-sample-service')"

tb sh -c 'mkdir -p /root/deployment/fixtures && printf "GREETING=from-a-file\n" > /root/deployment/fixtures/simple.env'
readme 'gear install ccoleman/envtest localhost/env-test1 --env-file=deployment/fixtures/simple.env'
assert_eq "GREETING=from-a-file" "$(tb gear env localhost/env-test1)"

for id in my-sample-service my-sample-service.1 my-sample-service.2 env-test1; do tb gear delete "localhost/$id" >/dev/null; done
