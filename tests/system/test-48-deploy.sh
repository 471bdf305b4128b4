#!/usr/bin/env bash
# gear deploy over two machines: both fixtures come up with working links, redeploying
# (the file or the instances file) changes nothing, a smaller count removes instances but
# never a container the deployment did not make, a container it did not make with one of
# its ids stops the deploy, the instances file is the user's alone, and an unreachable host
# stops the deploy before anything changes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

token=0123456789abcdef0123456789abcdef
peer() { "$TESTBED" exec "$PEER" "$@"; }
on() { local m=$1; shift; "$TESTBED" exec "$m" "$@"; }
# What instance ID (on machine M) gets from ADDRESS:PORT inside itself.
fetch() { on "$1" docker exec "ctr-$2" sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $3 $4" | tail -1; }
deploy() { tb sh -c "cd /root && GEAR_TOKEN=$token gear --timeout 20s deploy $*"; }
# Each instance serves its own id, so a test can tell who answered.
name_pages() { for i in "$@"; do on "${i%%/*}" docker exec "ctr-${i#*/}" sh -c "echo ${i#*/} > /www/index.html"; done; }
started() { on "$1" systemctl show -P ExecMainStartTimestampMonotonic "ctr-$2.service"; }
# The CLI's pins and tokens for the peer go with it: later tests share this machine.
trap 'tb rm -f /root/.config/gear/hosts /root/.config/gear/token >/dev/null 2>&1 || true; "$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT

step "two agents on the bridge, sharing a token, each with a certificate the CLI pins"
"$TESTBED" up "$PEER" --bridge --stage "$STAGE" >/dev/null
"$TESTBED" images "$PEER" >/dev/null
ip1=$("$TESTBED" ip "$MACHINE"); ip2=$("$TESTBED" ip "$PEER")
tb mkdir -p /root/.config/gear
tb rm -f /root/.config/gear/hosts /root/.config/gear/token
for m in "$MACHINE" "$PEER"; do
  ip=$("$TESTBED" ip "$m")
  on "$m" sh -c "mkdir -p /etc/gear /etc/systemd/system/gear-api.socket.d && umask 077 && echo $token > /etc/gear/tokens"
  fp=$(on "$m" gear init-tls --name "$ip" 2>/dev/null)
  tb sh -c "echo '$ip fingerprint=$fp' >> /root/.config/gear/hosts"
  on "$m" systemctl stop gear-api.service
  on "$m" sh -c "printf '[Socket]\nListenStream=$ip:43273\nFreeBind=yes\n' > /etc/systemd/system/gear-api.socket.d/listen.conf"
  on "$m" systemctl daemon-reload
  on "$m" systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
  on "$m" systemctl restart gear-api.socket
  on "$m" docker tag gear-test/httpd:latest openshift/busybox-http-app
done
tb mkdir -p /root/deployment/fixtures
for f in simple_deploy.json replica_set.json; do
  tb sh -c "cat > /root/deployment/fixtures/$f" < "$(dirname "$0")/../../deployment/fixtures/$f"
done

step "an unreachable host stops the deploy before anything changes"
out=$(tb sh -c "cd /root && GEAR_TOKEN=$token gear --timeout 3s deploy deployment/fixtures/simple_deploy.json $ip1 10.231.77.250" 2>&1) && fail "deploy to a dead host succeeded"
assert_contains "$out" "nothing was changed: not every host answered"
[[ $(tb curl -fsS 'http://127.0.0.1:43273/containers?all=1') != *'"Id":"web-'* ]] || fail "a web instance was installed"

step "simple_deploy: two web instances, one per machine, linked by port"
out=$(deploy deployment/fixtures/simple_deploy.json "$ip1" "$ip2")
assert_contains "$out" "==> web-1 on $ip1: installed"
assert_contains "$out" "==> web-2 on $ip2: installed"
assert_contains "$out" "recorded in simple_deploy.instances.json"
name_pages "$MACHINE/web-1" "$PEER/web-2"
assert_eq web-2 "$(fetch "$MACHINE" web-1 127.0.0.1 8081)" "web-1 -> 127.0.0.1:8081"
assert_eq web-1 "$(fetch "$PEER" web-2 127.0.0.1 8080)" "web-2 -> 127.0.0.1:8080"
assert_contains "$(tb cat /root/simple_deploy.instances.json)" "\"On\": \"$ip2\""
assert_eq 600 "$(tb stat -c %a /root/simple_deploy.instances.json)" "the instances file's mode"

step "redeploying the file, then the instances file, changes nothing"
t1=$(started "$MACHINE" web-1); t2=$(started "$PEER" web-2)
out=$(deploy deployment/fixtures/simple_deploy.json "$ip1" "$ip2")
assert_contains "$out" "==> web-1 on $ip1: unchanged"
assert_contains "$out" "==> web-2 on $ip2: unchanged"
for word in installed updated started restarted linking deleted; do
  [[ $out != *"$word"* ]] || fail "redeploy said '$word': $out"
done
out=$(deploy simple_deploy.instances.json "$ip1" "$ip2")
assert_contains "$out" "==> web-2 on $ip2: unchanged"
assert_eq "$t1" "$(started "$MACHINE" web-1)" "web-1 start time"
assert_eq "$t2" "$(started "$PEER" web-2)" "web-2 start time"
assert_eq web-2 "$(fetch "$MACHINE" web-1 127.0.0.1 8081)"

step "replica_set: three members over two machines, each linked to all at 192.168.1.x"
out=$(deploy deployment/fixtures/replica_set.json "$ip1" "$ip2")
assert_contains "$out" "==> db-3 on $ip1: installed"
name_pages "$MACHINE/db-1" "$PEER/db-2" "$MACHINE/db-3"
assert_eq db-2 "$(fetch "$MACHINE" db-1 192.168.1.2 8080)" "db-1 -> db-2"
assert_eq db-3 "$(fetch "$MACHINE" db-1 192.168.1.3 8080)" "db-1 -> db-3"
assert_eq db-1 "$(fetch "$PEER" db-2 192.168.1.1 8080)" "db-2 -> db-1"
assert_eq rs0 "$(on "$PEER" docker exec ctr-db-2 sh -c 'echo $REPLICA_SET')"

step "a smaller count removes the extra instance, never a container the deployment did not make"
peer gear install gear-test/httpd:latest localhost/db-4 --start >/dev/null
t1=$(started "$MACHINE" db-1)
tb sh -c "sed 's/\"Count\": 3/\"Count\": 2/' /root/deployment/fixtures/replica_set.json > /root/rs2.json"
out=$(deploy rs2.json "$ip1" "$ip2" --out replica_set.instances.json)
assert_contains "$out" "==> db-3 on $ip1: deleted"
[[ $out != *db-4* ]] || fail "the deploy touched db-4: $out"
assert_eq "$t1" "$(started "$MACHINE" db-1)" "db-1 start time"
tb test ! -e /var/lib/containers/units/ctr-db-3.service || fail "db-3 still installed"
assert_eq active "$(peer systemctl is-active ctr-db-4.service)" "the hand-made db-4"

step "containers it did not make with its ids stop a deploy before any change"
# Another deployment (another instances file) with the same ids finds db-1 and db-2.
t2=$(started "$PEER" db-2)
out=$(deploy deployment/fixtures/replica_set.json "$ip1" "$ip2" --out other.instances.json 2>&1) && fail "deployed over containers it did not make"
assert_contains "$out" "nothing was changed: "
assert_contains "$out" "$ip2/db-2"
assert_contains "$out" "not made by this deployment"
assert_eq "$t2" "$(started "$PEER" db-2)" "db-2 start time"
tb test ! -e /root/other.instances.json || fail "a refused deploy wrote its instances file"

step "a changed container is updated and restarted; its links stay"
tb sh -c "sed 's/\"rs0\"/\"rs1\"/' /root/rs2.json > /root/rs3.json"
out=$(deploy rs3.json "$ip1" "$ip2" --out replica_set.instances.json)
assert_contains "$out" "==> db-1 on $ip1: updated"
assert_contains "$out" "==> db-2 on $ip2: restarted"
assert_eq rs1 "$(on "$PEER" docker exec ctr-db-2 sh -c 'echo $REPLICA_SET')"
name_pages "$MACHINE/db-1" "$PEER/db-2"
assert_eq db-2 "$(fetch "$MACHINE" db-1 192.168.1.2 8080)" "db-1 -> db-2 after the update"

step "clean up"
for i in "$MACHINE/web-1" "$PEER/web-2" "$MACHINE/db-1" "$PEER/db-2" "$PEER/db-4"; do on "${i%%/*}" gear delete "localhost/${i#*/}" >/dev/null; done
