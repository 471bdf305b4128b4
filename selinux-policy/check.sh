#!/usr/bin/env bash
# Links gear.pp into a scratch copy of the host's full policy store (the distribution's
# selinux-policy-default) with `semodule -p ROOT -n -i`, which fails if the module uses a
# type, attribute or interface the store does not have, then checks the linked policy with
# setools (sesearch, seinfo) and the store's file_contexts (selabel_lookup_best_match).
# Needs: selinux-policy-default, semodule-utils, setools, selinux-utils (`make selinux`
# installs them). The host kernel needs no SELinux: nothing is loaded.
set -euo pipefail
pp=$(realpath "${1:-gear.pp}")
name=default
root=$(mktemp -d /tmp/gear-selinux-store.XXXXXX)
trap 'rm -rf "$root"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

mkdir -p "$root/var/lib/selinux" "$root/etc/selinux"
cp -a "/var/lib/selinux/$name" "$root/var/lib/selinux/"
cp -a "/etc/selinux/$name" /etc/selinux/config /etc/selinux/semanage.conf "$root/etc/selinux/"
# -n: build the store without loading anything into the (SELinux-less) kernel.
semodule -p "$root" -s "$name" -n -i "$pp" 2> >(grep -v 'not in password file' >&2)
policy=$(ls "$root/etc/selinux/$name/policy/policy."* | sort -V | tail -1)
fc="$root/etc/selinux/$name/contexts/files/file_contexts"
ok "linked into a copy of the $name store: $(semodule -p "$root" -s "$name" -l | wc -l) modules"

# Every type the module declares is in the linked policy.
for t in gear_var_lib_t gear_env_t gear_unit_file_t gear_keys_file_t gear_git_t \
  gear_git_hook_exec_t gear_conf_t gear_secret_t gear_runtime_t gear_api_sock_t \
  gear_enter_sock_t gear_keys_t gear_keys_exec_t gear_enter_t gear_enter_exec_t \
  gear_enterd_t gear_enterd_exec_t gear_git_shell_t gear_git_shell_exec_t; do
  seinfo "$policy" -t "$t" | grep -qx "   $t" || bad "type $t missing"
done
ok "all 19 types present"

# has RULE-ARGS...: sesearch finds at least one rule.
has() { [ -n "$(sesearch "$policy" "$@" 2>/dev/null)" ]; }
expect() { local what=$1; shift; if has "$@"; then ok "$what"; else bad "$what: no rule for $*"; fi; }
refuse() { local what=$1; shift; if has "$@"; then bad "$what: $(sesearch "$policy" "$@" | head -1)"; else ok "$what"; fi; }

# The transitions into each helper's domain.
expect "sshd runs gear-keys in gear_keys_t" -T -s sshd_t -t gear_keys_exec_t -c process -D gear_keys_t
expect "systemd runs gear-enterd in gear_enterd_t" -T -s init_t -t gear_enterd_exec_t -c process -D gear_enterd_t
for d in unconfined_t user_t staff_t; do
  expect "$d runs gear-enter in gear_enter_t" -T -s "$d" -t gear_enter_exec_t -c process -D gear_enter_t
  expect "$d runs gear-git-shell in gear_git_shell_t" -T -s "$d" -t gear_git_shell_exec_t -c process -D gear_git_shell_t
done

# What each helper needs.
expect "gear-keys reads keys" -A -s gear_keys_t -t gear_keys_file_t -c file -p read
expect "gear-keys reads specs" -A -s gear_keys_t -t gear_var_lib_t -c file -p read
expect "gear-keys writes to sshd's pipe" -A -s gear_keys_t -t sshd_t -c fifo_file -p write
expect "gear-enter connects to enter.sock" -A -s gear_enter_t -t gear_enter_sock_t -c sock_file -p write
expect "gear-enter connects to systemd's socket" -A -s gear_enter_t -t init_t -c unix_stream_socket -p connectto
expect "gear-enterd reads specs" -A -s gear_enterd_t -t gear_var_lib_t -c file -p read
expect "gear-enterd runs the docker client" -A -s gear_enterd_t -t bin_t -c file -p execute
expect "gear-enterd uses gear-enter's descriptors" -A -s gear_enterd_t -t gear_enter_t -c fd -p use
expect "gear-git-shell writes repositories" -A -s gear_git_shell_t -t gear_git_t -c file -p write
expect "gear-git-shell runs git" -A -s gear_git_shell_t -t bin_t -c file -p execute
expect "gear-git-shell runs hooks (gear_git_run_hooks)" -A -s gear_git_shell_t -t gear_git_hook_exec_t -c file -p execute -b gear_git_run_hooks

