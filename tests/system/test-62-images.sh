#!/usr/bin/env bash
# Images against a real Docker: gear pull from a registry on the machine's loopback (static
# files served by busybox httpd: no registry outside is reachable), with progress; a failed
# pull names the image; gear images says which containers use each image (a stopped gear
# container, which has no Docker container, included); prune-images removes only the unused.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
# Whatever happens, the machine gets its test images back for the tests after this one.
trap '"$TESTBED" images "$MACHINE" >/dev/null 2>&1 || true' EXIT

step "images of our own: one to pull, one unused, one a plain Docker container uses"
for name in topull unused other; do
  printf 'FROM gear-test/httpd:latest\nLABEL gear.test=%s\n' "$name" | tb docker build -q -t "gear-test/$name:1" - >/dev/null
done
tb docker create --name other-ctr gear-test/other:1 >/dev/null

step "a registry on 127.0.0.1:5000 serving gear-test/topull:1 as gear-test/pulled:1.mf"
# Docker treats 127.0.0.0/8 registries as plain HTTP. The manifest's tag ends in .mf so that
# busybox httpd sends it with the manifest media type (it picks types by file suffix).
tbsh '
set -e
R=/srv/registry; B=$R/v2/gear-test/pulled/blobs
rm -rf $R /tmp/save; mkdir -p $R/v2/gear-test/pulled/manifests $B /tmp/save
echo ok > $R/v2/index.html
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
  "$(stat -c %s "$cfg")" "$(blob "$cfg")" "$layers" > $R/v2/gear-test/pulled/manifests/1.mf
echo ".mf:application/vnd.docker.distribution.manifest.v2+json" > /srv/registry.conf
busybox httpd -f -p 127.0.0.1:5000 -h $R -c /srv/registry.conf </dev/null >/dev/null 2>&1 &
echo $! > /run/gear-test-registry.pid
'
tb docker rmi gear-test/topull:1 >/dev/null

step "gear pull shows progress and ends with the image's id"
image=127.0.0.1:5000/gear-test/pulled:1.mf
tb gear pull "$image" localhost >/tmp/gear-pull.out 2>/tmp/gear-pull.err || { cat /tmp/gear-pull.err; fail "pull failed"; }
cat /tmp/gear-pull.err
assert_contains "$(cat /tmp/gear-pull.err)" "localhost: "
grep -q "Pull complete\|Already exists\|Download complete" /tmp/gear-pull.err || fail "no layer progress"
id=$(tb docker image inspect -f '{{.Id}}' "$image")
assert_eq "localhost: pulled $image ($id)" "$(cat /tmp/gear-pull.out)"

step "a pull that cannot succeed names the image and fails"
if out=$(tb gear pull 127.0.0.1:5000/gear-test/nosuch:1 localhost 2>&1); then fail "pull of a missing image succeeded"; fi
assert_contains "$out" "image 127.0.0.1:5000/gear-test/nosuch:1 is not on this host and could not be pulled"
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"Image":"-x"}' $api/images/pull)"

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
