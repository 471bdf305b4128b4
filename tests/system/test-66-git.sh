#!/usr/bin/env bash
# Git repositories with the real sshd, ssh and git: an empty repository, a push with a write
# key (its post-receive hook runs as git-ID), a clone with a read key, a push refused with
# it, archives of a branch, a tag and a commit (contents checked), a repository created from
# a local path, no shell for repository users, repository A's user and keys cannot touch
# repository B, an interrupted clone leaves nothing, delete removes everything.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
SSHOPTS="-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5"
SSH="ssh $SSHOPTS"
# git over ssh with key K: tgit K ARGS...
tgit() { local k=$1; shift; tb env GIT_SSH_COMMAND="ssh $SSHOPTS -i /root/$k" HOME=/root git "$@"; }
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket >/dev/null 2>&1
tb systemd-sysusers
tb systemd-tmpfiles --create /usr/lib/tmpfiles.d/gear.conf
tb systemctl restart ssh.service
wait_until 10 tb sh -c 'ss -ltn | grep -q ":22 "'
tb git config --global user.email t@test
tb git config --global user.name tester
tb git config --global init.defaultBranch main

step "an empty repository: main as HEAD, its own user, owned by it, no hook installed"
out=$(tb gear create-repo localhost/app1)
assert_contains "$out" "localhost/app1: created (HEAD main); clone it with: git clone git-app1@localhost:~ app1"
assert_eq "ref: refs/heads/main" "$(tb cat /var/lib/containers/git/app1/HEAD)"
assert_eq "git-app1 git-app1 700" "$(tb stat -c '%U %G %a' /var/lib/containers/git/app1)" "owner and mode"
assert_eq "root 755" "$(tb stat -c '%U %a' /var/lib/containers/git)" "the repositories' directory"
assert_eq "/var/lib/containers/git" "$(tb getent passwd git-app1 | cut -d: -f6)" "home of git-app1"
assert_eq "" "$(tb find /var/lib/containers/git/app1/hooks -type f ! -name '*.sample')" "hooks installed"
out=$(tb gear create-repo localhost/app1 2>&1) && fail "created twice"
assert_contains "$out" "repository app1 exists already (409)"
out=$(tb gear create-repo localhost/App.1 2>&1) && fail "a bad id"
assert_contains "$out" "lowercase"

