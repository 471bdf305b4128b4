#!/bin/bash
# idle.sh — runs inside the bench machine (fed by run.sh on stdin). Prints a markdown table
# for docs/idling.md: wake latency of an idle container (first SYN to first byte) against a
# plain `systemctl start` of the same unit plus its first answer, alternating in one run;
# the same through every family and name a client uses (127.0.0.1, [::1], localhost, and a
# peer: another network namespace on a veth pair, as another host would come); waking from
# freeze; 50 concurrent first connections (answers, resets, timeouts); and what an idle
# container still costs.
set -euo pipefail
img=gear-test/httpd:latest
id=bench-idle
port=18200
url=http://127.0.0.1:$port/
R=15            # rounds of each latency measure
N=5             # rounds of each measure per family and name
C=50            # concurrent first connections
CR=3            # rounds of those

ns() { date +%s%N; }
# percentile P of the numbers on stdin (nearest rank)
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; print v[i]}'; }
ms() { awk '{printf "%.0f", $1/1e6}'; }

# The peer: its own network namespace, 10.77.0.2 and fd00:77::2, behind a veth pair whose
# machine end is 10.77.0.1 and fd00:77::1.
ip netns add gear-peer
ip link add gear-p0 type veth peer name gear-p1 netns gear-peer
ip addr add 10.77.0.1/24 dev gear-p0
ip -6 addr add fd00:77::1/64 dev gear-p0 nodad
ip link set gear-p0 up
ip -n gear-peer addr add 10.77.0.2/24 dev gear-p1
ip -n gear-peer -6 addr add fd00:77::2/64 dev gear-p1 nodad
ip -n gear-peer link set gear-p1 up
ip -n gear-peer link set lo up

systemctl daemon-reload
systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1
gear install $img localhost/$id --start -p 8080:$port >/dev/null
until curl -fsS -o /dev/null $url; do sleep 0.01; done

# One measure each, alternating, so both see the same machine state.
: > /tmp/plain.txt; : > /tmp/wake.txt; : > /tmp/thaw.txt
for _ in $(seq $R); do
  # Plain: the unit is stopped (no idle mark, no rules); start it by hand, poll until it answers.
  gear stop localhost/$id >/dev/null
  t0=$(ns)
  systemctl start ctr-$id.service
  until curl -fsS -o /dev/null $url 2>/dev/null; do sleep 0.005; done
  echo $(( $(ns) - t0 )) >> /tmp/plain.txt
  # Idle: stopped by the idler; one curl, whose first SYN is held until the container answers.
  gear start localhost/$id >/dev/null
  gear idle localhost/$id >/dev/null
  t0=$(ns)
  curl -fsS -o /dev/null -m 30 $url
  echo $(( $(ns) - t0 )) >> /tmp/wake.txt
  # Frozen: thawed by the first SYN.
  gear idle --freeze localhost/$id >/dev/null
  t0=$(ns)
  curl -fsS -o /dev/null -m 30 $url
  echo $(( $(ns) - t0 )) >> /tmp/thaw.txt
done
p=$(pct 50 < /tmp/plain.txt); w=$(pct 50 < /tmp/wake.txt)

# Every family and name: a plain start polled through it, then a wake through it, N times.
# `in` runs a command where the client is: here, or in the peer's namespace.
names=("127.0.0.1" "[::1]" "localhost" "10.77.0.1 (peer, IPv4)" "[fd00:77::1] (peer, IPv6)")
here() { "$@"; }
peer() { ip netns exec gear-peer "$@"; }
for i in "${!names[@]}"; do
  name=${names[$i]}; host=${name%% *}
  where=here; [[ $name == *peer* ]] && where=peer
  u=http://$host:$port/
  : > "/tmp/plain-$i.txt"; : > "/tmp/wake-$i.txt"
  for _ in $(seq $N); do
    gear stop localhost/$id >/dev/null
    t0=$(ns)
    systemctl start ctr-$id.service
    $where bash -c 'until curl -fsS -o /dev/null "$0" 2>/dev/null; do sleep 0.005; done' "$u"
    echo $(( $(ns) - t0 )) >> "/tmp/plain-$i.txt"
    gear start localhost/$id >/dev/null
    gear idle localhost/$id >/dev/null
    t0=$(ns)
    $where curl -fsS -o /dev/null -m 30 "$u"
    echo $(( $(ns) - t0 )) >> "/tmp/wake-$i.txt"
  done
done

# Concurrent first connections: curl's exit code tells answer (0), reset (56, 52, 7) or
# timeout (28).
: > /tmp/codes.txt
for _ in $(seq $CR); do
  gear idle localhost/$id >/dev/null
  for _ in $(seq $C); do
    ( rc=0; curl -fsS -o /dev/null -m 30 $url 2>/dev/null || rc=$?; echo $rc >> /tmp/codes.txt ) &
  done
  wait
done
total=$((C * CR))
answers=$(grep -cx 0 /tmp/codes.txt || true)
resets=$(grep -cxE '7|52|56' /tmp/codes.txt || true)
timeouts=$(grep -cx 28 /tmp/codes.txt || true)

# What an idle container costs: no container, no docker-proxy, nothing in its cgroup.
gear idle localhost/$id >/dev/null
containers=$(docker ps -q --filter name=^ctr-$id$ | wc -l)
proxies=$(pgrep -fc "docker-proxy.*-host-port $port" || true)
cg=/sys/fs/cgroup/systemd/container.slice/ctr-$id.service
tasks=$( { cat $cg/tasks 2>/dev/null || true; } | wc -l)
mark=$(du -b /var/lib/containers/idle/$id | cut -f1)
idler_rss=$(awk '/^VmRSS/ {print $2}' /proc/"$(systemctl show -P MainPID gear-idler.service)"/status)
gear delete localhost/$id >/dev/null
ip netns del gear-peer; ip link del gear-p0 2>/dev/null || true

cat <<EOT
| measure | result |
|---|---|
| plain \`systemctl start\` + first answer: p50 / p90 (of $R) | $(ms <<<"$p") ms / $(pct 90 < /tmp/plain.txt | ms) ms |
| wake from stop, first SYN to first byte: p50 / p90 (of $R) | $(ms <<<"$w") ms / $(pct 90 < /tmp/wake.txt | ms) ms |
| wake overhead over plain start, at the median | $(awk -v w="$w" -v p="$p" 'BEGIN {printf "%.0f", (w - p) / 1e6}') ms |
EOT
for i in "${!names[@]}"; do
  pp=$(pct 50 < "/tmp/plain-$i.txt"); ww=$(pct 50 < "/tmp/wake-$i.txt")
  echo "| through ${names[$i]}: plain start + first answer / wake, p50 (of $N) | $(ms <<<"$pp") ms / $(ms <<<"$ww") ms ($(awk -v w="$ww" -v p="$pp" 'BEGIN {printf "%.2f", w / p}')x) |"
done
cat <<EOT
| wake from freeze, first SYN to first byte: p50 / p90 (of $R) | $(pct 50 < /tmp/thaw.txt | ms) ms / $(pct 90 < /tmp/thaw.txt | ms) ms |
| $C concurrent first connections, $CR rounds ($total in all) | $answers answers, $resets resets, $timeouts timeouts |
| an idle (stopped) container: containers / docker-proxy / processes in its cgroup | $containers / $proxies / $tasks |
| an idle container on disk: its mark | $mark bytes (plus its unit, spec and env files) |
| gear-idler resident memory (one per host) | $((idler_rss / 1024)) MiB ($idler_rss kB) |
EOT