# And what they must not do.
for d in gear_keys_t gear_enter_t gear_enterd_t gear_git_shell_t; do
  refuse "$d cannot read tokens or TLS keys" -A -s "$d" -t gear_secret_t -c file -p read
  refuse "$d cannot read environment files" -A -s "$d" -t gear_env_t -c file -p read
  refuse "$d cannot write units" -A -s "$d" -t gear_unit_file_t -c file -p write
  refuse "$d cannot write state" -A -s "$d" -t gear_var_lib_t -c file -p write
  refuse "$d cannot write keys" -A -s "$d" -t gear_keys_file_t -c file -p write
done
for d in gear_keys_t gear_enter_t gear_enterd_t; do
  refuse "$d cannot read repositories" -A -s "$d" -t gear_git_t -c file -p read
  refuse "$d opens no TCP socket" -A -s "$d" -t "$d" -c tcp_socket -p create
done
expect "gear-git-shell's hooks reach the agent over TCP (gear_git_hooks_reach_agent)" -A -s gear_git_shell_t -t gear_git_shell_t -c tcp_socket -p create -b gear_git_hooks_reach_agent
# The agent's port, whatever type the distribution's policy gives it.
agent_port=$(seinfo "$policy" --portcon 43273 | awk '$2 == "tcp" {split($NF, c, ":"); print c[3]; exit}')
[ -n "$agent_port" ] || bad "no portcon for tcp 43273"
expect "gear-git-shell's hooks connect to port 43273 ($agent_port)" -A -s gear_git_shell_t -t "$agent_port" -c tcp_socket -p name_connect -b gear_git_hooks_reach_agent
refuse "gear_git_shell_t cannot read keys" -A -s gear_git_shell_t -t gear_keys_file_t -c file -p read
refuse "gear_keys_t runs no program" -A -s gear_keys_t -t bin_t -c file -p execute
refuse "gear_enter_t runs no program" -A -s gear_enter_t -t bin_t -c file -p execute
refuse "gear_enter_t cannot read state" -A -s gear_enter_t -t gear_var_lib_t -c file -p read

# The file contexts resolve as gear.fc says (and leave Podman's storage/ alone).
label() { selabel_lookup_best_match -f "$fc" -p "$1" ${2:+-m "$2"} | awk '{print $NF}' | cut -d: -f3; }
while read -r path mode want; do
  [ "$mode" = - ] && mode=
  got=$(label "$path" "$mode")
  if [ "$got" = "$want" ]; then ok "$path is $want"; else bad "$path is $got, expected $want"; fi
done <<'PATHS'
/usr/libexec/gear/gear-keys file gear_keys_exec_t
/usr/libexec/gear/gear-git-shell file gear_git_shell_exec_t
/usr/libexec/gear/gear-enter file gear_enter_exec_t
/usr/libexec/gear/gear-enterd file gear_enterd_exec_t
/usr/libexec/gear/gear-api file bin_t
/var/lib/containers - var_lib_t
/var/lib/containers/storage/overlay - var_lib_t
/var/lib/containers/units/ctr-a.service file gear_unit_file_t
/var/lib/containers/specs/a.json file gear_var_lib_t
/var/lib/containers/env/a file gear_env_t
/var/lib/containers/ports/4000 - gear_var_lib_t
/var/lib/containers/mcs/s0:c1,c2 - gear_var_lib_t
/var/lib/containers/builds/b1/log file gear_var_lib_t
/var/lib/containers/keys/a file gear_keys_file_t
/var/lib/containers/git/r1/objects/pack/x.pack file gear_git_t
/var/lib/containers/git/r1/hooks/post-receive file gear_git_hook_exec_t
/var/lib/containers/home dir home_root_t
/var/lib/containers/home/a dir user_home_dir_t
/var/lib/containers/volumes/a/data dir gear_var_lib_t
/etc/gear/tokens file gear_secret_t
/etc/gear/tls/key.pem file gear_secret_t
/etc/gear/api.conf file gear_conf_t
/run/gear/locks/a file gear_runtime_t
/run/gear/api.sock sock_file gear_api_sock_t
/run/gear/enter.sock sock_file gear_enter_sock_t
PATHS

[ "$fails" = 0 ] || { echo "$fails check(s) failed" >&2; exit 1; }
echo "all checks passed"
