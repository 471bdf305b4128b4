//! Install, start, stop, restart and delete: a container's files and its unit, kept
//! consistent through crashes.
//!
//! The unit file is the commit point: it is written last on install and removed first on
//! delete, so a `kill -9` at any moment leaves a container either installed (unit file
//! present, everything it refers to written before it) or not at all (leftovers of a
//! half-done install are reused or cleaned by the next install or delete of that id).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::sync::mpsc::UnboundedSender;

use super::environment::Environment;
use super::ports::{PortError, PortPair, PortRange, Ports};
use super::spec::{ContainerSpec, Image, InstallRequest};
use super::unit;
use crate::atomic_file;
use crate::docker::{CgroupDriver, Docker};
use crate::id::ContainerId;
use crate::linker::{self, Netns, Nsenter};
use crate::links::NetworkLink;
use crate::paths::Paths;
use crate::systemd::{Action, JobResult, Systemd, UnitState};

/// Why an operation on a container failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container with this id is installed.
    #[error("container {0} is not installed")]
    NotInstalled(ContainerId),
    /// The image is not on the host and could not be pulled.
    #[error("image {image} is not on this host and could not be pulled: {reason}")]
    ImageUnavailable {
        /// The image asked for.
        image: Image,
        /// Docker's reason.
        reason: String,
    },
    /// The ports could not be reserved.
    #[error(transparent)]
    Ports(#[from] PortError),
    /// systemd ran the job, and it did not succeed.
    #[error(
        "{action} of container {id} ended with '{result}'; `gear status` and the journal of ctr-{id}.service say why"
    )]
    Job {
        /// The container.
        id: ContainerId,
        /// `start`, `stop` or `restart`.
        action: &'static str,
        /// systemd's job result (`failed`, `timeout`, ...).
        result: String,
    },
    /// systemd, Docker or the disk failed.
    #[error("{0:#}")]
    Host(#[from] anyhow::Error),
}

/// What gear works with on one host: its files, systemd, Docker, and per-id locks.
#[derive(Debug)]
pub struct Host<S, D, N = Nsenter> {
    /// Every on-disk location.
    pub paths: Paths,
    /// The service manager.
    pub systemd: S,
    /// The container engine.
    pub docker: D,
    /// Where allocated host ports come from.
    pub port_range: PortRange,
    locks: Mutex<HashMap<ContainerId, Arc<tokio::sync::Mutex<()>>>>,
    /// Asked once: the engine does not change its driver while running.
    cgroup_driver: tokio::sync::OnceCell<CgroupDriver>,
    /// Where link rules are applied (containers' network namespaces).
    pub netns: N,
}

/// The outcome of an install.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Installed {
    /// The container.
    pub id: ContainerId,
    /// Its published ports.
    pub ports: Vec<PortPair>,
    /// Whether it was started.
    pub started: bool,
}

impl<S: Systemd, D: Docker> Host<S, D> {
    /// A host with these parts.
    pub fn new(paths: Paths, systemd: S, docker: D, port_range: PortRange) -> Self {
        Host {
            paths,
            systemd,
            docker,
            port_range,
            locks: Mutex::new(HashMap::new()),
            cgroup_driver: tokio::sync::OnceCell::new(),
            netns: Nsenter,
        }
    }
}

impl<S, D, N> Host<S, D, N> {
    /// The same host, applying links through `netns` (tests use a recording fake).
    pub fn with_netns<M>(self, netns: M) -> Host<S, D, M> {
        Host {
            paths: self.paths,
            systemd: self.systemd,
            docker: self.docker,
            port_range: self.port_range,
            locks: self.locks,
            cgroup_driver: self.cgroup_driver,
            netns,
        }
    }
}

impl<S: Systemd, D: Docker, N: Netns> Host<S, D, N> {
    /// Serialises operations on one id; operations on different ids run in parallel.
    async fn lock(&self, id: &ContainerId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Whether `id` is installed (its unit file exists).
    pub fn is_installed(&self, id: &ContainerId) -> bool {
        self.paths.unit_file(id).exists()
    }

    fn require_installed(&self, id: &ContainerId) -> Result<(), Error> {
        match self.is_installed(id) {
            true => Ok(()),
            false => Err(Error::NotInstalled(id.clone())),
        }
    }

    /// Stores `spec` as `specs/<id>.json`, atomically.
    fn write_spec(&self, spec: &ContainerSpec) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(spec).context("serialising the spec")?;
        atomic_file::write(&self.paths.spec_file(&spec.id), &json, 0o644)
    }

