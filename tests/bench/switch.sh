#!/bin/bash
# switch.sh — runs inside the bench machine (fed by run.sh on stdin). Prints a markdown table
# for docs/benchmarks.md: the latency a zero-downtime switch (`gear restart` of a running
# container with a readiness probe) adds to requests, under a load of 50 requests/s with a
# new connection each: requests begun during a switch against those begun outside one (p50,
# p99, worst), and how many failed.
set -euo pipefail
img=gear-test/httpd:latest
id=bench-switch
port=18300
url=http://127.0.0.1:$port/
S=${S:-10}      # switches

systemctl daemon-reload
systemctl enable --now gear-api.socket container-active.target gear-idler.service >/dev/null 2>&1
gear install $img localhost/$id --start -p 8080:$port --ready-http /:8080 >/dev/null
until curl -fsS -o /dev/null $url; do sleep 0.01; done

# The load: every 20 ms a new curl, logging "START-MS HTTP-CODE SECONDS".
rm -f /tmp/sw.log /tmp/sw.stop /tmp/sw.windows
(while [ ! -e /tmp/sw.stop ]; do
  (s=$(date +%s%3N); r=$(curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}' $url); echo "$s $r" >> /tmp/sw.log) &
  sleep 0.02
done; wait) >/dev/null 2>&1 &
sleep 3
for _ in $(seq "$S"); do
  t0=$(date +%s%3N)
  gear restart localhost/$id >/dev/null
  echo "$t0 $(date +%s%3N)" >> /tmp/sw.windows
  sleep 3
done
touch /tmp/sw.stop
sleep 2

# Split by whether a request began inside a switch (from the restart's call to its answer).
awk 'NR == FNR {a[NR] = $1; b[NR] = $2; n = NR; next}
     {during = 0; for (i = 1; i <= n; i++) if ($1 >= a[i] && $1 <= b[i]) during = 1;
      print (during ? "during" : "plain"), $2, $3 * 1000}' /tmp/sw.windows /tmp/sw.log > /tmp/sw.split
stats() {
  awk -v k="$1" '$1 == k {print $3}' /tmp/sw.split | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) {print "| 0 | - | - | - |"; exit}
         p50 = v[int(0.5 * NR + 0.999)]; p99 = v[int(0.99 * NR + 0.999)];
         printf "| %d | %.1f | %.1f | %.1f |\n", NR, p50, p99, v[NR]}'
}
switch_ms=$(awk '{s += $2 - $1} END {printf "%.0f", s / NR}' /tmp/sw.windows)
failed=$(awk '$2 != 200' /tmp/sw.split | wc -l)

echo
echo "### Zero-downtime switch under load ($S restarts, 50 requests/s, a new connection each)"
echo
echo "| requests | count | p50 ms | p99 ms | worst ms |"
echo "|---|---|---|---|---|"
echo "| plain (no switch running) $(stats plain)"
echo "| begun during a switch $(stats during)"
echo
echo "A switch (\`gear restart\` until it answers) took $switch_ms ms on average; failed requests: $failed."
gear delete localhost/$id >/dev/null
