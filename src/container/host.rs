//! What gear works with on one host: its files and the seams to systemd, Docker and the
//! firewall. One [`Host`] serves every operation of `gear-api` and `gear-idler`; the
//! binaries choose the real parts ([`System`]), unit tests the fakes.
//!
//! The steps every operation is made of live here once: taking the container's lock, the
//! "wanted at boot" link, running a systemd job. `lifecycle` and `idling` compose them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::Context as _;

use super::lifecycle::Error;
use super::lock::{Lock, LockError};
use super::ports::PortRange;
use super::spec::ContainerSpec;
use crate::docker::{CgroupDriver, Docker, DockerApi};
use crate::id::ContainerId;
use crate::netfilter::{Firewall, Iptables};
use crate::paths::Paths;
use crate::systemd::dbus::Dbus;
use crate::systemd::{Action, JobResult, Systemd};

/// The outside systems a [`Host`] is made of, chosen once by the binary (or the test).
pub trait Parts: Send + Sync + 'static {
    /// The service manager.
    type Systemd: Systemd;
    /// The container engine.
    type Docker: Docker;
    /// The firewall (the idler's rules, containers' links).
    type Firewall: Firewall;
    /// The user database (isolated containers' users).
    type Accounts: crate::accounts::Accounts;
}

/// The real parts: systemd over D-Bus, Docker's Engine API, the `iptables` programs.
#[derive(Debug)]
pub struct System;

impl Parts for System {
    type Systemd = Dbus;
    type Docker = DockerApi;
    type Firewall = Iptables;
    type Accounts = crate::accounts::Useradd;
}

/// How long an operation waits for another one on the same container by default: longer
/// than a normal start or stop, shorter than a client's patience.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The target that starts containers at boot; gear enables it when it starts a container,
/// so a host that never ran `systemctl preset` still brings its containers back.
pub const BOOT_TARGET: &str = "container-active.target";
/// The idler's unit; gear enables and starts it when a container can idle.
pub const IDLER_UNIT: &str = "gear-idler.service";

/// One host's parts.
pub struct Host<P: Parts> {
    /// Every on-disk location.
    pub paths: Paths,
    /// The service manager.
    pub systemd: P::Systemd,
    /// The container engine.
    pub docker: P::Docker,
    /// The firewall.
    pub firewall: P::Firewall,
    /// The user database.
    pub accounts: P::Accounts,
    /// Where allocated host ports come from.
    pub port_range: PortRange,
    /// Ports of that range an allocation skips: the kernel's ephemeral ports, which the
    /// binaries set from [`PortRange::ephemeral`].
    pub avoid_ports: Option<PortRange>,
    /// How long an operation waits for the lock of a busy container.
    pub lock_wait: Duration,
    /// Bind mounts of `/`, `/etc`, gear's state or the Docker socket are allowed
    /// (`gear-api --allow-system-mounts`).
    pub allow_system_mounts: bool,
    /// Whether containers get their own SELinux level; the binaries set it from
    /// [`super::mcs::Selinux::probe`], tests as they need.
    pub selinux: super::mcs::Selinux,
    /// Asked once: the engine does not change its driver while running.
    cgroup_driver: tokio::sync::OnceCell<CgroupDriver>,
    /// The ids of the installed containers, read again only when the units directory
    /// changed.
    pub installed: super::list::InstalledCache,
    /// Operations that run on although their client went away (installs with progress);
    /// the agent does not exit while there are any.
    pub detached: Arc<AtomicUsize>,
}

impl<P: Parts> fmt::Debug for Host<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("paths", &self.paths)
            .field("port_range", &self.port_range)
            .finish_non_exhaustive()
    }
}

