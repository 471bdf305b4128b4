#!/bin/bash
# bench.sh — runs inside the bench machine (fed by run.sh on stdin). Prints a markdown table:
# install rate, GET latencies with 200 containers, install --start vs docker run -d, agent RSS.
set -euo pipefail
api=http://127.0.0.1:43273
img=gear-test/httpd:latest
N=200

ns() { date +%s%N; }
# percentile P of the numbers on stdin (nearest rank)
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; print v[i]}'; }
median() { pct 50; }
ms() { awk '{printf "%.2f", $1*1000}'; }

systemctl daemon-reload
systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
curl -fsS $api/containers >/dev/null

# 1. N installs in a row (not started): one client process sending them one after the
# other on one connection, as an orchestrator would, so the figure is the agent's.
urls=$(for i in $(seq -w 1 $N); do echo "$api/container/bench-$i"; done)
t0=$(ns)
# shellcheck disable=SC2086 # one URL per word
ok=$(curl -H "Content-Type: application/json" -s -X PUT -d "{\"Image\":\"$img\",\"Ports\":[{\"Internal\":8080}]}" -w '\n%{http_code}\n' $urls | grep -c '^200$')
t1=$(ns)
[ "$ok" = $N ] || { echo "only $ok of $N installs answered 200" >&2; exit 1; }
rate=$(awk -v n=$N -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", n / (d / 1e9)}')

# 2. Latency of GET /containers?all=1 and GET /container/:id/ports with N installed.
lat() { for _ in $(seq 500); do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done; }
lat "$api/containers" > /tmp/loaded.txt
lat "$api/containers?all=1" > /tmp/list.txt
lat "$api/container/bench-100/ports" > /tmp/ports.txt
[ "$(curl -fsS "$api/containers?all=1" | grep -o '"Id"' | wc -l)" -ge $N ] || { echo "not all $N listed" >&2; exit 1; }

# 3. Agent memory at rest.
sleep 2
pid=$(systemctl show -P MainPID gear-api.service)
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)

# 4. Time to the first HTTP answer: gear install --start vs plain docker run -d, alternating.
first_answer() { until curl -fsS -o /dev/null -m 1 "http://127.0.0.1:$1/"; do sleep 0.01; done; }
: > /tmp/docker.txt; : > /tmp/gear.txt
for r in 1 2 3 4 5 6 7; do
  t0=$(ns); docker run -d --rm --init --name plain-$r -p 18080:8080 $img >/dev/null; first_answer 18080
  echo $(( $(ns) - t0 )) >> /tmp/docker.txt
  docker rm -f plain-$r >/dev/null
  t0=$(ns); gear install $img localhost/start-$r --start -p 8080:18081 >/dev/null; first_answer 18081
  echo $(( $(ns) - t0 )) >> /tmp/gear.txt
  gear delete localhost/start-$r >/dev/null
done
d=$(median < /tmp/docker.txt); g=$(median < /tmp/gear.txt)

cat <<EOT
| measure | result |
|---|---|
| $N installs in a row (not started) | $rate per second |
| GET /containers, $N containers installed: p50 / p99 | $(pct 50 < /tmp/loaded.txt | ms) ms / $(pct 99 < /tmp/loaded.txt | ms) ms |
| GET /containers?all=1, $N containers: p50 / p99 | $(pct 50 < /tmp/list.txt | ms) ms / $(pct 99 < /tmp/list.txt | ms) ms |
| GET /container/:id/ports, $N containers: p50 / p99 | $(pct 50 < /tmp/ports.txt | ms) ms / $(pct 99 < /tmp/ports.txt | ms) ms |
| gear-api resident memory at rest | $((rss / 1024)) MiB ($rss kB) |
| first answer: docker run -d (median of 7) | $((d / 1000000)) ms |
| first answer: gear install --start (median of 7) | $((g / 1000000)) ms |
| ratio gear / docker | $(awk -v g=$g -v d=$d 'BEGIN {printf "%.2f", g / d}') |
EOT
