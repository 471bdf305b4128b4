#!/bin/bash
# testbed.sh — throwaway test machines for gear's system tests: systemd-nspawn booting a cached
# Debian bookworm rootfs with systemd, journald, D-Bus and dockerd inside.
#
#   testbed.sh deps | rootfs | up NAME [--stage DIR] [--bridge] | reboot NAME | exec NAME CMD...
#              sh NAME SCRIPT | shell NAME | ip NAME | cpid NAME | images NAME | down NAME
#              down-all | list
#
# Also a library: `source testbed.sh` defines the tb_* functions and runs nothing.
# tests/system/README.md explains the flags and the measured timings.
set -euo pipefail

TB_CACHE=/var/cache/gear-testbed          # rootfs-<hash>.tar.zst
TB_STATE=/var/lib/gear-testbed            # one directory per machine
TB_BRIDGE=gear-tb0
TB_BRIDGE_NET=10.231.77                   # host is .1; machines get .11, .12, ...
TB_CGROUP=gear-testbed                    # per-machine cgroups live in <caller's cgroup>/gear-testbed/NAME
TB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TB_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Host packages. procps: pgrep/ps; curl: tests reach machines over the bridge from the host.
TB_HOST_PKGS=(systemd-container debootstrap zstd iproute2 procps curl)
# Packages inside the machine (debootstrap --include; no Recommends).
TB_PKGS=(systemd systemd-sysv dbus docker.io iproute2 iptables curl busybox-static
         openssh-server git ca-certificates procps)
# test-80-rpm installs gear's RPM with rpm and reads its man pages with man.
TB_PKGS+=(rpm man-db)

tb_log() { echo "testbed: $*" >&2; }
tb_die() { tb_log "error: $*"; exit 1; }
tb_now_ms() { date +%s%3N; }

# Machine names become hostnames, directory names and (via nspawn) veth names: keep them short.
tb_check_name() {
  [[ ${1:-} =~ ^[a-z0-9-]{1,20}$ ]] || tb_die "bad machine name '${1:-}' (want [a-z0-9-]{1,20})"
}

tb_dir() { echo "$TB_STATE/$1"; }

# ---------------------------------------------------------------------------------------------
# deps

# Install missing host packages; `apt-get update` only when something is missing.
tb_deps() {
  local p missing=()
  for p in "${TB_HOST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  tb_log "installing ${missing[*]}"
  # Lock timeout: another apt may be running on a fresh machine; wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=900 update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends "${missing[@]}" >&2
}

# ---------------------------------------------------------------------------------------------
# rootfs

# The Debian mirror apt already uses; read at run time, never written into a file.
tb_mirror() {
  local m
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || tb_die "no URIs: line in /etc/apt/sources.list.d/debian.sources"
  echo "$m"
}

# debootstrap the bare system into ROOT.
tb_rootfs_build() {
  local root=$1 pkgs
  pkgs=$(IFS=,; echo "${TB_PKGS[*]}")
  debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$(tb_mirror)" >&2
  # The machines have no network: apt's caches and lists are dead weight.
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # Docs, man pages and translations: 5000 of the 13500 files, never read in a test machine, and
  # every `up` pays for each file it extracts.
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
}

