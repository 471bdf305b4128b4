#!/bin/sh
# check.sh — runs INSIDE the test machine: prints one line per leak or half-done thing in
# gear's state, nothing when all is whole. A container is either installed whole (unit,
# spec, and its port reservations) or absent (none of its files, links, ports, rules or
# Docker container); no lock is left held.
cd /var/lib/containers || exit 0
wants=/etc/systemd/system/container-active.target.wants
installed() { [ -e "units/ctr-$1.service" ]; }
for u in units/ctr-*.service; do
  [ -e "$u" ] || continue
  id=${u#units/ctr-}; id=${id%.service}
  [ -s "specs/$id.json" ] || echo "half-installed: $id has a unit but no spec"
  if grep -q '"Internal"' "specs/$id.json" 2>/dev/null; then
    ls -l ports 2>/dev/null | grep -q -- "-> $id:" || echo "half-installed: $id has ports in its spec but no reservation"
  fi
done
for s in specs/*.json; do
  [ -e "$s" ] || continue
  id=${s#specs/}; id=${id%.json}
  installed "$id" || echo "leftover: spec of $id, which is not installed"
done
for e in env/*; do
  [ -e "$e" ] || continue
  installed "${e#env/}" || echo "leftover: environment file of ${e#env/}, which is not installed"
done
for p in ports/*; do
  [ -L "$p" ] || continue
  id=$(readlink "$p"); id=${id%%:*}
  installed "$id" || echo "leaked port reservation: ${p#ports/} for $id, which is not installed"
done
for l in "$wants"/ctr-*.service /etc/systemd/system/ctr-*.service; do
  [ -L "$l" ] || continue
  [ -e "$l" ] || echo "dangling link: $l"
done
for c in $(docker ps -a --format '{{.Label "gear.id"}}' 2>/dev/null); do
  [ -n "$c" ] || continue
  if ! installed "$c"; then
    echo "orphan Docker container: ctr-$c, which is not installed"
  elif [ "$(systemctl is-active "ctr-$c.service")" != active ]; then
    echo "orphan Docker container: ctr-$c runs while its unit is $(systemctl is-active "ctr-$c.service")"
  fi
done
for f in /run/gear/locks/*; do
  [ -e "$f" ] || continue
  # gear-api and gear-idler take these for a moment; one still held after 5 s is stuck.
  flock -w 5 "$f" true || echo "lock held for over 5 s: $f"
done
for id in $(iptables-save 2>/dev/null | grep -oE 'gear-(idle|count):[A-Za-z0-9_.-]*' | sort -u | cut -d: -f2); do
  installed "$id" || echo "leaked firewall rule for $id, which is not installed"
done
exit 0