    /// The spec `id` was installed with.
    pub fn spec(&self, id: &ContainerId) -> Result<ContainerSpec, Error> {
        self.require_installed(id)?;
        let path = self.paths.spec_file(id);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?)
    }

    /// Installs (or updates) `id`. An update takes effect at the next start; a running
    /// container keeps running.
    pub async fn install(
        &self,
        id: &ContainerId,
        req: InstallRequest,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<Installed, Error> {
        let _guard = self.lock(id).await;
        if !self.docker.image_exists(req.image.as_str()).await? {
            if let Some(tx) = progress {
                let _ = tx.send(format!("pulling {}", req.image));
            }
            self.docker
                .pull(req.image.as_str(), progress)
                .await
                .map_err(|e| Error::ImageUnavailable {
                    image: req.image.clone(),
                    reason: format!("{e:#}"),
                })?;
        }
        // Until the commit point, a failure (a full disk, say) must leave nothing of a
        // container that was not installed: its reservations and files are taken back.
        let partial = (!self.is_installed(id)).then(|| PartialInstall {
            paths: &self.paths,
            range: self.port_range,
            id,
        });
        let ports = Ports::new(&self.paths, self.port_range).reserve(id, &req.ports)?;
        match req.environment {
            Some(body) => Environment::from(body).store(&self.paths, id)?,
            None if !self.paths.env_file(id).exists() => {
                Environment::new().store(&self.paths, id)?
            }
            None => {}
        }
        // Links given replace the old ones; none given keeps them (as geard's NetworkLinks).
        let links = match req.network_links {
            Some(links) => links,
            None => self.spec(id).map(|old| old.links).unwrap_or_default(),
        };
        let spec = ContainerSpec {
            id: id.clone(),
            image: req.image,
            links,
            ports: ports.clone(),
            slice: req.systemd_slice.unwrap_or_default(),
            memory: req.memory,
            cpus: req.cpus,
            restart: req.restart.unwrap_or_default(),
            idle: req.idle,
        };
        let driver = *self
            .cgroup_driver
            .get_or_try_init(|| self.docker.cgroup_driver())
            .await
            .context("asking Docker for its cgroup driver")?;
        let unit = unit::render(&spec, &self.paths, driver).context("rendering the unit")?;
        self.write_spec(&spec)?;
        let text = format!("{}{}", unit::GENERATED_HEADER, unit.render());
        // The commit point: from here on the container is installed.
        atomic_file::write(&self.paths.unit_file(id), text.as_bytes(), 0o644)?;
        std::mem::forget(partial);
        self.link(&self.paths.systemd_dir(), id)?;
        self.ensure_loaded(id).await?;
        if req.started {
            self.start_locked(id).await?;
        }
        Ok(Installed {
            id: id.clone(),
            ports,
            started: req.started,
        })
    }

    /// Starts `id` and marks it to start at boot.
    pub async fn start(&self, id: &ContainerId) -> Result<(), Error> {
        let _guard = self.lock(id).await;
        self.require_installed(id)?;
        self.start_locked(id).await
    }

    async fn start_locked(&self, id: &ContainerId) -> Result<(), Error> {
        self.link(&self.paths.active_wants_dir(), id)?;
        // A unit that failed earlier starts afresh, and its restart counter too.
        self.systemd.reset_failed(&id.unit_name()).await?;
        self.job(Action::Start, id).await
    }

    /// Stops `id`; it stays stopped across reboots until started again.
    pub async fn stop(&self, id: &ContainerId) -> Result<(), Error> {
        let _guard = self.lock(id).await;
        self.require_installed(id)?;
        atomic_file::remove(&self.paths.active_wants_dir().join(id.unit_name()))?;
        self.job(Action::Stop, id).await
    }

    /// Restarts `id` (starting it if stopped) and marks it to start at boot.
    pub async fn restart(&self, id: &ContainerId) -> Result<(), Error> {
        let _guard = self.lock(id).await;
        self.require_installed(id)?;
        self.link(&self.paths.active_wants_dir(), id)?;
        self.systemd.reset_failed(&id.unit_name()).await?;
        self.job(Action::Restart, id).await
    }

    /// Replaces the links of `id`. They apply at every start; a running container gets
    /// them at once (its old link rules are replaced).
    pub async fn set_links(&self, id: &ContainerId, links: Vec<NetworkLink>) -> Result<(), Error> {
        let _guard = self.lock(id).await;
        let mut spec = self.spec(id)?;
        spec.links = links;
        self.write_spec(&spec)?;
        let name = unit::docker_name(id);
        if self.docker.inspect(&name).await?.is_some_and(|c| c.running) {
            linker::apply(&self.docker, &self.netns, &name, &spec.links).await?;
        }
        Ok(())
    }

    /// Sets (or, with `None`, removes) the idle policy of `id`; `gear-idler` applies it
    /// at its next look. Returns the updated spec.
    pub async fn set_idle_policy(
        &self,
        id: &ContainerId,
        policy: Option<crate::idle::IdlePolicy>,
    ) -> Result<ContainerSpec, Error> {
        let _guard = self.lock(id).await;
        let mut spec = self.spec(id)?;
        spec.idle = policy;
        self.write_spec(&spec)?;
        Ok(spec)
    }

    /// The environment of `id`; `None` if it has none.
    pub fn environment(&self, id: &ContainerId) -> Result<Option<Environment>, Error> {
        Ok(Environment::load(&self.paths, id)?)
    }

    /// Replaces (`reset`) or updates the environment of `id`, returning the result. It
    /// applies from the container's next start. Ids need not be installed yet: an
    /// environment set first is kept by a later install that brings none.
    pub async fn set_environment(
        &self,
        id: &ContainerId,
        env: Environment,
        reset: bool,
    ) -> Result<Environment, Error> {
        let _guard = self.lock(id).await;
        let env = match (reset, Environment::load(&self.paths, id)?) {
            (false, Some(mut old)) => {
                old.merge(env);
                old
            }
            _ => env,
        };
        env.store(&self.paths, id)?;
        Ok(env)
    }

    /// The systemd state of `id`.
    pub async fn state(&self, id: &ContainerId) -> Result<UnitState, Error> {
        self.require_installed(id)?;
        Ok(self.systemd.unit_state(&id.unit_name()).await?)
    }

    /// Stops every installed container and keeps them stopped at boot (geard's purge);
    /// nothing is removed. Returns the ids stopped, and the first error after trying all.
    pub async fn stop_all(&self) -> Result<Vec<ContainerId>, Error> {
        let ids = super::list::installed(&self.paths)?;
        let mut first_error = None;
        for id in &ids {
            if let Err(e) = self.stop(id).await {
                log::warn!("stopping {id}: {e}");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(ids),
        }
    }

    /// Deletes `id`: stops it, then removes its unit, links, spec, environment, ports and
    /// Docker container, and nothing of any other container.
    pub async fn delete(&self, id: &ContainerId) -> Result<(), Error> {
        let _guard = self.lock(id).await;
        let installed = self.is_installed(id);
        let leftovers = self.paths.spec_file(id).exists();
        if !installed && !leftovers {
            return Err(Error::NotInstalled(id.clone()));
        }
        let unit_name = id.unit_name();
        if installed && self.systemd.unit_state(&unit_name).await?.active_state != "inactive" {
            self.job(Action::Stop, id).await?;
        }
        // Unit file first: once it is gone the container is no longer installed.
        atomic_file::remove(&self.paths.unit_file(id))?;
        atomic_file::remove(&self.paths.active_wants_dir().join(&unit_name))?;
        atomic_file::remove(&self.paths.systemd_dir().join(&unit_name))?;
        Ports::new(&self.paths, self.port_range).release(id)?;
        atomic_file::remove(&self.paths.env_file(id))?;
        atomic_file::remove(&self.paths.spec_file(id))?;
        self.docker.remove_container(&unit::docker_name(id)).await?;
        atomic_file::remove(&self.paths.started_marker(id))?;
        if installed {
            self.systemd.reset_failed(&unit_name).await.ok();
            self.systemd.reload().await?;
        }
        Ok(())
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

    /// Links the unit file into `dir` (systemd's unit dir, or a target's `.wants`).
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
    async fn ensure_loaded(&self, id: &ContainerId) -> anyhow::Result<()> {
        let state = self.systemd.unit_state(&id.unit_name()).await?;
        if state.load_state != "loaded" || state.need_daemon_reload {
            self.systemd.reload().await?;
        }
        Ok(())
    }
}

/// What an install of a new container has done before its commit point; dropped before
/// it (an error, or the request's task cancelled), it takes all of it back.
struct PartialInstall<'a> {
    paths: &'a Paths,
    range: PortRange,
    id: &'a ContainerId,
}

impl Drop for PartialInstall<'_> {
    fn drop(&mut self) {
        // Removing needs no free space, so this works on the full disk that failed the install.
        let undo = Ports::new(self.paths, self.range)
            .release(self.id)
            .and(atomic_file::remove(&self.paths.env_file(self.id)))
            .and(atomic_file::remove(&self.paths.spec_file(self.id)));
        if let Err(e) = undo {
            log::warn!("taking back the failed install of {}: {e:#}", self.id);
        }
    }
}

/// A host under `dir` with a fake systemd and `docker`, handing out ports 4000-4099: what
/// the unit tests of everything built on [`Host`] start from.
#[cfg(test)]
pub(crate) fn fake_host(
    dir: &Path,
    docker: crate::docker::fake::FakeDocker,
) -> Host<crate::systemd::fake::FakeSystemd, crate::docker::fake::FakeDocker> {
    Host::new(
        Paths::new(dir),
        crate::systemd::fake::FakeSystemd::default(),
        docker,
        PortRange {
            first: 4000,
            last: 4099,
        },
    )
}

#[cfg(test)]
mod tests;
