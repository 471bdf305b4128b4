#!/usr/bin/env bash
# SSH into containers with the real sshd and ssh client: keys added with gear add-keys log
# in as ctr-ID to isolated containers only, run commands (exit status kept) and shells
# with a pty (window size, Ctrl-C) in their own container, forward only its published
# ports; a revoked key or another container's key is refused; a corrupted key line costs
# only that key; no file of gear's is setuid; gear-keys answers 1000 keys in under 10 ms.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

api=http://127.0.0.1:43273
SSH="ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5"
tb systemctl daemon-reload
tb systemctl enable --now gear-api.socket container-active.target gear-enter.socket >/dev/null 2>&1

step "sshd takes the drop-in: gear-keys as AuthorizedKeysCommand, run as the gear-keys user"
# What a package's scriptlet does after installing sysusers.d/gear.conf (at boot,
# systemd-sysusers runs only when /usr was updated).
tb systemd-sysusers
tb id gear-keys >/dev/null || fail "sysusers.d did not create gear-keys"
tb systemctl restart ssh.service
wait_until 10 tb sh -c 'ss -ltn | grep -q ":22 "'
conf=$(tb sshd -T)
assert_contains "$conf" "authorizedkeyscommand /usr/libexec/gear/gear-keys %u"
assert_contains "$conf" "authorizedkeyscommanduser gear-keys"

step "isolated containers run as their own user"
tb gear install gear-test/httpd:latest localhost/ssh-a --isolate --start -p 8080:0 >/dev/null
tb gear install gear-test/httpd:latest localhost/ssh-b --isolate --start -p 8080:0 >/dev/null
tb gear install gear-test/httpd:latest localhost/ssh-plain --start -p 8080:0 >/dev/null
uid_a=$(tb id -u ctr-ssh-a); gid_a=$(tb id -g ctr-ssh-a); uid_b=$(tb id -u ctr-ssh-b)
[ "$uid_a" != "$uid_b" ] || fail "two containers share uid $uid_a"
assert_eq "$uid_a:$gid_a" "$(tb docker inspect -f '{{.Config.User}}' ctr-ssh-a)" "docker --user"
assert_eq "$uid_a" "$(tb docker exec ctr-ssh-a id -u)" "uid of the container's processes"
assert_eq "*" "$(tb getent shadow ctr-ssh-a | cut -d: -f2)" "password field"
assert_eq "/var/lib/containers/home/ssh-a" "$(tb getent passwd ctr-ssh-a | cut -d: -f6)"
port_a=$(tb curl -fsS $api/container/ssh-a/ports | sed -n 's/.*"External":\([0-9]*\).*/\1/p')
port_b=$(tb curl -fsS $api/container/ssh-b/ports | sed -n 's/.*"External":\([0-9]*\).*/\1/p')
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS "http://127.0.0.1:$port_a/")"

step "keys: add, list with ssh-keygen's fingerprints; a bad key is a 400 naming it"
for k in k1 k2 kb; do tb ssh-keygen -q -t ed25519 -N '' -C "$k@test" -f /root/$k; done
out=$(tb gear add-keys --key-file /root/k1.pub --key-file /root/k2.pub localhost/ssh-a)
assert_contains "$out" "localhost/ssh-a: 2 key(s) added"
tb gear add-keys --key-file /root/kb.pub localhost/ssh-b >/dev/null
fp1=$(tb ssh-keygen -lf /root/k1.pub | cut -d' ' -f2)
list=$(tb gear list-keys localhost/ssh-a)
assert_contains "$list" "localhost/ssh-a  $fp1  ssh-ed25519  k1@test"
assert_eq 2 "$(echo "$list" | wc -l)" "keys listed"
k1=$(tb cat /root/k1.pub)
body="{\"Keys\":[{\"Type\":\"authorized_keys\",\"Value\":\"$(tb cat /root/k2.pub)\"},{\"Type\":\"authorized_keys\",\"Value\":\"command=\\\"/bin/sh\\\" $k1\"}],\"Permissions\":[{\"Type\":\"container\",\"With\":\"ssh-b\"}]}"
code=$(tb curl -sS -o /tmp/out -w '%{http_code}' -X PUT -H 'Content-Type: application/json' -d "$body" $api/keys)
assert_eq 400 "$code" "a key with options"
assert_contains "$(tb cat /tmp/out)" "key 2 ('command=\\\"/bin/sh\\\" ssh-ed...'): "
assert_eq 1 "$(tb gear list-keys localhost/ssh-b | wc -l)" "keys of ssh-b after the refused request"
out=$(tb gear add-keys --key-file /root/k1.pub localhost/ssh-plain 2>&1) && fail "a key for a container that is not isolated"
assert_contains "$out" "not isolated"

