#!/bin/sh
# load.sh — runs INSIDE the test machine: keeps gear busy until /tmp/chaos/stop exists.
# Container NAME-i is installed (with a network link) and started, then NAME-(i-1) gets
# other links and is stopped and started again,
# then NAME-(i-2) deleted. Every request carries an X-Request-Id and is sent again with
# the same id when the connection broke without an answer (the agent answers a retry
# from its record, or does the work once), at most 5 times. Each request is one line of
# /tmp/chaos/requests:  OP ID HTTP_CODE CURL_RC TRIES SECONDS
#   usage: load.sh NAME
set -u
name=$1
api=http://127.0.0.1:43273
mkdir -p /tmp/chaos
log=/tmp/chaos/requests
n=0

# req OP ID METHOD PATH [BODY]
req() {
  op=$1 id=$2 method=$3 path=$4 body=${5:-}
  n=$((n + 1))
  rid="chaos-$name-$$-$n"
  tries=0 start=$(date +%s%N)
  while :; do
    tries=$((tries + 1))
    # 90 s: longer than any job gear waits for (a unit's start is bounded by systemd).
    code=$(curl -s -o /tmp/chaos/body.$$ -w '%{http_code}' -m 90 -X "$method" \
      -H "X-Request-Id: $rid" ${body:+-H "Content-Type: application/json" -d "$body"} "$api$path")
    rc=$?
    # 7: refused, 52: empty reply, 56: reset: no answer came, so ask again.
    case $rc in 7|52|56) [ "$tries" -lt 5 ] && { sleep 1; continue; } ;; esac
    break
  done
  secs=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "$op $id $code $rc $tries $secs" >> "$log"
  [ "$code" -ge 400 ] 2>/dev/null && echo "$op $id $code: $(head -c 300 /tmp/chaos/body.$$)" >> /tmp/chaos/errors
  return 0
}

i=0
while [ ! -e /tmp/chaos/stop ]; do
  i=$((i + 1))
  req install "$name-$i" PUT "/container/$name-$i" \
    '{"Image":"gear-test/httpd:latest","Started":true,"Ports":[{"Internal":8080}],"NetworkLinks":[{"FromHost":"127.0.0.2","FromPort":8081,"ToHost":"localhost","ToPort":4000}]}'
  if [ "$i" -ge 2 ]; then
    req link "$name-$((i - 1))" POST /containers/links \
      '{"Links":[{"Id":"'"$name-$((i - 1))"'","NetworkLinks":[{"FromHost":"127.0.0.3","FromPort":8082,"ToHost":"localhost","ToPort":4001}]}]}'
    req stop "$name-$((i - 1))" PUT "/container/$name-$((i - 1))/stopped"
    req start "$name-$((i - 1))" PUT "/container/$name-$((i - 1))/started"
  fi
  [ "$i" -ge 3 ] && req delete "$name-$((i - 2))" DELETE "/container/$name-$((i - 2))"
done
rm -f /tmp/chaos/body.$$