# Turn ROOT into a bootable test machine. Everything here is part of the cache hash.
tb_rootfs_configure() {
  local root=$1
  echo gear-testbed > "$root/etc/hostname"
  chroot "$root" passwd -d root >/dev/null
  # Empty machine-id: `up` writes a fresh one per machine (journal dirs are named after it).
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"

  # nspawn mounts the cgroup v1 controllers read-only; runc must mkdir in them, or it fails with
  # "mkdir /sys/fs/cgroup/cpuset/docker/<id>: read-only file system".
  cat > "$root/etc/systemd/system/cgroup-rw.service" <<'UNIT'
[Unit]
Description=Make cgroup v1 controller mounts writable for the nested dockerd/runc
DefaultDependencies=no
After=local-fs.target
Before=containerd.service docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for c in /sys/fs/cgroup/*; do mountpoint -q "$c" && mount -o remount,bind,rw "$c"; done; true'

[Install]
WantedBy=sysinit.target
UNIT

  # Keep the nested docker0 off 172.17/16, which an outer network may already use.
  mkdir -p "$root/etc/docker"
  echo '{"bip": "10.213.0.1/24"}' > "$root/etc/docker/daemon.json"

  # Persistent journal: tests reboot a machine and read the previous boot.
  mkdir -p "$root/var/log/journal" "$root/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=persistent\n' > "$root/etc/systemd/journald.conf.d/testbed.conf"
  # A unit that hangs on stop must not eat `down`'s 20 s budget (systemd's default is 90 s).
  mkdir -p "$root/etc/systemd/system.conf.d"
  printf '[Manager]\nDefaultTimeoutStopSec=10s\n' > "$root/etc/systemd/system.conf.d/testbed.conf"

  # Timers and services that only add noise (or fail without network) in a throwaway machine.
  systemctl --root="$root" mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-timesyncd.service >&2
  systemctl --root="$root" enable cgroup-rw.service containerd.service docker.service >&2
}

# Cache key: the recipe's source (declare -f drops comments) plus the package list.
tb_rootfs_hash() {
  { declare -f tb_rootfs_build tb_rootfs_configure; printf '%s\n' "${TB_PKGS[@]}"; } |
    sha256sum | cut -c1-16
}

# Unmount anything left mounted under DIR (debootstrap mounts /proc and /sys in its target,
# nspawn may leave propagation mounts), deepest first.
tb_umount_under() {
  local dir=$1 m
  awk -v p="$dir/" 'index($2, p) == 1 || $2 == substr(p, 1, length(p) - 1) {print $2}' /proc/mounts |
    sort -r | while read -r m; do umount -l "$m" || tb_log "warning: cannot unmount $m"; done
}

# rm -rf that never crosses into another file system (a leftover bind mount of / must not be emptied).
tb_rm_tree() {
  [ -e "$1" ] || return 0
  tb_umount_under "$1"
  rm -rf --one-file-system "$1"
}

# Build the tarball in a subshell so its EXIT trap removes the half-built tree on any failure or signal.
tb_rootfs_make() (
  local out=$1 tmp
  tmp=$(mktemp -d "$TB_CACHE/build.XXXXXX")
  trap 'tb_rm_tree "$tmp"' EXIT
  local t0; t0=$(tb_now_ms)
  tb_log "building rootfs (debootstrap bookworm; about a minute)"
  tb_rootfs_build "$tmp/root"
  tb_rootfs_configure "$tmp/root"
  # No --xattrs: no file in this rootfs has any (no file capabilities), and it doubles extraction time.
  tar -C "$tmp/root" --numeric-owner -I 'zstd -T0 -3' -cf "$tmp/rootfs.tar.zst" .
  mv "$tmp/rootfs.tar.zst" "$out"       # same file system: atomic
  tb_log "rootfs built in $(( $(tb_now_ms) - t0 )) ms: $out ($(du -h "$out" | cut -f1))"
)

# Print the cached rootfs tarball's path; build it first if the recipe changed.
tb_rootfs() {
  mkdir -p "$TB_CACHE"
  local out; out=$TB_CACHE/rootfs-$(tb_rootfs_hash).tar.zst
  (
    flock 9                               # one builder at a time; also guards the cleanup below
    if [ ! -f "$out" ]; then
      local d
      for d in "$TB_CACHE"/build.*; do tb_rm_tree "$d"; done   # interrupted earlier builds
      tb_rootfs_make "$out"
    fi
    local f
    for f in "$TB_CACHE"/rootfs-*.tar.zst; do
      [ "$f" = "$out" ] || [ ! -e "$f" ] || { tb_log "removing stale $f"; rm -f "$f"; }
    done
  ) 9>"$TB_CACHE/.lock"
  echo "$out"
}

# ---------------------------------------------------------------------------------------------
# processes and cgroups

# True if PID exists and is not a zombie.
tb_pid_alive() {
  local s
  s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $s != Z* ]]
}

# The live nspawn pid of NAME, or nothing. A stale pid file may name a recycled pid, so the
# process must be an nspawn booting this machine's root.
tb_nspawn_pid() {
  local dir pid
  dir=$(tb_dir "$1")
  pid=$(cat "$dir/nspawn.pid" 2>/dev/null) || return 0
  tb_pid_alive "$pid" || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $dir/root " || return 0
  echo "$pid"
}

tb_running() { [ -n "$(tb_nspawn_pid "$1")" ]; }

# Create NAME's cgroups, one per hierarchy, below the caller's own cgroup, and record them.
# Why: nspawn --keep-unit puts its payload/supervisor cgroups below the cgroup it starts in, so two
# machines started from the same shell would share one "payload" tree; the nested docker's cgroups
# (cpu/docker/<id>, memory/.../docker/<id>) land below it too. One tree per machine keeps them apart
# and lets `down` find every process and every leftover directory.
tb_cgroup_create() {
  local name=$1 dir ctrls path h cg
  dir=$(tb_dir "$name")
  : > "$dir/cgroups"
  while IFS=: read -r _ ctrls path; do
    case $ctrls in
      "") h=unified ;;
      name=systemd) h=systemd ;;
      name=*) continue ;;
      *) h=$ctrls ;;
    esac
    [ -d "/sys/fs/cgroup/$h" ] || continue
    cg=/sys/fs/cgroup/$h${path%/}/$TB_CGROUP
    mkdir -p "$cg/$name"
    if [ -f "$cg/cpuset.cpus" ]; then   # v1 cpuset children start empty and accept no tasks
      cat "$cg/../cpuset.cpus" > "$cg/cpuset.cpus"; cat "$cg/../cpuset.mems" > "$cg/cpuset.mems"
      cat "$cg/cpuset.cpus" > "$cg/$name/cpuset.cpus"; cat "$cg/cpuset.mems" > "$cg/$name/cpuset.mems"
    fi
    echo "$cg/$name" >> "$dir/cgroups"
  done < /proc/self/cgroup
}

# Move the calling (sub)shell into NAME's cgroups.
tb_cgroup_enter() {
  local cg
  while read -r cg; do echo "$BASHPID" > "$cg/cgroup.procs"; done < "$(tb_dir "$1")/cgroups"
}

# Every pid in the cgroup trees listed in FILE.
tb_cgroup_pids() {
  local cg
  [ -f "$1" ] || return 0
  while read -r cg; do
    [ -d "$cg" ] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
  done < "$1"
  return 0
}

# Remove the cgroup trees listed in FILE (children first), then their gear-testbed parents if empty.
tb_cgroup_remove() {
  local cg
  [ -f "$1" ] || return 0
  while read -r cg; do
    [ -d "$cg" ] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$cg" ] && tb_log "warning: cgroup $cg is still busy"
    rmdir "$(dirname "$cg")" 2>/dev/null || true
  done < "$1"
  return 0
}

# ---------------------------------------------------------------------------------------------
# networking

tb_bridge_up() {
  ip link show "$TB_BRIDGE" >/dev/null 2>&1 || {
    ip link add "$TB_BRIDGE" type bridge
    ip addr add "$TB_BRIDGE_NET.1/24" dev "$TB_BRIDGE"
  }
  ip link set "$TB_BRIDGE" up
}

tb_bridge_down() {
  ip link show "$TB_BRIDGE" >/dev/null 2>&1 || return 0
  ip link del "$TB_BRIDGE"
}

# Lowest free bridge address .11, .12, ... (10 + machine index), so a fixed boot order always
# yields the same addresses. Caller holds the state lock.
tb_pick_addr() {
  local i a
  for i in $(seq 1 200); do
    a=$TB_BRIDGE_NET.$((10 + i))
    cat "$TB_STATE"/*/addr 2>/dev/null | grep -qxF "$a" || { echo "$a"; return 0; }
  done
  tb_die "no free address on $TB_BRIDGE"
}

