#!/bin/bash
# build.sh — `make rpm`: source and binary RPMs of gear from rpm/gear.spec, then rpmlint on
# them. Everything goes under target/rpm (SOURCES, SRPMS, RPMS). The crates come from
# Cargo.lock's vendor tarball, made once per Cargo.lock from the cargo registry on this host,
# or from crates.io for the crates the host never fetched (other platforms' crates, which
# `cargo vendor` wants and `cargo build` never downloads). Building the RPMs uses no network.
#
#   usage: rpm/build.sh            quick: the binary RPM is built in place from this checkout,
#                                  reusing target/release (rpmbuild --build-in-place)
#          GEAR_RPM_REBUILD=1 rpm/build.sh
#                                  the binary RPM is rebuilt from the source RPM alone, in a
#                                  clean directory, with the vendored crates (slow: a full
#                                  build; add GEAR_RPM_CHECK=1 to run %check's cargo test too)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOP=$REPO/target/rpm
SPEC=$REPO/rpm/gear.spec
# Host packages: rpmbuild and rpmlint.
HOST_PKGS=(rpm rpmlint)

log() { echo "rpm: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Install missing host packages, as tests/system/testbed.sh deps does (Debian hosts only).
deps() {
  local p missing=()
  command -v dpkg-query >/dev/null || return 0
  for p in "${HOST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=900 update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends "${missing[@]}" >&2
}

# rpmbuild with everything under $TOP. On Debian the rpm database is empty (dpkg owns the
# packages), so BuildRequires cannot be checked: --nodeps there. And Debian's brp-compress
# is a bash script behind #!/bin/sh (dash fails on `read -d`), so man pages would stay
# uncompressed: run it with bash.
rpmbuild_() {
  local debian=()
  rpm -q rpm >/dev/null 2>&1 ||
    debian=(--nodeps --define "__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}")
  rpmbuild --define "_topdir $TOP" "${debian[@]}" "$@"
}

# Source0: the files git knows in this checkout (tracked, or new and not ignored), as they
# are on disk now, so uncommitted work is packaged too.
source_tarball() {
  local out=$1 name=$2
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - --sort=name --owner=0 --group=0 --numeric-owner \
      --transform "s,^,$name/," -czf "$out")
}

# Source1: `cargo vendor` of Cargo.lock, kept per Cargo.lock hash, so it is made once.
vendor_tarball() {
  local out=$1 hash cache tmp
  hash=$(cat "$REPO/Cargo.lock" "$REPO/Cargo.toml" "$REPO"/tools/*/Cargo.toml | sha256sum | cut -c1-16)
  cache=$TOP/cache/vendor-$hash.tar.gz
  if [ ! -f "$cache" ]; then
    log "vendoring the crates of Cargo.lock"
    rm -rf "$TOP/cache"
    tmp=$(mktemp -d)
    if ! (cd "$REPO" && cargo vendor --locked --offline -q "$tmp/vendor" >/dev/null 2>&1); then
      log "some crates are not in this host's cargo registry: fetching them from crates.io"
      rm -rf "$tmp/vendor"
      (cd "$REPO" && cargo vendor --locked -q "$tmp/vendor" >/dev/null)
    fi
    mkdir -p "$TOP/cache"
    tar -C "$tmp" --sort=name --owner=0 --group=0 --numeric-owner -czf "$cache.part" vendor
    mv "$cache.part" "$cache"
    rm -rf "$tmp"
  fi
  cp "$cache" "$out"
}

main() {
  local version name srpm with_selinux=(--without selinux)
  deps
  version=$(rpmspec -q --srpm --qf '%{version}' "$SPEC" 2>/dev/null)
  name=gear-$version
  rm -rf "$TOP/SOURCES" "$TOP/SRPMS" "$TOP/RPMS" "$TOP/BUILDROOT"
  mkdir -p "$TOP"/{SOURCES,SRPMS,RPMS,BUILD}
  source_tarball "$TOP/SOURCES/$name.tar.gz" "$name"
  vendor_tarball "$TOP/SOURCES/$name-vendor.tar.gz"

  # The policy subpackage needs its sources and the reference policy's Makefile.
  if [ -f "$REPO/selinux-policy/gear.te" ] && [ -f /usr/share/selinux/devel/Makefile ]; then
    with_selinux=(--with selinux)
  else
    log "no selinux-policy/gear.te or /usr/share/selinux/devel/Makefile: building without gear-selinux"
  fi

  rpmbuild_ -bs "$SPEC" >&2
  srpm=$(ls "$TOP"/SRPMS/"$name"-*.src.rpm)
  if [ "${GEAR_RPM_REBUILD:-0}" = 1 ]; then
    # CARGO_TARGET_DIR unset: the build is as clean as the source RPM.
    local check=(--nocheck)
    [ "${GEAR_RPM_CHECK:-0}" = 1 ] && check=()
    (unset CARGO_TARGET_DIR; rpmbuild_ --rebuild "${check[@]}" "${with_selinux[@]}" "$srpm") >&2
  else
    # In place: %build's `make build` finds target/release up to date.
    (cd "$REPO" && rpmbuild_ -bb --build-in-place --without vendor --nocheck \
      "${with_selinux[@]}" "$SPEC") >&2
  fi

  echo "--- built"
  (cd "$TOP" && ls SRPMS/*.rpm RPMS/*/*.rpm)
  echo "--- rpmlint"
  # Any finding fails (-s: warnings too); rpm/gear.spec explains the ones rpm/rpmlint.toml
  # filters.
  rpmlint -s -c "$REPO/rpm/rpmlint.toml" "$SPEC" "$srpm" "$TOP"/RPMS/*/*.rpm
}

main "$@"
