#!/bin/bash
# bench.sh — runs inside the bench machine (fed by run.sh on stdin). Prints the markdown
# tables of docs/benchmarks.md, every figure measured in this one run on this machine:
#   1. installs, not started: a new curl per request, then one keep-alive connection
#      (median, p99, installs per second, the first installs against the last), and the
#      floors under them (a curl that does nothing, one fsync'd file write);
#   2. install --start -> port answers, against docker run -d -> port answers;
#   3. start, stop and restart of a gear unit against a reference unit that runs plain
#      `docker run` with no helper steps (the same image, ports and client);
#   4. scale: installs up to SCALE containers (time per install against the count), GET
#      /containers with all of them, the agent's memory, then STARTS plain `docker run -d`
#      at once (the floor) and STARTS gear containers started at once.
# Benchmarks are not tests: nothing here fails on a slow figure, only on a wrong answer.
set -euo pipefail
api=http://127.0.0.1:43273
img=gear-test/httpd:latest
N=${N:-200}            # installs in each install loop
R=${R:-25}             # rounds of each start/stop/restart and first-answer measure
SCALE=${SCALE:-1000}   # containers installed in the scale run
STARTS=${STARTS:-100}  # of them, started at once
body='{"Image":"gear-test/httpd:latest","Ports":[{"Internal":8080}]}'
[ "$STARTS" -lt "$N" ] || { echo "STARTS must be below N: the started ones are the first installs" >&2; exit 2; }

