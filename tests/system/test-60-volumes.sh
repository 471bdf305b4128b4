#!/usr/bin/env bash
# Volumes against real systemd and Docker: a file written into an owned volume survives a
# restart, a re-install with another image tag, a delete without --volumes and a reboot; a
# read-only bind mount cannot be written from inside, a read-write one can; bad volumes are
# a 400 that writes nothing; --allow-system-mounts lets /etc through; gear volumes lists
# sizes; delete --volumes removes the data.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
tb docker tag gear-test/httpd:latest gear-test/httpd:v2
tb mkdir -p /srv/site /srv/drop
tb sh -c 'echo "from the host" > /srv/site/index.html'

step "install with an owned volume, a read-only and a read-write bind mount"
out=$(tb gear install gear-test/httpd:latest localhost/vol-1 --start -p 8080:18600 \
  -v /data -v /srv/site:/www:ro -v /srv/drop:/drop)
assert_contains "$out" "localhost/vol-1: installed and started"
assert_eq "from the host" "$(tb curl -fsS http://127.0.0.1:18600/)"
tb test -d /var/lib/containers/volumes/vol-1/data || fail "no owned directory"
tb docker exec ctr-vol-1 sh -c 'echo precious > /data/file'
assert_eq precious "$(tb cat /var/lib/containers/volumes/vol-1/data/file)"

step "a read-only bind mount cannot be written from inside; a read-write one can"
if out=$(tb docker exec ctr-vol-1 sh -c 'echo x > /www/index.html' 2>&1); then
  fail "wrote into a read-only bind mount"
fi
assert_contains "$out" "Read-only file system"
assert_eq "from the host" "$(tb cat /srv/site/index.html)"
tb docker exec ctr-vol-1 sh -c 'echo out > /drop/result'
assert_eq out "$(tb cat /srv/drop/result)"

step "the file survives a restart (the Docker container is new)"
before=$(tb docker inspect -f '{{.Id}}' ctr-vol-1)
tb gear restart localhost/vol-1 >/dev/null
[ "$before" != "$(tb docker inspect -f '{{.Id}}' ctr-vol-1)" ] || fail "restart kept the container"
assert_eq precious "$(tb docker exec ctr-vol-1 cat /data/file)"

step "a re-install with another image tag and no -v keeps the volumes"
tb gear install gear-test/httpd:v2 localhost/vol-1 -p 8080:18600 >/dev/null
tb gear restart localhost/vol-1 >/dev/null
assert_eq gear-test/httpd:v2 "$(tb docker inspect -f '{{.Config.Image}}' ctr-vol-1)"
assert_eq precious "$(tb docker exec ctr-vol-1 cat /data/file)"
assert_eq "from the host" "$(tb curl -fsS http://127.0.0.1:18600/)"

step "gear volumes lists the owned volume with its size"
out=$(tb gear volumes localhost/vol-1)
echo "$out"
grep -Eq '^localhost +vol-1 +/data +8.0K +yes +/var/lib/containers/volumes/vol-1/data$' <<<"$out" || fail "not listed: $out"
assert_contains "$(tb curl -fsS $api/volumes)" '"Id":"vol-1","Target":"/data"'

step "bad volumes: 400, nothing pulled or written"
code() { tb curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' -d "$1" "$api/container/bad-v"; }
for body in \
  '{"Image":"gear-test/httpd","Volumes":[{"Target":"data"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Target":"/data/../etc"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Source":"/no/such","Target":"/x"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Source":"/","Target":"/x"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Source":"/etc","Target":"/x"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Source":"/var","Target":"/x"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Source":"/var/lib/containers/specs","Target":"/x"}]}' \
  '{"Image":"gear-test/httpd","Volumes":[{"Source":"/run/docker.sock","Target":"/x"}]}' \
  '{"Image":"no-such/image","VolumeConfig":{"VolumeMounts":[{"Path":"/etc","HostPath":"/x"}]}}'; do
  assert_eq 400 "$(code "$body")" "$body"
done
out=$(tb gear install gear-test/httpd localhost/bad-v -v /var/run/docker.sock:/sock 2>&1 || true)
assert_contains "$out" "host path /var/run/docker.sock is refused: it is or holds the Docker socket"
tb test ! -e /var/lib/containers/units/ctr-bad-v.service || fail "a refused install left a unit"
tb test ! -e /var/lib/containers/specs/bad-v.json || fail "a refused install left a spec"
tb test ! -e /var/lib/containers/volumes/bad-v || fail "a refused install left a volume"
assert_eq "" "$(tb docker images -q no-such/image)"

step "geard's VolumeConfig works, and --allow-system-mounts lets /etc through"
tb mkdir -p /etc/systemd/system/gear-api.service.d
tb sh -c 'printf "[Service]\nExecStart=\nExecStart=/usr/libexec/gear/gear-api --exit-idle-time=5m --allow-system-mounts\n" > /etc/systemd/system/gear-api.service.d/allow.conf'
tb systemctl daemon-reload
tb systemctl restart gear-api.service 2>/dev/null || tb systemctl stop gear-api.service
body='{"Image":"gear-test/httpd","Started":true,"VolumeConfig":{"Volumes":[{"Path":"/data"}],"VolumeMounts":[{"Path":"/etc","HostPath":"/host-etc","ReadOnly":true}]}}'
assert_eq 200 "$(tb curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' -d "$body" "$api/container/geard-v")"
assert_eq "$(tb cat /etc/hostname)" "$(tb docker exec ctr-geard-v cat /host-etc/hostname)"
tb rm /etc/systemd/system/gear-api.service.d/allow.conf
tb systemctl daemon-reload
tb systemctl stop gear-api.service
tb gear delete --volumes localhost/geard-v >/dev/null

step "delete without --volumes keeps the data and says so; a re-install finds it"
out=$(tb gear delete localhost/vol-1)
assert_eq "localhost/vol-1: deleted; kept volumes /data (gear delete --volumes removes them)" "$out"
assert_eq precious "$(tb cat /var/lib/containers/volumes/vol-1/data/file)"
grep -Eq '^localhost +vol-1 +/data +8.0K +no ' <<<"$(tb gear volumes localhost)" || fail "kept volume not listed"
tb gear install gear-test/httpd:latest localhost/vol-1 --start -p 8080:18600 -v /data -v /srv/site:/www:ro >/dev/null
assert_eq precious "$(tb docker exec ctr-vol-1 cat /data/file)"

step "a reboot: the container comes back with its data"
"$TESTBED" reboot "$MACHINE"
wait_until 60 "$TESTBED" exec "$MACHINE" curl -fsS http://127.0.0.1:18600/
assert_eq precious "$(tb docker exec ctr-vol-1 cat /data/file)"

step "delete --volumes removes the data"
out=$(tb gear delete --volumes localhost/vol-1)
assert_eq "localhost/vol-1: deleted; removed volumes /data" "$out"
tb test ! -e /var/lib/containers/volumes/vol-1 || fail "the volume is still there"
assert_eq '{"Volumes":[]}' "$(tb curl -fsS $api/volumes/vol-1)"
assert_eq 404 "$(tb curl -s -o /dev/null -w '%{http_code}' -X DELETE "$api/container/vol-1?volumes=1")"
