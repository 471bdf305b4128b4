#!/bin/bash
# keys.sh — runs inside the bench machine (fed by run.sh on stdin). Prints a markdown table:
# how long gear-keys, sshd's AuthorizedKeysCommand (run at every key login), takes with
# 1000 keys on the host, as the unprivileged gear-keys user. The target is under 10 ms.
set -euo pipefail
api=http://127.0.0.1:43273
N=1000
ns() { date +%s%N; }
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; print v[i]}'; }

systemctl daemon-reload
systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
systemd-sysusers
gear install gear-test/httpd:latest localhost/keys-1 --isolate -p 8080:0 >/dev/null
dir=$(mktemp -d)
for i in $(seq $N); do ssh-keygen -q -t ed25519 -N '' -C "bench$i" -f "$dir/$i"; done
cat "$dir"/*.pub > "$dir/all"
gear add-keys --key-file "$dir/all" localhost/keys-1 >/dev/null
as_keys() { setpriv --reuid gear-keys --regid gear-keys --clear-groups /usr/libexec/gear/gear-keys "$@"; }
n=$(as_keys ctr-keys-1 | wc -l)
[ "$n" = $N ] || { echo "gear-keys printed $n keys, not $N" >&2; exit 1; }
# One process per call, as sshd runs it (fork and exec of setpriv included).
times=$(for _ in $(seq 200); do t0=$(ns); as_keys ctr-keys-1 >/dev/null; echo $(( $(ns) - t0 )); done)
miss=$(for _ in $(seq 200); do t0=$(ns); as_keys ctr-nope >/dev/null 2>&1; echo $(( $(ns) - t0 )); done)
ms() { awk '{printf "%.2f", $1/1e6}'; }
echo
echo "| gear-keys (sshd's AuthorizedKeysCommand), $N keys, 200 runs | median | p95 |"
echo "|---|---|---|"
echo "| a container's login, $N keys printed | $(echo "$times" | pct 50 | ms) ms | $(echo "$times" | pct 95 | ms) ms |"
echo "| an unknown user, nothing printed | $(echo "$miss" | pct 50 | ms) ms | $(echo "$miss" | pct 95 | ms) ms |"
gear delete localhost/keys-1 >/dev/null
rm -rf "$dir"
