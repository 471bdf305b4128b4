#!/usr/bin/env bash
# The disk under /var/lib/containers full while gear installs, starts and stops: a request
# that needs to write answers a clear error (507 Insufficient Storage), nothing is left half
# written, running containers keep running, and once space is freed installs work again.
# The disk is a 16 MB tmpfs mounted over /var/lib/containers with gear's state copied in,
# kept full by a file for 6 s.
source "$(dirname "$0")/lib.sh"
CHAOS_WARMUP=0 chaos_begin
tb touch /tmp/chaos/stop
wait_until 120 sh -c "! $TESTBED exec $MACHINE pgrep -f /tmp/chaos/load.sh"
tbsh 'rm -f /tmp/chaos/stop
  cp -a /var/lib/containers /tmp/chaos/state
  mount -t tmpfs -o size=16m,mode=0755 gear-chaos-disk /var/lib/containers
  cp -a /tmp/chaos/state/. /var/lib/containers/
  setsid sh /tmp/chaos/load.sh busy </dev/null >/dev/null 2>&1 &'
sleep 3
# Kept full: a delete frees a few pages, which the filler takes back within 0.1 s.
tbsh 'setsid sh -c "while [ ! -e /tmp/chaos/freed ]; do cat /dev/zero >> /var/lib/containers/fill 2>/dev/null; sleep 0.1; done" </dev/null >/dev/null 2>&1 &'
sleep 6
tbsh 'df -h /var/lib/containers | tail -1; touch /tmp/chaos/freed; sleep 0.3'
during=$(tb sh -c 'grep -c " 507 " /tmp/chaos/requests || true')
echo "answered 507 while the disk was full: $during"
tb rm -f /var/lib/containers/fill
chaos_end "disk under /var/lib/containers full (6 s)"
rc=$?
step "after space is freed, an install works"
tb gear install gear-test/httpd:latest localhost/after-full --start >/dev/null
assert_eq active "$(tb systemctl is-active ctr-after-full.service)"
exit $rc