step "keys: write and read for app1 (gear add-keys), geard's body for app2"
# Fresh keys: an earlier test in this machine may have left a file of the same name.
for k in kw kr kb; do tb rm -f /root/$k /root/$k.pub; tb ssh-keygen -q -t ed25519 -N '' -C "$k@test" -f /root/$k; done
out=$(tb gear add-keys --key-file /root/kw.pub --write repo://app1)
assert_contains "$out" "repo://localhost/app1: 1 key(s) added (write); git clone git-app1@localhost:~"
tb gear add-keys --key-file /root/kr.pub repo://localhost/app1 >/dev/null
list=$(tb gear list-keys repo://app1)
assert_contains "$list" "repo://localhost/app1  $(tb ssh-keygen -lf /root/kw.pub | cut -d' ' -f2)  ssh-ed25519  write  kw@test"
assert_contains "$list" "ssh-ed25519  read  kr@test"
keys=$(tb setpriv --reuid gear-keys --regid gear-keys --clear-groups /usr/libexec/gear/gear-keys git-app1)
assert_eq 2 "$(echo "$keys" | wc -l)" "gear-keys lines for git-app1"
assert_contains "$keys" "command=\"/usr/libexec/gear/gear-git-shell write\",restrict ssh-ed25519"
assert_contains "$keys" "command=\"/usr/libexec/gear/gear-git-shell read\",restrict ssh-ed25519"
out=$(tb gear add-keys --key-file /root/kw.pub --write localhost/web-1 2>&1) && fail "--write on a container"
assert_contains "$out" "--write is for repositories"
code=$(tb curl -sS -o /tmp/out -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
  -d "{\"Keys\":[{\"Type\":\"authorized_keys\",\"Value\":\"$(tb cat /root/kb.pub)\"}],\"Permissions\":[{\"Type\":\"repository\",\"With\":{\"Id\":\"nope1\",\"Write\":true}}]}" $api/keys)
assert_eq 404 "$code" "keys for a repository that does not exist"

step "push a branch and a tag with the write key; the post-receive hook runs as git-app1"
# A hook as the builds issue will add one: root installs it, git runs it as the repository's user.
tb sh -c 'cat > /var/lib/containers/git/app1/hooks/post-receive <<"HOOK"
#!/bin/sh
while read old new ref; do echo "$(id -un) $ref $new" >> /tmp/hook-app1.log; done
HOOK
chmod 0755 /var/lib/containers/git/app1/hooks/post-receive'
tb sh -c 'rm -rf /root/work && mkdir /root/work && cd /root/work && git init -q && echo one > a.txt && mkdir -p sub && echo deep > sub/b.txt && git add . && git commit -qm first && git tag v1 && echo two > a.txt && git commit -qam second'
first=$(tb git -C /root/work rev-parse v1)
second=$(tb git -C /root/work rev-parse main)
tgit kw -C /root/work push -q git-app1@127.0.0.1:~ main v1
assert_eq "$second" "$(tb git --git-dir=/var/lib/containers/git/app1 rev-parse main)" "main in the repository"
assert_contains "$(tb cat /tmp/hook-app1.log)" "git-app1 refs/heads/main $second"
assert_contains "$(tb cat /tmp/hook-app1.log)" "git-app1 refs/tags/v1"
tb sh -c 'find /var/lib/containers/git/app1 ! -user git-app1' | grep -v hooks/post-receive | grep . && fail "files not owned by git-app1"

step "clone with the read key; its push is refused"
tb rm -rf /root/clone-r
tgit kr clone -q git-app1@127.0.0.1:~ /root/clone-r
assert_eq "two" "$(tb cat /root/clone-r/a.txt)" "cloned content"
tb sh -c 'cd /root/clone-r && echo three > a.txt && git commit -qam third'
out=$(tgit kr -C /root/clone-r push origin main 2>&1) && fail "a read key pushed"
assert_contains "$out" "gear-git-shell: this key may only read repository app1: pushing needs a key added with --write"
assert_eq "$second" "$(tb git --git-dir=/var/lib/containers/git/app1 rev-parse main)" "main after the refused push"
# geard's form and its spellings of the same repository.
tgit kr ls-remote git-app1@127.0.0.1:app1.git | grep -q refs/tags/v1 || fail "ls-remote app1.git"
tgit kr archive --remote=git-app1@127.0.0.1:~ v1 a.txt | tb tar -xO | grep -qx one || fail "git archive --remote"

step "archives of a branch, a tag and a commit, zip and tar.gz; an unknown ref is 404"
tb sh -c 'gear archive localhost/app1 v1 > /root/v1.zip'
assert_eq "one" "$(tb busybox unzip -p /root/v1.zip app1-v1/a.txt)" "a.txt in the tag's zip"
assert_eq "deep" "$(tb busybox unzip -p /root/v1.zip app1-v1/sub/b.txt)" "sub/b.txt in the tag's zip"
tb sh -c "gear archive --format tar.gz localhost/app1 ${first:0:10} > /root/first.tgz"
assert_eq "one" "$(tb tar -xzOf /root/first.tgz app1-${first:0:10}/a.txt)" "the first commit by its abbreviated id"
tb sh -c "gear archive --format tar.gz localhost/app1 $second > /root/second.tgz"
assert_eq "two" "$(tb tar -xzOf /root/second.tgz app1-$second/a.txt)" "the second commit by its full id"
assert_eq "application/gzip" "$(tb curl -sS -o /root/main.tgz -w '%{content_type}' "$api/repository/app1/archive/main?format=tar.gz")"
assert_eq "two" "$(tb tar -xzOf /root/main.tgz app1-main/a.txt)" "the branch"
code=$(tb curl -sS -o /tmp/out -w '%{http_code}' $api/repository/app1/archive/nope)
assert_eq 404 "$code" "an unknown ref"
assert_contains "$(tb cat /tmp/out)" "repository app1 has no branch, tag or commit 'nope'"
code=$(tb curl -sS -o /tmp/out -w '%{http_code}' "$api/repository/app1/archive/--output=x")
assert_eq 400 "$code" "a ref that is an option"
out=$(tb sh -c 'gear archive localhost/app1 nope > /root/nope.zip' 2>&1) && fail "archive of an unknown ref"
assert_contains "$out" "(404)"

step "create from a local path (and a file:// URL) with progress; an unreadable source leaves nothing"
tb sh -c 'rm -rf /srv/src && cp -a /root/work /srv/src && chmod -R a+rX /srv/src'
out=$(tb gear create-repo localhost/app2 --from /srv/src 2>&1)
assert_contains "$out" "localhost/app2: Cloning into bare repository"
assert_contains "$out" "localhost/app2: created (HEAD main)"
out=$(tb gear create-repo localhost/app3 --from file:///srv/src 2>&1)
assert_contains "$out" "Receiving objects: 100%"
assert_eq "$second" "$(tb git --git-dir=/var/lib/containers/git/app3 rev-parse main)" "app3's main"
out=$(tb gear create-repo localhost/app4 --from /root/work 2>&1) && fail "cloned what git-app4 cannot read"
assert_contains "$out" "git clone /root/work failed"
tb test ! -e /var/lib/containers/git/app4 || fail "app4 is left"
tb id git-app4 >/dev/null 2>&1 && fail "user git-app4 is left"
out=$(tb gear create-repo localhost/app4 --from 'ext::sh -c id' 2>&1) && fail "ext:: accepted"
assert_contains "$out" "refused"
list=$(tb gear list-repos)
assert_contains "$list" "localhost/app2  main  git-app2@localhost:~"
[[ $list != *app4* ]] || fail "app4 listed"
tb curl -fsS $api/repositories | grep -q '"Id":"app3","Login":"git-app3","Head":"main"' || fail "GET /repositories"
tb curl -fsS -X PUT -H 'Content-Type: application/json' -d "{\"Keys\":[{\"Type\":\"authorized_keys\",\"Value\":\"$(tb cat /root/kb.pub)\"}],\"Permissions\":[{\"Type\":\"repository\",\"With\":{\"Id\":\"app2\",\"Write\":true}}]}" $api/keys >/dev/null
tb rm -rf /root/clone-b
tgit kb clone -q git-app2@127.0.0.1:~ /root/clone-b
assert_eq "two" "$(tb cat /root/clone-b/a.txt)" "app2 cloned over ssh"

step "no shell for a repository user, whatever the client asks"
for cmd in sh "sh -c id" "cat /etc/passwd" "git-upload-pack '~'; id" "git config --list"; do
  rc=0; out=$(tb $SSH -i /root/kw git-app1@127.0.0.1 "$cmd" 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "ssh git-app1 '$cmd' succeeded: $out"
  assert_contains "$out" "is not allowed: only git-upload-pack, git-upload-archive and git-receive-pack run here"
done
rc=0; out=$(tb $SSH -i /root/kw git-app1@127.0.0.1 </dev/null 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a login shell"
assert_contains "$out" "this key reaches Git repository app1 only, no shell"
rc=0; out=$(tb $SSH -tt -i /root/kw git-app1@127.0.0.1 </dev/null 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a login shell with a pty"

step "repository A's user and keys cannot touch repository B"
rc=0; tb $SSH -i /root/kw git-app2@127.0.0.1 "git-upload-pack '~'" </dev/null >/dev/null 2>&1 || rc=$?
assert_eq 255 "$rc" "app1's key as git-app2"
out=$(tgit kw ls-remote git-app1@127.0.0.1:/var/lib/containers/git/app2 2>&1) && fail "app1's user read app2"
assert_contains "$out" "is not repository app1"
out=$(tgit kw -C /root/work push git-app1@127.0.0.1:app2 main 2>&1) && fail "app1's user pushed to app2"
assert_contains "$out" "is not repository app1"
out=$(tb setpriv --reuid git-app1 --regid git-app1 --clear-groups ls /var/lib/containers/git/app2 2>&1) && fail "git-app1 lists app2"
assert_contains "$out" "Permission denied"
out=$(tb setpriv --reuid git-app1 --regid git-app1 --clear-groups env "SSH_ORIGINAL_COMMAND=git-receive-pack '/var/lib/containers/git/app2'" /usr/libexec/gear/gear-git-shell write 2>&1) && fail "gear-git-shell for app2 as git-app1"
assert_contains "$out" "is not repository app1"
out=$(tb env "SSH_ORIGINAL_COMMAND=git-upload-pack '~'" /usr/libexec/gear/gear-git-shell write 2>&1) && fail "gear-git-shell as root"
assert_contains "$out" "uid 0 is not the user of a Git repository"

step "an interrupted clone leaves nothing: no directory, no user, no git"
# A git:// server that accepts and never answers: the clone waits until gear is stopped.
tb setsid -f sh -c 'sleep 30 | timeout 30 busybox nc -l -p 9418 >/dev/null 2>&1'
wait_until 5 tb sh -c 'ss -ltn | grep -q ":9418 "'
tb setsid -f sh -c 'timeout -s INT 4 gear create-repo localhost/slow --from git://127.0.0.1:9418/x >/tmp/slow.out 2>&1'
wait_until 5 tb sh -c 'ls -a /var/lib/containers/git | grep -q "^.new-slow-"'
tb id git-slow >/dev/null || fail "git-slow was not made while cloning"
tb pgrep -f "clone --bar[e] --progress --no-hardlinks -- git://127.0.0.1:9418" >/dev/null || fail "no git clone running"
wait_until 15 tb sh -c '! ls -a /var/lib/containers/git | grep -q "slow"'
wait_until 5 tb sh -c '! id git-slow'
wait_until 5 tb sh -c '! pgrep -f "clone --bar[e].*9418"'
assert_contains "$(tb cat /tmp/slow.out)" "Cloning into bare repository"
[[ $(tb gear list-repos) != *slow* ]] || fail "slow listed"

step "delete removes the repository, its keys and its user"
out=$(tb gear delete-repo localhost/app1 localhost/app2 localhost/app3)
assert_contains "$out" "localhost/app1: deleted"
for r in app1 app2 app3; do
  tb test ! -e /var/lib/containers/git/$r || fail "$r is left"
  tb test ! -e /var/lib/containers/keys/git/$r || fail "keys of $r are left"
  tb id git-$r >/dev/null 2>&1 && fail "user git-$r is left"
done
assert_eq "" "$(tb ls -A /var/lib/containers/git)" "what is left in /var/lib/containers/git"
out=$(tb gear delete-repo localhost/app1 2>&1) && fail "deleted twice"
assert_contains "$out" "no repository app1 (404)"
echo OK
