# gear: build, install, check and test. rpm/gear.spec calls `make build` and `make install`.
#
#   make build                      release binaries in target/release
#   make install DESTDIR=dir        the install layout under dir (PREFIX=/usr)
#   make check                      rustfmt and clippy, warnings are errors
#   make test                       unit + integration tests, then system tests in a booted machine
#   make fuzz [FUZZ_SECS=60]        the random-input tests of tests/fuzz.rs, longer than in make test
#   make demo / demo-down / shell   a sandbox machine running gear
#   make bench                      benchmarks in a booted machine
#   make chaos                      the fault matrix in booted machines (docs/reliability.md)
#   make selinux                    the SELinux policy module, linked and checked (docs/selinux.md)

PREFIX     ?= /usr
DESTDIR    ?=
SYSCONFDIR ?= /etc
BINDIR      = $(PREFIX)/bin
LIBEXECDIR  = $(PREFIX)/libexec/gear
UNITDIR     = $(PREFIX)/lib/systemd/system
PRESETDIR   = $(PREFIX)/lib/systemd/system-preset
TMPFILESDIR = $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR = $(PREFIX)/lib/sysusers.d
SSHDCONFDIR = $(SYSCONFDIR)/ssh/sshd_config.d
DOCDIR      = $(PREFIX)/share/doc/gear

CARGO    ?= cargo
RELEASE   = target/release
# Helper programs, installed to $(LIBEXECDIR); `gear` itself goes to $(BINDIR).
HELPERS   = gear-api gear-step
UNITS     = gear-api.socket gear-api.service container.target container-active.target container.slice
# Docker's start brings the started containers back (docs/reliability.md).
UNITS    += container-resume.service
# The idler (docs/idling.md).
HELPERS  += gear-idler
UNITS    += gear-idler.service
# SSH into containers (docs/ssh.md).
HELPERS  += gear-keys gear-enter gear-enterd
UNITS    += gear-enter.socket gear-enter@.service
DOCS      = README.md $(wildcard docs/*.md)
# Where `make test` and `make demo` stage an install tree for the test machine.
STAGE     = target/stage
TESTBED   = tests/system/testbed.sh

.PHONY: all build install check unit-test stage system-test test demo demo-down shell bench clean fuzz chaos selinux

all: build

build:
	$(CARGO) build --release --locked

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(PRESETDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(RELEASE)/gear $(DESTDIR)$(BINDIR)/gear
	for h in $(HELPERS); do install -m 0755 $(RELEASE)/$$h $(DESTDIR)$(LIBEXECDIR)/$$h; done
	for u in $(UNITS); do install -m 0644 units/$$u $(DESTDIR)$(UNITDIR)/$$u; done
# The drop-in that makes Docker's start start container-resume.service.
	install -d $(DESTDIR)$(UNITDIR)/docker.service.d
	install -m 0644 units/docker.service.d/50-gear.conf $(DESTDIR)$(UNITDIR)/docker.service.d/50-gear.conf
	install -m 0644 units/system-preset/80-gear.preset $(DESTDIR)$(PRESETDIR)/80-gear.preset
	install -m 0644 units/tmpfiles.d/gear.conf $(DESTDIR)$(TMPFILESDIR)/gear.conf
	install -d $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SSHDCONFDIR)
	install -m 0644 units/sysusers.d/gear.conf $(DESTDIR)$(SYSUSERSDIR)/gear.conf
	install -m 0644 units/sshd_config.d/40-gear-keys.conf $(DESTDIR)$(SSHDCONFDIR)/40-gear-keys.conf
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

unit-test:
	$(CARGO) test --all-targets --locked

# tests/fuzz.rs runs each target for 1 s in unit-test; here for FUZZ_SECS, optimised.
FUZZ_SECS ?= 60
fuzz:
	GEAR_FUZZ_SECS=$(FUZZ_SECS) $(CARGO) test --release --locked --test fuzz -- --nocapture

# The install tree the test machine boots with; rebuilt every time so it never goes stale.
stage:
	rm -rf $(STAGE)
	$(MAKE) install DESTDIR=$(CURDIR)/$(STAGE)

system-test: stage
	bash tests/system/run.sh $(CURDIR)/$(STAGE) $(ONLY)

test: check unit-test selinux system-test

demo: stage
	bash tests/system/demo.sh $(CURDIR)/$(STAGE)

demo-down:
	bash $(TESTBED) down-all

shell:
	bash $(TESTBED) shell gear-demo

bench: stage
	bash tests/bench/run.sh $(CURDIR)/$(STAGE)

# Slow (a fresh machine per fault), so not part of `make test`. ONLY=docker runs the faults
# whose script name contains `docker`.
chaos: stage
	bash tests/chaos/run.sh $(CURDIR)/$(STAGE) $(ONLY)

# SELinux policy: selinux-policy/gear.pp, built with the reference policy's development
# files and linked into a scratch copy of the host's full policy store. The host packages
# are installed on demand, as testbed.sh does for its own.
SELINUX_PKGS = selinux-policy-dev selinux-policy-default checkpolicy semodule-utils setools selinux-utils
selinux:
	@missing=$$(for p in $(SELINUX_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get -o DPkg::Lock::Timeout=900 update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends $$missing; \
	fi
	$(MAKE) -C selinux-policy check

clean:
	$(CARGO) clean
	$(MAKE) -C selinux-policy clean