step "gear-keys prints only restricted keys of the login, as the gear-keys user"
keys=$(tb setpriv --reuid gear-keys --regid gear-keys --clear-groups /usr/libexec/gear/gear-keys ctr-ssh-a)
assert_eq 2 "$(echo "$keys" | wc -l)" "lines for ctr-ssh-a"
assert_contains "$keys" "command=\"/usr/libexec/gear/gear-enter\",restrict,pty,port-forwarding,permitopen=\"127.0.0.1:$port_a\""
for user in root ctr-ssh-plain ctr-nope nobody; do
  assert_eq "" "$(tb /usr/libexec/gear/gear-keys $user 2>/dev/null)" "gear-keys $user"
done

step "a command runs in the container, as its user; its exit status is ssh's"
want=$(tb docker exec ctr-ssh-a cat /etc/hostname)
assert_eq "$want" "$(tb $SSH -i /root/k1 ctr-ssh-a@127.0.0.1 'cat /etc/hostname')" "container's /etc/hostname"
[ "$want" != "$(tb cat /etc/hostname)" ] || fail "the host's hostname, not the container's"
assert_eq "$uid_a" "$(tb $SSH -i /root/k1 ctr-ssh-a@127.0.0.1 'id -u')"
assert_eq "through stdin" "$(echo 'through stdin' | tb $SSH -i /root/k1 ctr-ssh-a@127.0.0.1 cat)"
rc=0; tb $SSH -i /root/k1 ctr-ssh-a@127.0.0.1 'exit 7' || rc=$?
assert_eq 7 "$rc" "ssh's exit status"
# No command: a login shell reading stdin.
assert_eq "shell $want" "$(echo 'echo shell $(cat /etc/hostname)' | tb $SSH -i /root/k1 ctr-ssh-a@127.0.0.1)"

step "an interactive shell has a pty; Ctrl-C reaches the program; the window size follows"
# The typed input is echoed back, so what must appear only when run is computed ('af''ter').
t0=$SECONDS
out=$(tb sh -c "(sleep 2; printf 'tty; sleep 30; echo af\"\"ter\n'; sleep 1.5; printf '\003'; sleep 1; printf 'echo alive \$((6*7)); exit 3\n'; sleep 2) | $SSH -tt -i /root/k1 ctr-ssh-a@127.0.0.1" 2>&1) && rc=0 || rc=$?
[ $((SECONDS - t0)) -lt 20 ] || fail "Ctrl-C did not end sleep 30"
echo "$out" | tail -n 5
assert_eq 3 "$rc" "exit status of the interactive shell"
assert_contains "$out" "/dev/pts/"
assert_contains "$out" "alive 42"
[[ $out != *after* ]] || fail "sleep was not interrupted by Ctrl-C"
# script(1) gives ssh a terminal; stty changes its size while the session runs. (The
# first stty waits a second: right at the start of docker exec -t, busybox's stty once
# failed on its terminal.)
out=$(tb script -qfec "stty rows 20 cols 50; ($SSH -tt -i /root/k1 ctr-ssh-a@127.0.0.1 'sleep 1; stty size; sleep 3; stty size' </dev/tty &) ; sleep 3; stty rows 33 cols 77; sleep 4" /dev/null | tr -d '\r')
assert_contains "$out" "20 50"
assert_contains "$out" "33 77"

step "forwarding reaches the container's published ports only"
tb sh -c "$SSH -f -N -L 127.0.0.1:9101:127.0.0.1:$port_a -L 127.0.0.1:9102:127.0.0.1:$port_b -i /root/k1 ctr-ssh-a@127.0.0.1"
assert_eq "hello from gear-test/httpd" "$(tb curl -fsS --max-time 5 http://127.0.0.1:9101/)" "forwarded own port"
tb curl -fsS --max-time 5 http://127.0.0.1:9102/ >/dev/null 2>&1 && fail "forwarded another container's port"
tb pkill -f -- "-L 127.0.0.1:9101" || true

