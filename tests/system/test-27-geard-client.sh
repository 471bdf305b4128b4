#!/usr/bin/env bash
# geard's own Go client, as http/client/client.go sends requests and reads answers: headers
# X-Request-Id (22-char base64url), X-Api-Version: 1, Accept: application/json (with
# ;stream=true for streamed jobs), no Content-Type, the body sent chunked; an answer is
# read as that client does: 202 text is output, 204 is success, any other 2xx must be
# exactly `application/json`, an error must be JSON with a Message.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tb systemctl daemon-reload
tb systemctl start gear-api.socket

# geard METHOD PATH STREAM [BODY]: one request as geard's client sends it; prints
# "STATUS CONTENT-TYPE" on the first line and the body after it.
geard() {
  local method=$1 path=$2 stream=$3 body=${4:-} accept=application/json rid
  [ "$stream" = 1 ] && accept='application/json;stream=true'
  rid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  printf '%s' "$body" | tb sh -c "curl -sS -X '$method' 'http://127.0.0.1:43273$path' \
    -H 'X-Request-Id: $rid' -H 'X-Api-Version: 1' -H 'Accept: $accept' \
    -H 'Content-Type:' -H 'Transfer-Encoding: chunked' --data-binary @- \
    -D /tmp/geard-headers -o /tmp/geard-body; \
    printf '%s %s\n' \"\$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' /tmp/geard-headers)\" \
      \"\$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^\r]*\).*/\1/p' /tmp/geard-headers)\"; cat /tmp/geard-body"
}

# accepted "STATUS CT": whether geard's client takes the answer as a success (echo why not).
go_client_success() {
  local status=${1%% *} ctype=${1#* }
  case "$status" in
    202) [ "$ctype" != application/json ] || { echo "202 with JSON: streaming JSON is not implemented"; return 1; } ;;
    204) ;;
    2??) [ "$ctype" = application/json ] || { echo "$status with $ctype (should be application/json)"; return 1; } ;;
    *) echo "failure $status"; return 1 ;;
  esac
}

check() { # check WHAT ANSWER: the first line must be a success for geard's client
  local head; head=$(head -1 <<<"$2")
  go_client_success "$head" || fail "$1: geard's client would fail: $(go_client_success "$head")"
}

step "install with every field geard's client sends (Id repeated, options off)"
body='{"Id":"gc-web1","Image":"gear-test/httpd","Started":true,"Isolate":false,"Simple":false,"SocketActivation":false,"SkipSocketProxy":false,"Ports":[{"Internal":8080,"External":0}],"Environment":{"Id":"gc-web1","Variables":[{"Name":"A","Value":"B"}]},"NetworkLinks":null,"VolumeConfig":null,"SystemdSlice":"container-small"}'
out=$(geard PUT /container/gc-web1 0 "$body")
check install "$out"
assert_contains "$out" '"Id":"gc-web1"'
port=$(sed -n 's/.*"External":\([0-9]*\).*/\1/p' <<<"$out")
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS "http://127.0.0.1:$port/")" "the container serves"
assert_eq active "$(tb systemctl is-active ctr-gc-web1.service)"

step "stop, start, restart, status, list: 2xx JSON"
check stop "$(geard PUT /container/gc-web1/stopped 0)"
assert_eq inactive "$(tb systemctl is-active ctr-gc-web1.service || true)"
check start "$(geard PUT /container/gc-web1/started 0)"
check restart "$(geard POST /container/gc-web1/restart 0)"
out=$(geard GET /container/gc-web1/status 1)
check status "$out"
assert_contains "$out" '"ActiveState":"active"'
out=$(geard GET /containers 0)
check list "$out"
assert_contains "$out" '"Id":"gc-web1"'

step "streamed text (log, environment) answers 202, which the client copies to its output"
out=$(geard GET '/container/gc-web1/log?timeout=1s' 1)
assert_eq 202 "$(head -1 <<<"$out" | cut -d' ' -f1)" "log status"
check log "$out"
out=$(geard GET /environment/gc-web1 1)
check env "$out"
assert_contains "$out" "A=B"
check set-env "$(geard PATCH /environment/gc-web1 0 '{"Id":"gc-web1","Variables":[{"Name":"C","Value":"D"}]}')"

step "errors are JSON with a Message, as the client decodes them"
out=$(geard GET /container/gc-none/status 1)
assert_eq "404 application/json" "$(head -1 <<<"$out")"
assert_contains "$out" '"Message":"container gc-none is not installed"'
out=$(geard PUT /container/gc-web2 0 '{"Image":"gear-test/httpd","SocketActivation":true}')
assert_eq "400 application/json" "$(head -1 <<<"$out")"
assert_contains "$out" "SocketActivation"
out=$(geard PUT /container/gc-web2 0 '{"Image":"no-such/image:gone"}')
assert_eq "422 application/json" "$(head -1 <<<"$out")"
# One status, one message: Docker's own HTTP status does not leak into it.
[[ $out != *"Internal Server Error"* ]] || fail "a failed pull names Docker's status: $out"
tb test ! -e /var/lib/containers/units/ctr-gc-web2.service || fail "a failed install left a unit"

step "delete"
check delete "$(geard DELETE /container/gc-web1 0)"
tb test ! -e /var/lib/containers/units/ctr-gc-web1.service || fail "the unit is still there"
leaked=$(tb sh -c 'for p in /var/lib/containers/ports/*; do [ -L "$p" ] && echo "$p -> $(readlink "$p")"; done | grep " gc-" || true')
[ -z "$leaked" ] || fail "port reservations left behind: $leaked"