# Give the machine's host0 (the inner end of nspawn's veth) its address. The machine has no
# network manager, so this is done from the host for every boot.
tb_net_setup() {
  local cpid=$1 addr=$2
  nsenter -t "$cpid" -n ip link show host0 >/dev/null 2>&1 || return 1
  nsenter -t "$cpid" -n ip addr replace "$addr/24" dev host0
  nsenter -t "$cpid" -n ip link set host0 up
}

# ---------------------------------------------------------------------------------------------
# boot and stop

# The container's init: the child of nspawn that is pid 1 of its own pid namespace
# (NSpid: <host pid> 1). nspawn's short-lived intermediate child is not.
tb_find_cpid() {
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do
    grep -qE '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$c/status" 2>/dev/null && { echo "$c"; return 0; }
  done
  return 0
}

# systemd's SystemState, asked over the machine's own bus (the host has no systemd to ask).
# Prints nothing while the bus is not up yet.
tb_system_state() {
  local out
  out=$(busctl --address="unix:path=/proc/$1/root/run/dbus/system_bus_socket" get-property \
    org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState \
    2>/dev/null) || return 0
  out=${out#s \"}; echo "${out%\"}"
}

# nspawn arguments for NAME, from the networking mode recorded at `up`.
tb_nspawn_args() {
  local name=$1 dir; dir=$(tb_dir "$name")
  local args=(
    -D "$dir/root" -b -M "$name"
    --register=no --keep-unit          # host PID 1 is not systemd: no machined, no scope unit to create
    --console=read-only                # no tty in the background; boot messages go to nspawn.log
    --link-journal=no                  # the journal stays inside the machine (persistent, survives reboot)
    --system-call-filter=@keyring      # runc needs keyctl (session keyring); nspawn's seccomp blocks it
  )
  # Private netns either way: the nested dockerd's docker0 and iptables must not touch the host's.
  if [ "$(cat "$dir/net")" = bridge ]; then args+=(--network-bridge="$TB_BRIDGE"); else args+=(--private-network); fi
  printf '%s\n' "${args[@]}"
}

# Start nspawn in the background, in NAME's cgroups and its own session (a Ctrl-C aimed at the
# caller must not reach it: only `down` stops a machine).
tb_spawn() {
  local name=$1 dir args
  dir=$(tb_dir "$name")
  mapfile -t args < <(tb_nspawn_args "$name")
  tb_cgroup_create "$name"
  (
    tb_cgroup_enter "$name"
    exec setsid systemd-nspawn "${args[@]}" </dev/null >>"$dir/nspawn.log" 2>&1
  ) &
  echo $! > "$dir/nspawn.pid"
}

# Boot NAME on its existing root and wait until systemd has finished booting and dockerd answers.
tb_boot() {
  local name=$1 dir nsp cpid="" state="" addr="" net_done=1 t0 t1 deadline
  dir=$(tb_dir "$name")
  [ -f "$dir/addr" ] && { addr=$(cat "$dir/addr"); net_done=0; }
  echo "=== boot $(date -Is)" >> "$dir/nspawn.log"
  t0=$(tb_now_ms); deadline=$((t0 + 90000))
  tb_spawn "$name"
  nsp=$(cat "$dir/nspawn.pid")
  while :; do
    tb_pid_alive "$nsp" || { tail -n 30 "$dir/nspawn.log" >&2; tb_die "$name: systemd-nspawn exited during boot"; }
    [ -n "$cpid" ] && tb_pid_alive "$cpid" || cpid=$(tb_find_cpid "$nsp")
    if [ -n "$cpid" ]; then
      [ "$net_done" = 1 ] || { tb_net_setup "$cpid" "$addr" && net_done=1; }
      state=$(tb_system_state "$cpid")
      [ "$net_done" = 1 ] && [[ $state == running || $state == degraded ]] && break
    fi
    [ "$(tb_now_ms)" -lt "$deadline" ] || { tail -n 30 "$dir/nspawn.log" >&2; tb_die "$name: not booted after 90 s (cpid '$cpid', net_done $net_done, state '$state')"; }
    sleep 0.05
  done
  echo "$cpid" > "$dir/cpid"
  t1=$(tb_now_ms)
  if [ "$state" = degraded ]; then
    tb_log "$name: degraded; failed units:"
    tb_exec "$name" systemctl --failed --no-legend --plain >&2 || true
  fi
  until tb_exec "$name" docker info >/dev/null 2>&1; do
    [ "$(tb_now_ms)" -lt "$deadline" ] || tb_die "$name: dockerd does not answer"
    sleep 0.1
  done
  tb_log "$name: $state after $((t1 - t0)) ms, docker ready after $(( $(tb_now_ms) - t0 )) ms (cpid $cpid${addr:+, $addr})"
}

# Stop NAME: SIGTERM makes nspawn halt the machine in order; after 20 s, SIGKILL everything in
# the machine's cgroups. Then remove what nspawn leaves behind. Keeps the root. Safe when stale.
tb_stop() {
  local name=$1 dir nsp i pids
  dir=$(tb_dir "$name")
  nsp=$(tb_nspawn_pid "$name")
  if [ -n "$nsp" ]; then
    kill -TERM "$nsp" 2>/dev/null || true
    for i in $(seq 1 200); do tb_pid_alive "$nsp" || break; sleep 0.1; done
    tb_pid_alive "$nsp" && tb_log "$name: no clean shutdown after 20 s, killing"
  fi
  # Also catches a machine whose nspawn died (its init gets reparented and keeps running).
  for i in $(seq 1 50); do
    pids=$(tb_cgroup_pids "$dir/cgroups")
    [ -n "$nsp" ] && tb_pid_alive "$nsp" && pids="$pids $nsp"
    [ -n "${pids// /}" ] || break
    # shellcheck disable=SC2086 # word splitting wanted: a pid list
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  [ -z "${pids// /}" ] || tb_log "warning: $name: processes survive SIGKILL: $pids"
  tb_umount_under "$dir"
  rm -rf "/run/systemd/nspawn/propagate/$name"
  tb_cgroup_remove "$dir/cgroups"
  rm -f "$dir/nspawn.pid" "$dir/cpid"
}

# ---------------------------------------------------------------------------------------------
# subcommands

# up NAME [--stage DIR] [--bridge]: fresh root from the cache, plus the staged install tree; boot.
tb_up() {
  local name="" stage="" bridge=0 dir rootfs t0
  while [ $# -gt 0 ]; do
    case $1 in
      --stage) stage=${2:?--stage needs a directory}; shift 2 ;;
      --bridge) bridge=1; shift ;;
      -*) tb_die "up: unknown option $1" ;;
      *) [ -z "$name" ] || tb_die "up: one machine at a time"; name=$1; shift ;;
    esac
  done
  tb_check_name "$name"
  [ -z "$stage" ] || [ -d "$stage" ] || tb_die "up: $stage is not a directory"
  tb_running "$name" && tb_die "$name is already running (use reboot, or down first)"
  dir=$(tb_dir "$name")
  [ ! -e "$dir" ] || { tb_stop "$name"; tb_rm_tree "$dir"; }   # leftovers of a killed run
  rootfs=$(tb_rootfs)
  mkdir -p "$dir/root"
  t0=$(tb_now_ms)
  tar -C "$dir/root" --numeric-owner -I zstd -xpf "$rootfs"
  tr -d - < /proc/sys/kernel/random/uuid > "$dir/root/etc/machine-id"
  echo "$name" > "$dir/root/etc/hostname"
  [ -z "$stage" ] || cp -a "$stage/." "$dir/root/"
  tb_log "$name: root ready in $(( $(tb_now_ms) - t0 )) ms"
  if [ "$bridge" = 1 ]; then
    echo bridge > "$dir/net"
    ( flock 9; tb_bridge_up; tb_pick_addr > "$dir/addr" ) 9>"$TB_STATE/.lock"
  else
    echo private > "$dir/net"
  fi
  tb_boot "$name"
}