step "a user can never enter another container"
rc=0; tb $SSH -i /root/kb ctr-ssh-a@127.0.0.1 true 2>/dev/null || rc=$?
assert_eq 255 "$rc" "ssh-b's key as ctr-ssh-a"
rc=0; tb $SSH -i /root/k1 ctr-ssh-b@127.0.0.1 true 2>/dev/null || rc=$?
assert_eq 255 "$rc" "ssh-a's key as ctr-ssh-b"
# The socket is open to all; the caller's uid alone chooses the container.
out=$(tb sh -c 'SSH_ORIGINAL_COMMAND=id /usr/libexec/gear/gear-enter' 2>&1) && fail "root entered a container"
assert_contains "$out" "uid 0 is not the user of a container"
assert_eq "$want" "$(tb setpriv --reuid ctr-ssh-a --regid ctr-ssh-a --clear-groups env SSH_ORIGINAL_COMMAND='cat /etc/hostname' /usr/libexec/gear/gear-enter)"

step "a corrupted key line costs that key only; a revoked key is refused"
b64=$(tb cut -d' ' -f2 /root/k1.pub)
tb sed -i "s|$b64|AAAAbroken|" /var/lib/containers/keys/ssh-a
rc=0; tb $SSH -i /root/k1 ctr-ssh-a@127.0.0.1 true 2>/dev/null || rc=$?
assert_eq 255 "$rc" "login with the corrupted key"
assert_eq "$want" "$(tb $SSH -i /root/k2 ctr-ssh-a@127.0.0.1 'cat /etc/hostname')" "the second key"
out=$(tb gear remove-keys --key-file /root/k2.pub localhost/ssh-a)
assert_contains "$out" "localhost/ssh-a: removed SHA256:"
rc=0; tb $SSH -i /root/k2 ctr-ssh-a@127.0.0.1 true 2>/dev/null || rc=$?
assert_eq 255 "$rc" "login with the revoked key"
out=$(tb gear remove-keys --key-file /root/k2.pub localhost/ssh-a 2>&1) && fail "revoking twice"
assert_contains "$out" "none of these keys"

step "no file of gear's is setuid, setgid or has file capabilities"
suid=$(tb find / -xdev -perm /6000 -type f 2>/dev/null)
echo "$suid" | sed 's/^/  setuid on the machine: /'
for f in $(tb sh -c 'ls /usr/bin/gear /usr/libexec/gear/*'); do
  [[ $suid != *"$f"* ]] || fail "$f is setuid/setgid"
done
assert_eq "" "$(tb sh -c 'getcap /usr/bin/gear /usr/libexec/gear/*')" "file capabilities"

step "gear-keys answers 1000 keys in under 10 ms"
tb sh -c 'rm -rf /tmp/bk && mkdir /tmp/bk && for i in $(seq 1000); do ssh-keygen -q -t ed25519 -N "" -C "bench$i" -f /tmp/bk/$i; done'
tb sh -c 'cat /tmp/bk/*.pub > /tmp/bk/all' 
tb gear add-keys --key-file /tmp/bk/all localhost/ssh-b >/dev/null
ms=$(tb bash -c 'n=$(setpriv --reuid gear-keys --regid gear-keys --clear-groups /usr/libexec/gear/gear-keys ctr-ssh-b | wc -l); [ "$n" -ge 1000 ] || { echo "only $n keys" >&2; exit 1; }
  t0=$(date +%s%N); for i in $(seq 50); do setpriv --reuid gear-keys --regid gear-keys --clear-groups /usr/libexec/gear/gear-keys ctr-ssh-b >/dev/null; done
  echo $(( ($(date +%s%N) - t0) / 50000 ))')
echo "gear-keys with 1001 keys: ${ms} us per call"
[ "$ms" -lt 10000 ] || fail "gear-keys took ${ms} us"

step "delete removes the user, its home and its keys"
tb gear delete localhost/ssh-b >/dev/null
tb id ctr-ssh-b >/dev/null 2>&1 && fail "user ctr-ssh-b is left"
tb test ! -e /var/lib/containers/keys/ssh-b || fail "keys of ssh-b are left"
tb test ! -e /var/lib/containers/home/ssh-b || fail "home of ssh-b is left"
tb gear delete localhost/ssh-a localhost/ssh-plain >/dev/null
echo OK
