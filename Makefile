# gear: build, install, check and test. rpm/gear.spec calls `make build` and `make install`.
#
#   make build                      release binaries in target/release
#   make install DESTDIR=dir        the install layout under dir (PREFIX=/usr)
#   make check                      rustfmt and clippy, warnings are errors
#   make rpm                        source and binary RPMs in target/rpm, then rpmlint
#   make test                       unit + integration tests, make rpm, then system tests in a booted machine
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
MANDIR      = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  = $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d

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
# Builds from source (docs/builds.md).
HELPERS  += gear-builder
UNITS    += gear-enter.socket gear-enter@.service
# Git repositories (docs/git.md): the forced command of repository keys.
HELPERS  += gear-git-shell
DOCS      = README.md $(wildcard docs/*.md)
# Where `make test` and `make demo` stage an install tree for the test machine.
STAGE     = target/stage
TESTBED   = tests/system/testbed.sh

.PHONY: all build install check unit-test stage system-test test demo demo-down shell bench clean fuzz chaos rpm selinux

all: build

# --workspace: also tools/manuals, which writes the man pages and completions at install.
build:
	$(CARGO) build --release --locked --workspace

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
# Man pages (gear and its subcommands in man1, the helpers in man8) and gear's completions,
# generated from the clap definitions (tools/manuals; docs/packaging.md).
	rm -rf $(RELEASE)/manuals
	$(RELEASE)/gear-manuals $(RELEASE)/manuals
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0644 $(RELEASE)/manuals/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(RELEASE)/manuals/man8/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(RELEASE)/manuals/completions/gear.bash $(DESTDIR)$(BASHCOMPDIR)/gear
	install -m 0644 $(RELEASE)/manuals/completions/_gear $(DESTDIR)$(ZSHCOMPDIR)/_gear
	install -m 0644 $(RELEASE)/manuals/completions/gear.fish $(DESTDIR)$(FISHCOMPDIR)/gear.fish

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

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

# make rpm before the system tests: test-80-rpm installs that RPM (about 30 s when the
# release build is current).
test: check unit-test selinux rpm system-test

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

# Source and binary RPMs in target/rpm, checked with rpmlint (docs/packaging.md).
# GEAR_RPM_REBUILD=1: the binary RPM from the source RPM alone, offline (a full build).
rpm: build
	bash rpm/build.sh

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
