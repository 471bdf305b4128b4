#!/usr/bin/env bash
# Images against a real Docker: gear pull from a registry on the machine's loopback (files
# served by a busybox nc handler: no registry outside is reachable), with progress; a failed
# pull names the image; gear images says which containers use each image (a stopped gear
# container, which has no Docker container, included); prune-images removes only the unused.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
# Whatever happens, the machine gets its test images back for the tests after this one.
trap '"$TESTBED" images "$MACHINE" >/dev/null 2>&1 || true' EXIT

step "images of our own: one to pull (with a layer of its own), one unused, one a plain Docker container uses"
printf 'FROM gear-test/httpd:latest\nRUN echo pulled > /pulled\n' | tb docker build -q -t gear-test/topull:1 - >/dev/null
for name in unused other; do
  printf 'FROM gear-test/httpd:latest\nLABEL gear.test=%s\n' "$name" | tb docker build -q -t "gear-test/$name:1" - >/dev/null
done
tb docker create --name other-ctr gear-test/other:1 >/dev/null

step "a registry on 127.0.0.1:5000 serving gear-test/topull:1 as gear-test/pulled:1"
# Docker talks plain HTTP to 127.0.0.0/8 registries. Each connection runs this handler
# (busybox nc -ll -e): files under /srv/registry, manifests with their media type.
tb sh -c 'cat > /srv/registry.sh && chmod +x /srv/registry.sh' <<'HANDLER'
#!/bin/sh
read -r method path _
while read -r line; do [ "$(printf %s "$line" | tr -d '\r')" ] || break; done
file=/srv/registry$path
[ "$path" = /v2/ ] && file=/srv/registry/v2/index.json
case "$path" in
  */manifests/*) type=application/vnd.docker.distribution.manifest.v2+json ;;
  *) type=application/octet-stream ;;
esac
if [ -f "$file" ]; then
  printf 'HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$type" "$(stat -c %s "$file")"
  [ "$method" = HEAD ] || cat "$file"
else
  body='{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}'
  printf 'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "${#body}" "$body"
fi
HANDLER
# The manifest is stored under its tag and its digest (Docker asks for both).
tbsh '
set -e
R=/srv/registry; M=$R/v2/gear-test/pulled/manifests B=$R/v2/gear-test/pulled/blobs
rm -rf $R /tmp/save; mkdir -p $M $B /tmp/save
echo "{}" > $R/v2/index.json
docker save gear-test/topull:1 | tar -x -C /tmp/save
cd /tmp/save
cfg=$(sed -n "s/.*\"Config\":\"\([^\"]*\)\".*/\1/p" manifest.json)
blob() { d=$(sha256sum "$1" | cut -d" " -f1); cp "$1" "$B/sha256:$d"; echo "$d"; }
layers=""
for l in $(sed -n "s/.*\"Layers\":\[\([^]]*\)\].*/\1/p" manifest.json | tr -d "\"" | tr "," " "); do
  gzip -c "$l" > "$l.gz"
  layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":$(stat -c %s "$l.gz"),\"digest\":\"sha256:$(blob "$l.gz")\"}"
done
printf "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":%s,\"digest\":\"sha256:%s\"},\"layers\":[%s]}" \
  "$(stat -c %s "$cfg")" "$(blob "$cfg")" "$layers" > $M/1
cp $M/1 "$M/sha256:$(sha256sum $M/1 | cut -d" " -f1)"
busybox nc -ll -p 5000 -e /srv/registry.sh </dev/null >/dev/null 2>&1 &
echo $! > /run/gear-test-registry.pid
'
tb docker rmi gear-test/topull:1 >/dev/null
wait_until 5 "$TESTBED" exec "$MACHINE" curl -fsS http://127.0.0.1:5000/v2/

step "gear pull shows progress and ends with the image's id"
image=127.0.0.1:5000/gear-test/pulled:1
pull_out=$(mktemp) pull_err=$(mktemp)
trap 'rm -f "$pull_out" "$pull_err"; "$TESTBED" images "$MACHINE" >/dev/null 2>&1 || true' EXIT
tb gear pull "$image" localhost >"$pull_out" 2>"$pull_err" || { cat "$pull_err"; fail "pull failed"; }
cat "$pull_err"
grep -q "^localhost: [0-9a-f]* Pull complete" "$pull_err" || fail "no layer progress"
id=$(tb docker image inspect -f '{{.Id}}' "$image")
assert_eq "localhost: pulled $image ($id)" "$(cat "$pull_out")"

step "a pull that cannot succeed names the image and fails"
if out=$(tb gear pull 127.0.0.1:5000/gear-test/nosuch:1 localhost 2>&1); then fail "pull of a missing image succeeded"; fi
assert_contains "$out" "image 127.0.0.1:5000/gear-test/nosuch:1 is not on this host and could not be pulled"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"Image":"-x"}' $api/images/pull)"

step "gear images: who uses what, a stopped container included"
tb gear install "$image" localhost/img-stopped >/dev/null
tb gear install gear-test/httpd:latest localhost/img-run --start >/dev/null
json=$(tb curl -fsS $api/images)
assert_contains "$json" "\"Tags\":[\"$image\"]"
assert_contains "$json" "\"UsedBy\":[\"img-stopped\"]"
assert_contains "$json" '"UsedBy":["other-ctr"]'
out=$(tb gear images localhost)
echo "$out"
grep -Eq "^localhost +[0-9a-f]{12} +$image +[0-9.]+[KM] +20[0-9-]+ [0-9:]+ +img-stopped$" <<<"$out" || fail "pulled image row"
grep -Eq "^localhost +[0-9a-f]{12} +gear-test/unused:1 +[0-9.]+[KM] +20[0-9-]+ [0-9:]+$" <<<"$out" || fail "unused image row"
grep -Eq "gear-test/httpd:latest.*img-run" <<<"$out" || fail "httpd row"

step "prune-images removes the unused, never one in use"
out=$(tb gear prune-images localhost)
echo "$out"
assert_contains "$out" "localhost: removed gear-test/unused:1"
assert_eq "" "$(tb docker images -q gear-test/unused:1)"
[ -n "$(tb docker images -q "$image")" ] || fail "pruned the image of a stopped container"
[ -n "$(tb docker images -q gear-test/other:1)" ] || fail "pruned the image of a Docker container"
[ -n "$(tb docker images -q gear-test/httpd:latest)" ] || fail "pruned the image of a running container"
tb gear start localhost/img-stopped >/dev/null
assert_eq active "$(tb systemctl is-active ctr-img-stopped.service)"
assert_contains "$(tb gear prune-images localhost)" "localhost: 0 removed (0)"

step "clean up"
tb gear delete localhost/img-stopped localhost/img-run >/dev/null
tb docker rm other-ctr >/dev/null
tb sh -c 'kill "$(cat /run/gear-test-registry.pid)"'
