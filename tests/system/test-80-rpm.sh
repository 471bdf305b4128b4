#!/usr/bin/env bash
# The RPM (make rpm) in a fresh machine without the staged install: `rpm -i` gives a working
# gear (scriptlets apply the presets, the socket serves, a container installs and serves,
# the man pages and completions are there), and `rpm -e` stops and removes gear's units but
# keeps /var/lib/containers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
peer() { "$TESTBED" exec "$PEER" "$@"; }
trap '"$TESTBED" down "$PEER" >/dev/null 2>&1 || true' EXIT

step "the RPM of this build (made again if older than the release build)"
rpm_file=$(ls "$REPO"/target/rpm/RPMS/*/gear-[0-9]*.rpm 2>/dev/null | head -1 || true)
if [ -z "$rpm_file" ] || [ "$rpm_file" -ot "$REPO/target/release/gear" ]; then
  bash "$REPO/rpm/build.sh" >/dev/null 2>&1 || fail "make rpm failed (run it by hand to see why)"
  rpm_file=$(ls "$REPO"/target/rpm/RPMS/*/gear-[0-9]*.rpm | head -1)
fi
echo "$rpm_file"

step "a fresh machine with no gear in it"
"$TESTBED" up "$PEER" --bridge >/dev/null
assert_eq no "$(peer sh -c 'test -e /usr/bin/gear && echo yes || echo no')"
"$TESTBED" images "$PEER" >/dev/null
peer sh -c 'cat > /root/gear.rpm' < "$rpm_file"

# Debian's rpm prints a warning that packages should go through alien; it is not an error.
step "rpm -i: --nodeps, because on Debian dpkg owns systemd, docker and iptables, not rpm"
peer rpm -i --nodeps /root/gear.rpm
peer rpm -q gear
assert_eq "0.1.0" "$(peer rpm -q --qf '%{VERSION}' gear)"

step "the scriptlets applied the presets and made the user and the state directory"
for u in gear-api.socket container-active.target gear-idler.service gear-enter.socket; do
  assert_eq enabled "$(peer systemctl is-enabled "$u")" "$u"
done
peer getent passwd gear-keys >/dev/null || fail "no user gear-keys"
assert_eq "755 root" "$(peer stat -c '%a %U' /var/lib/containers/units)"
# Enabled is not started: the socket starts when asked (or at the next boot).
assert_eq inactive "$(peer systemctl is-active gear-api.socket || true)"

step "systemctl start gear-api.socket serves"
peer systemctl start gear-api.socket
assert_eq '{"Containers":[]}' "$(peer curl -fsS http://127.0.0.1:43273/containers)"
assert_eq active "$(peer systemctl is-active gear-api.service)"

step "a container installs and serves"
peer gear install gear-test/httpd:latest localhost/rpm-1 --start -p 8080:4100 >/dev/null
wait_until 30 peer curl -fsS http://127.0.0.1:4100/
assert_eq active "$(peer systemctl is-active ctr-rpm-1.service)"

step "man pages and completions"
page=$(peer env MANPAGER=cat MANWIDTH=100 man gear-install)
assert_contains "$page" "gear-install - Install IMAGE as a container"
assert_contains "$(peer env MANPAGER=cat man 8 gear-api)" "gear-api"
assert_contains "$(peer env MANPAGER=cat man gear)" "gear-start(1)"
assert_contains "$(peer cat /usr/share/bash-completion/completions/gear)" "_gear()"
peer test -s /usr/share/zsh/site-functions/_gear
peer test -s /usr/share/fish/vendor_completions.d/gear.fish

# gear-selinux, when make rpm built it (selinux-policy/ present): the machine has no SELinux,
# so its scriptlets must pass over semodule and restorecon without failing the transaction.
selinux_rpm=$(ls "$(dirname "$rpm_file")"/../noarch/gear-selinux-*.rpm 2>/dev/null | head -1 || true)
if [ -n "$selinux_rpm" ]; then
  step "gear-selinux installs and goes without SELinux on the host"
  peer sh -c 'cat > /root/gear-selinux.rpm' < "$selinux_rpm"
  peer rpm -i --nodeps /root/gear-selinux.rpm
  peer test -s /usr/share/selinux/packages/targeted/gear.pp.bz2
  peer rpm -e gear-selinux
fi

step "rpm -e stops and removes gear's units, and keeps /var/lib/containers"
peer rpm -e gear
for u in gear-api.socket gear-api.service gear-idler.service gear-enter.socket ctr-rpm-1.service; do
  assert_eq inactive "$(peer systemctl is-active "$u" || true)" "$u after rpm -e"
done
assert_eq no "$(peer sh -c 'test -e /usr/lib/systemd/system/gear-api.socket && echo yes || echo no')"
assert_eq no "$(peer sh -c 'test -e /usr/libexec/gear && echo yes || echo no')"
assert_eq 0 "$(peer sh -c 'ls /etc/systemd/system/*.wants | grep -c "^gear-" || true')" "gear's enable links"
peer test -f /var/lib/containers/specs/rpm-1.json || fail "rpm -e removed the container's state"
peer test -f /var/lib/containers/units/ctr-rpm-1.service || fail "rpm -e removed the container's unit"
! peer curl -fsS -m 2 http://127.0.0.1:43273/containers >/dev/null 2>&1 || fail "the agent still answers"
echo "ok"