# reboot NAME: orderly halt, then boot the same root (state persists) with the same networking.
tb_reboot() {
  tb_check_name "${1:-}"
  [ -d "$(tb_dir "$1")/root" ] || tb_die "no machine $1"
  tb_stop "$1"
  [ ! -f "$(tb_dir "$1")/addr" ] || ( flock 9; tb_bridge_up ) 9>"$TB_STATE/.lock"
  tb_boot "$1"
}

# Host pid of NAME's init (pid 1 inside).
tb_cpid() {
  tb_check_name "${1:-}"
  tb_running "$1" || tb_die "$1 is not running"
  cat "$(tb_dir "$1")/cpid"
}

# exec NAME CMD...: run CMD in all of the machine's namespaces with a clean environment;
# stdin, stdout, stderr and the exit code pass through.
tb_exec() {
  local name=${1:-} cpid
  shift || true
  [ $# -gt 0 ] || tb_die "exec: no command"
  cpid=$(tb_cpid "$name")
  nsenter -t "$cpid" -m -u -i -n -p -- \
    env -i PATH="$TB_PATH" HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 "$@"
}

tb_sh() { tb_exec "${1:-}" /bin/sh -c "${2:?sh: no script}"; }
tb_shell() { tb_exec "${1:-}" /bin/bash -l; }

tb_ip() {
  tb_check_name "${1:-}"
  local f; f=$(tb_dir "$1")/addr
  [ -f "$f" ] || tb_die "$1 has no bridge address (not started with --bridge)"
  cat "$f"
}

# Build one image from a fixture directory, through the machine's dockerd; the context is sent
# as a tar on stdin, with the machine's own busybox-static added as ./busybox.
tb_image_build() (
  local name=$1 fixture=$2 tag ctx t0
  tag=gear-test/$(basename "$fixture"):latest
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp -a "$fixture/." "$ctx/"
  tb_exec "$name" cat /bin/busybox > "$ctx/busybox"
  chmod 755 "$ctx/busybox"
  t0=$(tb_now_ms)
  tar -C "$ctx" -c . | tb_exec "$name" docker build -q -t "$tag" - >/dev/null
  tb_log "$name: built $tag in $(( $(tb_now_ms) - t0 )) ms"
)

# images NAME: build every tests/fixtures/images/<image>/Dockerfile as gear-test/<image>:latest.
tb_images() {
  local f n=0
  tb_cpid "${1:-}" >/dev/null
  for f in "$TB_REPO"/tests/fixtures/images/*/Dockerfile; do
    [ -f "$f" ] || continue
    tb_image_build "$1" "$(dirname "$f")"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || tb_die "no Dockerfiles under tests/fixtures/images/"
}

# Names of all machines with a state directory.
tb_names() {
  local d
  for d in "$TB_STATE"/*/; do [ -d "$d" ] && basename "$d"; done
  return 0
}

# Host-wide leftovers, once no machine is left: the bridge, nspawn's runtime dir, orphaned
# processes and cgroups, and the empty cgroups that nspawn and the nested docker leave when run
# the findings' way (payload/supervisor at the top, */docker, <caller's memory cgroup>/docker).
tb_host_cleanup() {
  local f pids cg
  tb_bridge_down
  rm -rf /run/systemd/nspawn
  f=$(mktemp)
  find /sys/fs/cgroup -maxdepth 5 -type d -name "$TB_CGROUP" 2>/dev/null > "$f" || true
  pids=$(tb_cgroup_pids "$f")
  # shellcheck disable=SC2086 # a pid list
  [ -z "$pids" ] || { tb_log "killing orphans: $pids"; kill -KILL $pids 2>/dev/null || true; sleep 0.5; }
  for cg in /sys/fs/cgroup/{systemd,unified}/{payload,supervisor}; do [ -d "$cg" ] && echo "$cg"; done >> "$f"
  find /sys/fs/cgroup -maxdepth 5 -type d -name docker 2>/dev/null >> "$f" || true
  while read -r cg; do
    [ ! -d "$cg" ] || find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < "$f"
  rm -f "$f"
}

# down NAME: stop it and delete its state; clean up the host when it was the last machine.
tb_down() {
  tb_check_name "${1:-}"
  local dir; dir=$(tb_dir "$1")
  [ -e "$dir" ] || { tb_log "$1: nothing to do"; return 0; }
  local t0; t0=$(tb_now_ms)
  tb_stop "$1"
  tb_rm_tree "$dir"
  [ -n "$(tb_names)" ] || tb_host_cleanup
  tb_log "$1: down in $(( $(tb_now_ms) - t0 )) ms"
}

# down-all: every machine, then the host leftovers (even when no state dir is left).
tb_down_all() {
  local n
  for n in $(tb_names); do tb_down "$n"; done
  tb_host_cleanup
}

tb_list() {
  local n dir state
  printf '%-20s %-8s %-8s %s\n' NAME STATE CPID ADDRESS
  for n in $(tb_names); do
    dir=$(tb_dir "$n")
    if tb_running "$n"; then state=running
    elif [ -n "$(tb_cgroup_pids "$dir/cgroups")" ]; then state=orphaned   # nspawn gone, machine not
    else state=stopped; fi
    printf '%-20s %-8s %-8s %s\n' "$n" "$state" \
      "$( [ "$state" = running ] && cat "$dir/cpid" 2>/dev/null || echo -)" "$(cat "$dir/addr" 2>/dev/null || echo -)"
  done
}

tb_usage() {
  sed -n '5,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

tb_main() {
  [ $# -gt 0 ] || tb_usage
  local cmd=$1; shift
  [ "$(id -u)" = 0 ] || tb_die "must run as root"
  mkdir -p "$TB_STATE"
  case $cmd in
    deps) tb_deps ;;
    rootfs) tb_rootfs ;;
    up) tb_up "$@" ;;
    reboot) tb_reboot "$@" ;;
    exec) tb_exec "$@" ;;
    sh) tb_sh "$@" ;;
    shell) tb_shell "$@" ;;
    ip) tb_ip "$@" ;;
    cpid) tb_cpid "$@" ;;
    images) tb_images "$@" ;;
    down) tb_down "$@" ;;
    down-all) tb_down_all ;;
    list) tb_list ;;
    *) tb_usage ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  tb_main "$@"
fi