impl<P: Parts> Host<P> {
    /// A host with these parts.
    pub fn new(
        paths: Paths,
        systemd: P::Systemd,
        docker: P::Docker,
        firewall: P::Firewall,
        port_range: PortRange,
    ) -> Self {
        Host {
            paths,
            systemd,
            docker,
            firewall,
            accounts: Default::default(),
            port_range,
            avoid_ports: None,
            lock_wait: LOCK_WAIT,
            allow_system_mounts: false,
            selinux: Default::default(),
            cgroup_driver: tokio::sync::OnceCell::new(),
            installed: Default::default(),
            detached: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes the lock of `id` for one whole operation, waiting at most [`Host::lock_wait`].
    pub async fn lock(&self, id: &ContainerId) -> Result<Lock, Error> {
        match Lock::acquire(&self.paths, id, self.lock_wait).await {
            Ok(lock) => Ok(lock),
            Err(LockError::Busy(busy)) => Err(Error::Busy(busy)),
            Err(LockError::Io(e)) => Err(Error::Host(e)),
        }
    }

    /// Takes the lock of `id` if nobody holds it (the idler's ticks never wait).
    pub fn try_lock(&self, id: &ContainerId) -> anyhow::Result<Option<Lock>> {
        Lock::try_acquire(&self.paths, id)
    }

    /// Whether `id` is installed (its unit file exists).
    pub fn is_installed(&self, id: &ContainerId) -> bool {
        self.paths.unit_file(id).exists()
    }

    pub(crate) fn require_installed(&self, id: &ContainerId) -> Result<(), Error> {
        match self.is_installed(id) {
            true => Ok(()),
            false => Err(Error::NotInstalled(id.clone())),
        }
    }

    /// The spec `id` was installed with.
    pub fn spec(&self, id: &ContainerId) -> Result<ContainerSpec, Error> {
        self.require_installed(id)?;
        Ok(ContainerSpec::load(&self.paths, id)?)
    }

    /// Runs `action` on the unit of `id` and waits for it; a job that does not end `done`
    /// is an error naming systemd's result.
    pub(crate) async fn job(&self, action: Action, id: &ContainerId) -> Result<(), Error> {
        match self.systemd.run_job(action, &id.unit_name()).await? {
            JobResult::Done => Ok(()),
            JobResult::Other(result) => Err(Error::Job {
                id: id.clone(),
                action: match action {
                    Action::Start => "start",
                    Action::Stop => "stop",
                    Action::Restart => "restart",
                },
                result,
            }),
        }
    }

    /// Marks `id` to run at boot (a link in `container-active.target.wants`), and makes sure
    /// the boot target itself is enabled.
    pub(crate) async fn want_at_boot(&self, id: &ContainerId) -> anyhow::Result<()> {
        self.link(&self.paths.active_wants_dir(), id)?;
        self.ensure_enabled(BOOT_TARGET).await
    }

    /// Takes `id` out of the boot target: it stays down at the next boot.
    pub(crate) fn unwant_at_boot(&self, id: &ContainerId) -> anyhow::Result<()> {
        crate::atomic_file::remove(&self.paths.active_wants_dir().join(id.unit_name()))
    }

    /// Makes sure the idler runs (and starts at boot): a container that can idle needs it.
    pub(crate) async fn ensure_idler(&self) -> anyhow::Result<()> {
        self.ensure_enabled(IDLER_UNIT).await?;
        if self.systemd.unit_state(IDLER_UNIT).await?.active_state != "active" {
            match self.systemd.run_job(Action::Start, IDLER_UNIT).await? {
                JobResult::Done => {}
                JobResult::Other(r) => anyhow::bail!("starting {IDLER_UNIT} ended with '{r}'"),
            }
        }
        Ok(())
    }

    /// Enables `unit` (`WantedBy=multi-user.target`) unless it already is; one stat(2) when
    /// it is, which is every time but the first.
    async fn ensure_enabled(&self, unit: &str) -> anyhow::Result<()> {
        if self.paths.boot_wants_dir().join(unit).exists() {
            return Ok(());
        }
        self.systemd
            .enable(unit)
            .await
            .with_context(|| format!("enabling {unit}"))
    }

    /// Links the unit file of `id` into `dir` (systemd's unit dir, or a target's `.wants`).
    pub(crate) fn link(&self, dir: &Path, id: &ContainerId) -> anyhow::Result<()> {
        let link = dir.join(id.unit_name());
        let target = self.paths.unit_file(id);
        if std::fs::read_link(&link).is_ok_and(|t| t == target) {
            return Ok(());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".{}.tmp", id.unit_name()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .with_context(|| format!("linking {}", tmp.display()))?;
        std::fs::rename(&tmp, &link).with_context(|| format!("linking {}", link.display()))
    }

    /// Makes systemd see the current unit file. A daemon-reload is needed only when
    /// systemd has an older version loaded (or cached the name as not found); a new unit
    /// is loaded on first reference, which keeps installs fast.
    pub(crate) async fn ensure_loaded(&self, id: &ContainerId) -> anyhow::Result<()> {
        // GetUnit, not LoadUnit: loading a new unit makes systemd read every unit
        // directory, a cost that grows with the number of containers.
        match self.systemd.loaded_state(&id.unit_name()).await? {
            Some(state) if state.load_state != "loaded" || state.need_daemon_reload => {
                self.systemd.reload().await
            }
            _ => Ok(()),
        }
    }

    /// Docker's cgroup driver, asked once.
    pub(crate) async fn cgroup_driver(&self) -> anyhow::Result<CgroupDriver> {
        Ok(*self
            .cgroup_driver
            .get_or_try_init(|| self.docker.cgroup_driver())
            .await
            .context("asking Docker for its cgroup driver")?)
    }
}

/// The fakes of every seam, for unit tests.
#[cfg(test)]
#[derive(Debug)]
pub struct Fake;

#[cfg(test)]
impl Parts for Fake {
    type Systemd = crate::systemd::fake::FakeSystemd;
    type Docker = crate::docker::fake::FakeDocker;
    type Firewall = crate::netfilter::fake::FakeFirewall;
    type Accounts = crate::accounts::fake::FakeAccounts;
}

/// A host under `dir` with fake systemd, firewall and `docker`, handing out ports 4000-4099:
/// what the unit tests of everything built on [`Host`] start from.
#[cfg(test)]
pub(crate) fn fake_host(dir: &Path, docker: crate::docker::fake::FakeDocker) -> Host<Fake> {
    let mut host = Host::new(
        Paths::new(dir),
        crate::systemd::fake::FakeSystemd::default(),
        docker,
        crate::netfilter::fake::FakeFirewall::default(),
        PortRange {
            first: 4000,
            last: 4099,
        },
    );
    host.lock_wait = Duration::from_millis(200);
    host
}
