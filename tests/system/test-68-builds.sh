#!/usr/bin/env bash
# Builds from source against real systemd and Docker (docs/builds.md): the builder image
# gear-test/s2i-web (tests/fixtures/images/s2i-web: busybox plus s2i scripts that copy the
# source into /www) builds a local source; gear install runs it and it serves the file; the
# second build is incremental (save-artifacts); a Dockerfile source builds; a failing
# assemble, a missing source and a builder without scripts fail with the reason and leave
# the tag's image as it was and nothing behind; a second build of a running tag is 409; a
# client that goes away leaves the build running; push to deploy serves a pushed commit; a
# git URL builds at a branch, a tag or a commit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
port=14680
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1

# nothing_left: no build unit loaded, no build container, no private /tmp of a build.
nothing_left() {
  [ -z "$(tb systemctl list-units --all --no-legend 'gear-build-*' | tr -d ' ')" ] &&
  [ -z "$(tb docker ps -aq --filter name=gear-build-)" ] &&
  [ -z "$(tb sh -c 'ls -d /tmp/systemd-private-*gear-build* 2>/dev/null || true')" ]
}
image_id() { tb docker image inspect -f '{{.Id}}' "$1"; }
dangling() { tb docker images -aq --filter dangling=true | wc -l; }
page() { tb curl -fsS -m 2 "http://127.0.0.1:$port/$1"; }

step "a local source builds into an image that gear install runs and serves"
tbsh 'mkdir -p /srv/site && echo "hello v1" > /srv/site/index.html'
out=$(tb gear build /srv/site gear-test/s2i-web gear-test/site localhost 2>&1)
assert_contains "$out" "assemble: copying the source into /www"
assert_contains "$out" "gear build: built gear-test/site:latest"
wait_until 10 nothing_left
tb gear install gear-test/site localhost/site-1 --start -p 8080:$port >/dev/null
wait_until 20 page index.html
assert_eq "hello v1" "$(page index.html)"
assert_eq 1 "$(page cache/builds)" "builds counted by the image"

step "a second build is incremental: the artifact save-artifacts kept is there"
tbsh 'echo "hello v2" > /srv/site/index.html'
out=$(tb gear build /srv/site gear-test/s2i-web gear-test/site localhost 2>&1)
assert_contains "$out" "Restored the artifacts of the previous image"
assert_contains "$out" "assemble: build number 2 of this image"
tb gear restart localhost/site-1 >/dev/null
wait_until 20 sh -c "$TESTBED exec $MACHINE curl -fsS -m 2 http://127.0.0.1:$port/index.html | grep -q v2"
assert_eq 2 "$(page cache/builds)" "artifact carried over"
out=$(tb gear build --clean /srv/site gear-test/s2i-web gear-test/site localhost 2>&1)
assert_contains "$out" "assemble: build number 1 of this image"
[[ $out != *"Restored the artifacts"* ]] || fail "--clean restored artifacts"

step "gear builds lists them with result, duration and image; gear build-logs prints a log"
list=$(tb gear builds localhost)
assert_contains "$list" "success (incremental)"
assert_contains "$(head -1 <<<"$list")" "DURATION"
json=$(tb curl -fsS $api/builds)
assert_contains "$json" '"Result":"success"'
assert_contains "$json" "\"Image\":\"$(image_id gear-test/site)\""
assert_contains "$(tb gear build-logs localhost gear-test/site)" "assemble: build number 1"

step "a failing assemble fails with the reason, leaves the old image and nothing behind"
before=$(image_id gear-test/site); dangling_before=$(dangling)
tbsh 'mkdir -p /srv/bad/.s2i/bin && printf "#!/bin/sh\necho breaking >&2\nexit 3\n" > /srv/bad/.s2i/bin/assemble && chmod +x /srv/bad/.s2i/bin/assemble'
out=$(tb gear build /srv/bad gear-test/s2i-web gear-test/site localhost 2>&1) && fail "exit 0"
assert_contains "$out" "breaking"
assert_contains "$out" "failed: assemble failed (exit code 3)"
assert_eq "$before" "$(image_id gear-test/site)" "image of the tag"
wait_until 10 nothing_left
assert_eq "$dangling_before" "$(dangling)" "dangling images"
assert_contains "$(tb curl -fsS $api/builds)" '"Reason":"assemble failed (exit code 3)"'

step "a missing source and a builder without scripts fail with the reason"
out=$(tb gear build /srv/nosuch gear-test/s2i-web gear-test/site localhost 2>&1) && fail "exit 0"
assert_contains "$out" "source directory /srv/nosuch does not exist on the host"
out=$(tb gear build /srv/site gear-test/httpd gear-test/site localhost 2>&1) && fail "exit 0"
assert_contains "$out" "builder image gear-test/httpd has no assemble script at /usr/libexec/s2i/assemble"
assert_eq "$before" "$(image_id gear-test/site)" "image of the tag"
wait_until 10 nothing_left
assert_eq 400 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"Source":"relative/dir","BaseImage":"b","Tag":"t"}' $api/build-image)"

step "a Dockerfile source builds with docker build"
tbsh 'mkdir -p /srv/df && printf "FROM gear-test/httpd\nCOPY page.html /www/index.html\n" > /srv/df/Dockerfile && echo "from a Dockerfile" > /srv/df/page.html'
out=$(tb gear build /srv/df gear-test/s2i-web gear-test/df localhost 2>&1)
assert_contains "$out" "Building the source's Dockerfile as gear-test/df:latest"
assert_eq "from a Dockerfile" "$(tb docker run --rm --entrypoint cat gear-test/df /www/index.html)"
wait_until 10 nothing_left

