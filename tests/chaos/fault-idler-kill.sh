#!/usr/bin/env bash
# gear-idler killed (kill -9) six times at random points while a container idles (after
# 2 s without traffic) and is woken by connections every 4 s, and gear installs, starts
# and stops others. systemd restarts the idler within a second; a connection refused while
# it is away is tried again, as a client would. At the end the container must answer (it
# wakes, or runs), and its mark, unit and rules must agree.
source "$(dirname "$0")/lib.sh"
port=18700
chaos_begin
tb systemctl enable --now gear-idler.service >/dev/null 2>&1
tb gear install gear-test/httpd:latest localhost/sleepy-1 --start -p 8080:$port --idle-after 2s >/dev/null
# Connections that wake it: each is a request of the matrix (a 20 s bound, 5 tries).
tbsh "setsid sh -c 'while [ ! -e /tmp/chaos/stop ]; do
  t=0; s=\$(date +%s%N)
  while :; do t=\$((t+1)); curl -s -o /dev/null -m 20 http://127.0.0.1:$port/; rc=\$?
    case \$rc in 7|52|56) [ \$t -lt 5 ] && { sleep 1; continue; } ;; esac; break; done
  code=200; [ \$rc = 0 ] || code=000
  echo \"wake sleepy-1 \$code \$rc \$t \$(( (\$(date +%s%N) - s) / 1000000 ))\" >> /tmp/chaos/wakes
  sleep 4
done' </dev/null >/dev/null 2>&1 &"
tbsh 'for i in 1 2 3 4 5 6; do
  sleep $(( $(od -An -N1 -tu1 /dev/urandom) % 3 + 2 )).$(( $(od -An -N1 -tu1 /dev/urandom) % 9 ))
  pid=$(systemctl show -P MainPID gear-idler.service)
  [ "$pid" != 0 ] && kill -9 "$pid"
done'
wait_until 15 tb systemctl is-active gear-idler.service
wait_until 30 tb curl -fsS -m 20 -o /dev/null http://127.0.0.1:$port/
echo "wakes: $(tb cat /tmp/chaos/wakes | wc -l), without an answer: $(tb cat /tmp/chaos/wakes | awk '$4 != 0' | wc -l)"
chaos_end "gear-idler killed (6 x kill -9, idle/wake)"