ns() { date +%s%N; }
# percentile P of the numbers on stdin (nearest rank)
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; print v[i]}'; }
# nanoseconds on stdin -> milliseconds
ms() { awk '{printf "%.1f", $1/1e6}'; }
# seconds on stdin -> milliseconds
sms() { awk '{printf "%.2f", $1*1000}'; }
# median and p99 of a file of nanoseconds, "12.3 ms (15.0)"
mp() { echo "$(pct 50 < "$1" | ms) ms ($(pct 99 < "$1" | ms))"; }
# median of lines FROM..TO of a file, in ms
range_median() { sed -n "$2,$3p" "$1" | pct 50 | ms; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$(systemctl show -P MainPID gear-api.service)/status"; }
# Poll until the port answers: every 5 ms, each try at most 0.2 s (while the container's
# network is not up yet, Docker's proxy accepts and then waits, and a longer limit would
# count the client's patience rather than the container's start).
answer() { until curl -fsS -o /dev/null -m 0.2 "http://127.0.0.1:$1/" 2>/dev/null; do sleep 0.005; done; }

systemctl daemon-reload
systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
curl -fsS $api/containers >/dev/null

# --- 0. Floors: what a request costs before the agent does anything, and one durable write.
: > /tmp/floor.txt
for _ in $(seq 100); do
  t0=$(ns); curl -s -o /dev/null "$api/container/nosuch/ports"; echo $(( $(ns) - t0 )) >> /tmp/floor.txt
done
: > /tmp/spawn.txt; : > /tmp/fsync.txt
mkdir -p /var/lib/containers/bench-floor
for i in $(seq 100); do
  t0=$(ns); /bin/true; echo $(( $(ns) - t0 )) >> /tmp/spawn.txt
  echo x > /var/lib/containers/bench-floor/f$i
  t0=$(ns); sync /var/lib/containers/bench-floor/f$i; echo $(( $(ns) - t0 )) >> /tmp/fsync.txt
done
rm -rf /var/lib/containers/bench-floor

# --- 1a. N installs, a new curl process per request (as a shell loop sends them).
: > /tmp/new.txt
t_all=$(ns)
for i in $(seq 1 $N); do
  t0=$(ns)
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' -d "$body" "$api/container/new-$(printf %04d $i)")
  echo $(( $(ns) - t0 )) >> /tmp/new.txt
  [ "$code" = 200 ] || { echo "install new-$i answered $code" >&2; exit 1; }
done
new_rate=$(awk -v n=$N -v d=$(( $(ns) - t_all )) 'BEGIN {printf "%.1f", n / (d / 1e9)}')

# --- 1b. N more on one keep-alive connection (one curl for all), each request timed by curl
# (its -w line follows each answer's body).
urls=$(for i in $(seq 1 $N); do printf '%s/container/ka-%04d\n' $api $i; done)
t_all=$(ns)
# shellcheck disable=SC2086 # one URL per word
curl -s -X PUT -H 'Content-Type: application/json' -d "$body" -w '\n=%{http_code} %{time_total}\n' $urls | sed -n 's/^=//p' > /tmp/ka-raw.txt
ka_rate=$(awk -v n=$N -v d=$(( $(ns) - t_all )) 'BEGIN {printf "%.1f", n / (d / 1e9)}')
[ "$(grep -c '^200 ' /tmp/ka-raw.txt)" = "$N" ] || { echo "not all keep-alive installs answered 200" >&2; exit 1; }
awk '{printf "%d\n", $2 * 1e9}' /tmp/ka-raw.txt > /tmp/ka.txt

# --- 2. First HTTP answer: docker run -d against gear install --start, alternating.
: > /tmp/docker.txt; : > /tmp/gear.txt
for r in $(seq $R); do
  t0=$(ns); docker run -d --rm --init --name plain-$r -p 18080:8080 $img >/dev/null; answer 18080
  echo $(( $(ns) - t0 )) >> /tmp/docker.txt
  docker rm -f plain-$r >/dev/null
  t0=$(ns); gear install $img localhost/first-$r --start -p 8080:18081 >/dev/null; answer 18081
  echo $(( $(ns) - t0 )) >> /tmp/gear.txt
  gear delete localhost/first-$r >/dev/null
done

# --- 3. start / stop / restart: the gear unit against a reference unit with no helper steps.
cat > /etc/systemd/system/ref-plain.service <<EOF
[Unit]
Description=reference: plain docker run, no helper steps
Requires=docker.service
After=docker.service
[Service]
ExecStart=/usr/bin/docker run --rm --init --name ref-plain -p 18301:8080 $img
SuccessExitStatus=143
EOF
systemctl daemon-reload
gear install $img localhost/cycle -p 8080:18300 >/dev/null
# One measure: label, container (or - for a stop), command... Records when the command
# returned; for a start, also when Docker says the container started (its StartedAt), read
# 1.5 s later: the same observer for both units, and nothing polling while they start.
: > /tmp/cycle.txt
measure() {
  local label=$1 name=$2 t0 t1 started; shift 2
  t0=$(ns); "$@" >/dev/null; t1=$(ns)
  echo "$label-return $(( t1 - t0 ))" >> /tmp/cycle.txt
  if [ "$name" != - ]; then
    sleep "$(awk -v t=$(( $(ns) - t0 )) 'BEGIN {s = 1.5 - t / 1e9; print (s > 0 ? s : 0)}')"
    started=$(date -d "$(docker inspect -f '{{.State.StartedAt}}' "$name")" +%s%N)
    echo "$label-running $(( started - t0 ))" >> /tmp/cycle.txt
  fi
}
for _ in $(seq $R); do
  measure ref-start ref-plain systemctl start ref-plain.service
  measure gear-start ctr-cycle systemctl start ctr-cycle.service
  measure ref-restart ref-plain systemctl restart ref-plain.service
  measure gear-restart ctr-cycle systemctl restart ctr-cycle.service
  measure ref-stop - systemctl stop ref-plain.service
  measure gear-stop - systemctl stop ctr-cycle.service
  # The same through gear's CLI and agent (a new client process each time, as geard's figures).
  measure cli-start ctr-cycle gear start localhost/cycle
  measure cli-restart ctr-cycle gear restart localhost/cycle
  measure cli-stop - gear stop localhost/cycle
done
cyc() { awk -v k="$1" '$1 == k {print $2}' /tmp/cycle.txt > /tmp/c.txt; mp /tmp/c.txt; }
cycm() { awk -v k="$1" '$1 == k {print $2}' /tmp/cycle.txt | pct 50; }
ratio() { awk -v a="$(cycm "$1")" -v b="$(cycm "$2")" 'BEGIN {printf "%.2f", a / b}'; }
systemctl stop ref-plain.service

# --- 4. Scale: installs up to SCALE (keep-alive, each timed), then STARTS started at once.
have=$(( 2 * N + 1 ))
urls=$(for i in $(seq $(( have + 1 )) "$SCALE"); do printf '%s/container/s-%04d\n' $api $i; done)
# shellcheck disable=SC2086 # one URL per word
curl -s -X PUT -H 'Content-Type: application/json' -d "$body" -w '\n=%{http_code} %{time_total}\n' $urls | sed -n 's/^=//p' > /tmp/scale-raw.txt
[ "$(grep -vc "^200 " /tmp/scale-raw.txt)" = 0 ] || { echo "scale installs failed: $(grep -v "^200 " /tmp/scale-raw.txt | sort | uniq -c | head -3)" >&2; exit 1; }
# time per install against the count: every keep-alive install so far, in order
awk '{print $2}' /tmp/ka-raw.txt /tmp/scale-raw.txt > /tmp/all-ka.txt
ka_n=$(wc -l < /tmp/all-ka.txt)
installed=$(ls /var/lib/containers/units | grep -c '^ctr-')
lat() { for _ in $(seq 300); do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done; }
lat "$api/containers" > /tmp/list.txt
lat "$api/containers?all=1" > /tmp/listall.txt
# The same 300 on one keep-alive connection: the agent's answer without the connection's setup.
# shellcheck disable=SC2046 # one URL per word
curl -s -o /dev/null -w '%{time_total}\n' $(for _ in $(seq 300); do echo "$api/containers"; done) > /tmp/listka.txt
sleep 1
rss_scale=$(rss_kb)
# gear-idler's own work with them all installed (none of them idles): CPU over 10 s.
systemctl start gear-idler.service
sleep 2
idler_pid=$(systemctl show -P MainPID gear-idler.service)
cpu() { awk '{print $14 + $15}' "/proc/$idler_pid/stat"; }
c0=$(cpu); sleep 10; idler_cpu=$(( ($(cpu) - c0) * 1000 / $(getconf CLK_TCK) ))
# The floor under the starts at once: as many plain `docker run -d` at once, the same image
# and a published port, with the same 1000 units installed; removed before gear's.
: > /tmp/dstarts.txt
t_all=$(ns)
for i in $(seq 1 "$STARTS"); do
  ( t0=$(ns); docker run -d --rm --init --name par-$i -p 8080 $img >/dev/null 2>/tmp/dstart-$i.err \
      && echo "ok $(( $(ns) - t0 ))" >> /tmp/dstarts.txt \
      || echo "docker run $i: $(cat /tmp/dstart-$i.err)" >&2 ) &
done
wait
t_dstarts=$(( $(ns) - t_all ))
dstarted_ok=$(grep -c '^ok ' /tmp/dstarts.txt || true)
awk '{print $2}' /tmp/dstarts.txt > /tmp/dstart-lat.txt
docker ps -q --filter name=par- | xargs -r docker rm -f >/dev/null
: > /tmp/starts.txt
t_all=$(ns)
for i in $(seq 1 "$STARTS"); do
  ( t0=$(ns); code=$(curl -s -o /tmp/start-$i.out -w '%{http_code}' -X PUT "$api/container/new-$(printf %04d $i)/started")
    echo "$code $(( $(ns) - t0 ))" >> /tmp/starts.txt
    [ "$code" = 200 ] || { echo "start $i: $code $(cat /tmp/start-$i.out)"; } >&2 ) &
done
wait
t_starts=$(( $(ns) - t_all ))
started_ok=$(grep -c '^200 ' /tmp/starts.txt || true)
running=$(docker ps -q --filter label=gear.id | wc -l)
awk '{print $2}' /tmp/starts.txt > /tmp/start-lat.txt
lat "$api/containers" > /tmp/list-running.txt
sleep 1
rss_started=$(rss_kb)
# one start after all of them, alone, for comparison
t0=$(ns); gear start localhost/new-$(printf %04d $((STARTS + 1))) >/dev/null; one_start=$(( $(ns) - t0 ))

cat <<EOT
Floors (what is not gear's):

| floor | median (p99) |
|---|---|
| a new \`curl\` process sending a request the agent answers at once (404) | $(mp /tmp/floor.txt) |
| starting a process (\`/bin/true\` from bash) | $(mp /tmp/spawn.txt) |
| one fsync of a small new file (\`sync FILE\`, minus nothing: includes its process) | $(mp /tmp/fsync.txt) |

Installs, not started ($N each; ids never installed before):

| client | median (p99) | installs/s | 1st / ${N}th | first 10 / last 10 (median) |
|---|---|---|---|---|
| a new curl per request | $(mp /tmp/new.txt) | $new_rate | $(sed -n 1p /tmp/new.txt | ms) / $(sed -n "${N}p" /tmp/new.txt | ms) ms | $(range_median /tmp/new.txt 1 10) / $(range_median /tmp/new.txt $((N - 9)) $N) ms |
| one keep-alive connection | $(mp /tmp/ka.txt) | $ka_rate | $(sed -n 1p /tmp/ka.txt | ms) / $(sed -n "${N}p" /tmp/ka.txt | ms) ms | $(range_median /tmp/ka.txt 1 10) / $(range_median /tmp/ka.txt $((N - 9)) $N) ms |

First HTTP answer of a new container (median of $R, alternating):

| command | median (p99) |
|---|---|
| \`docker run -d\` → port answers | $(mp /tmp/docker.txt) |
| \`gear install --start\` → port answers | $(mp /tmp/gear.txt) |
| ratio gear / docker (medians) | $(awk -v g="$(pct 50 < /tmp/gear.txt)" -v d="$(pct 50 < /tmp/docker.txt)" 'BEGIN {printf "%.2f", g / d}') |

Start, stop, restart (median of $R, p99 in brackets): the gear unit against the reference
unit (plain \`docker run\`, no helper steps), both through \`systemctl\`. "Running" is
Docker's StartedAt for the container, the same observer for both; "returns" is when
\`systemctl\` returns (the reference unit is \`active\` as soon as \`docker run\` is forked,
the gear unit only once the container runs, so its "returns" includes seeing it run):

| step | reference unit | gear unit | gear / reference |
|---|---|---|---|
| start → container running | $(cyc ref-start-running) | $(cyc gear-start-running) | $(ratio gear-start-running ref-start-running) |
| start → returns | $(cyc ref-start-return) | $(cyc gear-start-return) | |
| stop → inactive | $(cyc ref-stop-return) | $(cyc gear-stop-return) | $(ratio gear-stop-return ref-stop-return) |
| restart → container running | $(cyc ref-restart-running) | $(cyc gear-restart-running) | $(ratio gear-restart-running ref-restart-running) |
| restart → returns | $(cyc ref-restart-return) | $(cyc gear-restart-return) | |
| \`gear start\` → active (CLI, agent) | | $(cyc cli-start-return) | |
| \`gear stop\` → inactive (CLI, agent) | | $(cyc cli-stop-return) | |
| \`gear restart\` → active (CLI, agent) | | $(cyc cli-restart-return) | |

Scale ($installed containers installed, $STARTS of them started at once):

| measure | result |
|---|---|
| keep-alive install, median: containers $((N + 1))-$((N + 100)) / the middle 100 / the last 100 | $(sed -n 1,100p /tmp/all-ka.txt | pct 50 | sms) / $(sed -n "$((ka_n / 2 - 49)),$((ka_n / 2 + 50))p" /tmp/all-ka.txt | pct 50 | sms) / $(sed -n "$((ka_n - 99)),${ka_n}p" /tmp/all-ka.txt | pct 50 | sms) ms |
| \`GET /containers\`, $installed installed, a new curl each: p50 / p99 | $(pct 50 < /tmp/list.txt | sms) / $(pct 99 < /tmp/list.txt | sms) ms |
| \`GET /containers\`, $installed installed, one keep-alive connection: p50 / p99 | $(pct 50 < /tmp/listka.txt | sms) / $(pct 99 < /tmp/listka.txt | sms) ms |
| \`GET /containers?all=1\`, $installed installed: p50 / p99 | $(pct 50 < /tmp/listall.txt | sms) / $(pct 99 < /tmp/listall.txt | sms) ms |
| \`gear-api\` memory after $installed installs | $((rss_scale / 1024)) MiB ($rss_scale kB) |
| \`gear-idler\` CPU with $installed installed, none idling: over 10 s | $idler_cpu ms ($(awk -v c=$idler_cpu 'BEGIN {printf "%.1f", c / 100}')% of one core) |
| $STARTS \`docker run -d\` at once (the floor): all done after | $(echo $t_dstarts | ms) ms ($(awk -v t=$t_dstarts -v n="$STARTS" 'BEGIN {printf "%.1f", t / n / 1e6}') ms per start), $dstarted_ok of $STARTS started |
| each of those: median / p99 / max | $(pct 50 < /tmp/dstart-lat.txt | ms) / $(pct 99 < /tmp/dstart-lat.txt | ms) / $(pct 100 < /tmp/dstart-lat.txt | ms) ms |
| $STARTS gear starts at once (\`PUT /container/:id/started\`, each until active): all done after | $(echo $t_starts | ms) ms ($(awk -v t=$t_starts -v n="$STARTS" 'BEGIN {printf "%.1f", t / n / 1e6}') ms per start) |
| each of those starts: median / p99 / max | $(pct 50 < /tmp/start-lat.txt | ms) / $(pct 99 < /tmp/start-lat.txt | ms) / $(pct 100 < /tmp/start-lat.txt | ms) ms |
| one more start after them, alone (\`gear start\`) | $(echo $one_start | ms) ms |
| starts answered 200 / containers running | $started_ok of $STARTS / $running |
| \`GET /containers\` with $running running: p50 / p99 | $(pct 50 < /tmp/list-running.txt | sms) / $(pct 99 < /tmp/list-running.txt | sms) ms |
| \`gear-api\` memory after the starts | $((rss_started / 1024)) MiB ($rss_started kB) |
EOT
# Leave the machine to the next script: no container running, the cycle's port free.
systemctl stop container.target
gear delete localhost/cycle >/dev/null
