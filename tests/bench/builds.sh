#!/bin/bash
# builds.sh — runs inside the bench machine (fed by run.sh on stdin; GEAR_BENCH_SCRIPTS=builds.sh
# runs it alone). Prints the markdown table of docs/benchmarks.md#builds: the time of a gear
# build (s2i, through the agent and its transient unit) against the same work done by
# `docker build` (a Dockerfile that copies the same source into the same builder image and
# runs the same assemble), R rounds each, interleaved; full builds (--clean / --no-cache),
# then gear's incremental build. The target: gear at most 1.3x docker build.
set -euo pipefail
R=${R:-9}              # rounds of each
FILES=${FILES:-300}    # files in the source
ns() { date +%s%N; }
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; print v[i]}'; }
ms() { awk '{printf "%.0f", $1/1e6}'; }

systemctl daemon-reload
systemctl enable --now gear-api.socket container-active.target >/dev/null 2>&1
export DOCKER_BUILDKIT=0

# A source of FILES small files and one of 4 MB, ~5 MB in all.
src=/srv/bench-src
rm -rf "$src"; mkdir -p "$src/assets"
for i in $(seq "$FILES"); do head -c 2048 /dev/urandom | base64 > "$src/assets/f$i.txt"; done
head -c 4000000 /dev/urandom > "$src/assets/big.bin"
echo "<h1>bench</h1>" > "$src/index.html"
# The same work as a Dockerfile, kept outside the context.
cat > /srv/bench.Dockerfile <<'DF'
FROM gear-test/s2i-web
COPY . /tmp/src
RUN ["/usr/libexec/s2i/assemble"]
CMD ["/usr/libexec/s2i/run"]
DF

gear_build() { gear build "$@" "$src" gear-test/s2i-web gear-test/bench-gear localhost >/dev/null 2>&1; }
docker_build() { docker build -q --no-cache --force-rm -f /srv/bench.Dockerfile -t gear-test/bench-docker "$src" >/dev/null; }
# Warm both (page cache, images).
gear_build --clean; docker_build
: > /tmp/g.txt; : > /tmp/d.txt; : > /tmp/i.txt
for _ in $(seq "$R"); do
  t0=$(ns); gear_build --clean; echo $(( $(ns) - t0 )) >> /tmp/g.txt
  t0=$(ns); docker_build; echo $(( $(ns) - t0 )) >> /tmp/d.txt
  t0=$(ns); gear_build; echo $(( $(ns) - t0 )) >> /tmp/i.txt
done
# Both produce a working image of the same content.
[ "$(docker run --rm --entrypoint cat gear-test/bench-gear /www/index.html)" = "<h1>bench</h1>" ]
[ "$(docker run --rm --entrypoint cat gear-test/bench-docker /www/index.html)" = "<h1>bench</h1>" ]
g=$(pct 50 < /tmp/g.txt); d=$(pct 50 < /tmp/d.txt); i=$(pct 50 < /tmp/i.txt)
echo
echo "| build of a $(du -sh "$src" | cut -f1) source ($FILES files), $R rounds | median | p95 | against docker build |"
echo "|---|---|---|---|"
echo "| \`docker build --no-cache\` (COPY + RUN assemble) | $(echo "$d" | ms) ms | $(pct 95 < /tmp/d.txt | ms) ms | 1.00x |"
echo "| \`gear build --clean\` (s2i, agent + transient unit) | $(echo "$g" | ms) ms | $(pct 95 < /tmp/g.txt | ms) ms | $(awk -v a="$g" -v b="$d" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| \`gear build\` (incremental: save-artifacts first) | $(echo "$i" | ms) ms | $(pct 95 < /tmp/i.txt | ms) ms | $(awk -v a="$i" -v b="$d" 'BEGIN{printf "%.2fx", a/b}') |"
