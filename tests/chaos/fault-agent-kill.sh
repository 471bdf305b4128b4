#!/usr/bin/env bash
# gear-api killed (kill -9) eight times at random points of install, link, start, stop and
# delete. The socket stays with systemd, so the next connection starts a fresh agent; a
# client that lost its answer asks again with the same X-Request-Id.
source "$(dirname "$0")/lib.sh"
chaos_begin
tbsh 'for i in 1 2 3 4 5 6 7 8; do
  sleep 0.$(( $(od -An -N1 -tu1 /dev/urandom) % 9 + 1 ))
  pid=$(systemctl show -P MainPID gear-api.service)
  [ "$pid" != 0 ] && kill -9 "$pid"
  sleep 0.5
done'
chaos_end "gear-api killed (8 x kill -9)"
