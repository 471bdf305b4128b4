#!/usr/bin/env bash
# A reboot of one of two machines in the middle of `gear deploy` (six linked instances over
# both): the interrupted deploy ends with a clear error, never a hang, and the next deploy
# of the same file converges: every instance installed once, running, and nothing half
# installed or leaked on either machine.
source "$(dirname "$0")/lib.sh"
token=0123456789abcdef0123456789abcdef
on() { local m=$1; shift; "$TESTBED" exec "$m" "$@"; }
deploy() { tb sh -c "cd /root && GEAR_TOKEN=$token timeout 120 gear --timeout 20s deploy $*"; }
trap '"$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT

"$TESTBED" up "$PEER" --bridge --stage "$STAGE" >/dev/null
"$TESTBED" images "$PEER" >/dev/null
ip1=$("$TESTBED" ip "$MACHINE"); ip2=$("$TESTBED" ip "$PEER")
for m in "$MACHINE" "$PEER"; do
  ip=$("$TESTBED" ip "$m")
  on "$m" sh -c "mkdir -p /etc/gear /etc/systemd/system/gear-api.socket.d && umask 077 && echo $token > /etc/gear/tokens"
  on "$m" sh -c "printf '[Socket]\nListenStream=$ip:43273\nFreeBind=yes\n' > /etc/systemd/system/gear-api.socket.d/listen.conf"
  on "$m" systemctl daemon-reload
  on "$m" systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
  on "$m" systemctl restart gear-api.socket
  on "$m" docker tag gear-test/httpd:latest openshift/busybox-http-app
done
tb mkdir -p /root/deployment/fixtures
sed 's/"Count": 3/"Count": 6/' "$CHAOS/../../deployment/fixtures/replica_set.json" | tb sh -c 'cat > /root/rs6.json'

step "deploy, and reboot $PEER in the middle of it"
start=$SECONDS
deploy rs6.json "$ip1" "$ip2" > /tmp/chaos-deploy1.$$ 2>&1 &
deploying=$!
sleep 1.5
"$TESTBED" reboot "$PEER" >/dev/null
rc=0; wait "$deploying" || rc=$?
failed=0
[ "$rc" = 124 ] && failed=1   # the deploy hung (timeout killed it)
echo "first deploy: exit $rc after $((SECONDS - start)) s"; sed 's/^/  | /' /tmp/chaos-deploy1.$$ | tail -8
rm -f /tmp/chaos-deploy1.$$

step "the next deploy converges"
t_up=$(ms)
out=$(deploy rs6.json "$ip1" "$ip2" 2>&1) || { echo "$out"; fail "the second deploy failed"; }
t_ok=$(ms)
echo "$out" | tail -8 | sed 's/^/  | /'
lost=0
for i in 1 2 3 4 5 6; do
  if on "$MACHINE" test -e /var/lib/containers/units/ctr-db-$i.service; then m=$MACHINE; else m=$PEER; fi
  on "$m" test -e /var/lib/containers/units/ctr-db-$i.service || { echo "  db-$i is installed nowhere"; lost=$((lost + 1)); continue; }
  if on "$MACHINE" test -e /var/lib/containers/units/ctr-db-$i.service && on "$PEER" test -e /var/lib/containers/units/ctr-db-$i.service; then
    echo "  db-$i is installed on both machines"; lost=$((lost + 1))
  fi
  [ "$(on "$m" systemctl is-active ctr-db-$i.service || true)" = active ] || { echo "  db-$i on $m is not running"; lost=$((lost + 1)); }
done
leaks=$(for m in "$MACHINE" "$PEER"; do on "$m" sh -s < "$CHAOS/check.sh"; done)
[ -z "$leaks" ] || echo "$leaks" | sed 's/^/  leak: /'
survived=yes
[ "$lost" = 0 ] && [ "$failed" = 0 ] && [ -z "$leaks" ] || survived=no
recovery=$(awk -v d=$((t_ok - t_up)) 'BEGIN { printf "%.1f s", d / 1000 }')
printf 'RESULT|%s|%s|%s|%s|%s|%s|%s\n' "reboot of one machine during gear deploy" "$survived" "$lost" \
  "$failed" "$recovery (next deploy)" "2 deploys" "$(echo "$leaks" | grep -c . || true)"
[ "$survived" = yes ]