step "a second build of a tag while one runs is refused (409)"
tbsh 'mkdir -p /srv/slow/.s2i/bin && echo slow > /srv/slow/index.html && printf "#!/bin/sh\necho assembling slowly\nsleep 4\ncp -a /tmp/src/. /www/\necho assembled\n" > /srv/slow/.s2i/bin/assemble && chmod +x /srv/slow/.s2i/bin/assemble'
unit='gear-build-gear\x2dtest-slow:latest.service'
tb sh -c 'gear build /srv/slow gear-test/s2i-web gear-test/slow localhost > /tmp/slow.out 2>&1' &
wait_until 10 tb systemctl is-active --quiet "$unit"
body='{"Source":"/srv/slow","BaseImage":"gear-test/s2i-web","Tag":"gear-test/slow"}'
assert_eq 409 "$(tb curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$body" $api/build-image)"
wait
assert_contains "$(tb cat /tmp/slow.out)" "gear build: built gear-test/slow:latest"

step "the client going away does not stop the build"
tb docker rmi gear-test/slow >/dev/null
tb sh -c 'gear build /srv/slow gear-test/s2i-web gear-test/slow localhost > /tmp/gone.out 2>&1 & echo $! > /tmp/gone.pid; wait' &
wait_until 10 sh -c "$TESTBED exec $MACHINE grep -q 'assembling slowly' /tmp/gone.out"
tb sh -c 'kill -KILL "$(cat /tmp/gone.pid)"'
wait || true
tb systemctl is-active --quiet "$unit" || fail "the build stopped with its client"
id=$(tb sed -n 's/^gear build: build \([0-9a-f]*\) .*/\1/p' /tmp/gone.out)
[ -n "$id" ] || fail "no build number in: $(tb cat /tmp/gone.out)"
out=$(tb gear build-logs --follow localhost "$id" 2>&1)
assert_contains "$out" "assembled"
assert_contains "$out" "gear build: built gear-test/slow:latest"
image_id gear-test/slow >/dev/null
wait_until 10 nothing_left

step "push to deploy: git push builds the pushed commit and restarts the container"
# A repository as gear keeps them: bare, under /var/lib/containers/git/<ID>, owned by git-<ID>.
# Its default branch named here: another test in this machine may have set init.defaultBranch.
tbsh 'id git-site >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh git-site
      mkdir -p /var/lib/containers/git && git init --quiet --bare --initial-branch=master /var/lib/containers/git/site &&
      chown -R git-site: /var/lib/containers/git/site'
out=$(tb gear build --on-push repo://site gear-test/s2i-web --tag gear-test/site --restart localhost/site-1)
assert_contains "$out" "each push to repo://site builds gear-test/site:latest and restarts site-1"
tb test -x /var/lib/containers/git/site/hooks/post-receive
# The pusher's working copy, pushed over a local path as the repository's user (what
# gear's git shell runs for an SSH push).
tbsh 'rm -rf /srv/work && mkdir /srv/work && cd /srv/work && git init --quiet &&
      echo "pushed v3" > index.html && git add index.html &&
      git -c user.name=t -c user.email=t@t commit --quiet -m v3 && chown -R git-site: /srv/work'
out=$(tb runuser -u git-site -- env HOME=/tmp sh -c 'cd /srv/work && git push /var/lib/containers/git/site HEAD:master 2>&1')
assert_contains "$out" "remote: assemble: copying the source into /www"
assert_contains "$out" "remote: gear build: built gear-test/site:latest"
wait_until 20 sh -c "$TESTBED exec $MACHINE curl -fsS -m 2 http://127.0.0.1:$port/index.html | grep -q 'pushed v3'"
commit=$(tb runuser -u git-site -- git -C /srv/work rev-parse HEAD)
assert_contains "$(tb curl -fsS $api/builds)" "\"Ref\":\"$commit\""
# A push to another branch builds nothing.
out=$(tb runuser -u git-site -- env HOME=/tmp sh -c 'cd /srv/work && git push /var/lib/containers/git/site HEAD:other 2>&1')
[[ $out != *"gear build"* ]] || fail "a push to another branch built: $out"

step "a git URL builds at a branch, a tag or a commit; a missing ref fails with the reason"
tb runuser -u git-site -- env HOME=/tmp sh -c 'cd /srv/work && git tag v3 && git push --quiet /var/lib/containers/git/site v3'
url=file:///var/lib/containers/git/site
for ref in master v3 "$commit"; do
  out=$(tb gear build "$url" gear-test/s2i-web gear-test/fromgit localhost --ref "$ref" 2>&1)
  assert_contains "$out" "Source at commit $commit"
  assert_contains "$out" "gear build: built gear-test/fromgit:latest"
done
assert_eq "pushed v3" "$(tb docker run --rm --entrypoint cat gear-test/fromgit /www/index.html)"
out=$(tb gear build "$url" gear-test/s2i-web gear-test/fromgit localhost --ref nosuch 2>&1) && fail "exit 0"
assert_contains "$out" "$url has no branch, tag or commit 'nosuch'"

step "clean up"
tb gear delete localhost/site-1 >/dev/null
wait_until 10 nothing_left
