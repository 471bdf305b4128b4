//! Install (`install.rs`), start, stop, restart, delete and purge: a container's files and its unit, kept
//! consistent through crashes, each operation under the container's [`Lock`] from its first
//! step to its last.
//!
//! The unit file is the commit point: it is written last on install and removed first on
//! delete, so a `kill -9` at any moment leaves a container either installed (unit file
//! present, everything it refers to written before it) or not at all (leftovers of a
//! half-done install are reused or cleaned by the next install or delete of that id).
//!
//! Idling is part of the lifecycle (`idling.rs`): a start wakes an idle container for good,
//! a stop, delete or purge makes sure no connection can wake it again.

use super::environment::Environment;
use super::host::{Host, Parts};
use super::isolate::remove_home;
use super::lock::Lock;
use super::ports::{PortError, PortPair, Ports};
use super::spec::{ContainerSpec, Image};
use super::volumes::{self, MountPath, VolumeError};
use super::{linker, unit};
use crate::accounts::Accounts as _;
use crate::atomic_file;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::idle::IdlePolicy;
use crate::links::NetworkLink;
use crate::systemd::{Action, Systemd, UnitState};

/// Why an operation on a container failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container with this id is installed.
    #[error("container {0} is not installed")]
    NotInstalled(ContainerId),
    /// Another operation on the container held its lock for too long.
    #[error(transparent)]
    Busy(#[from] super::lock::Busy),
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
    /// The container cannot be idled: it publishes no port a connection could wake it by.
    #[error("container {0} publishes no port: nothing could wake it, so it is not idled")]
    NotIdleable(ContainerId),
    /// The links of a running container could not be applied; nothing was changed.
    #[error("the links of {id} were not changed: {reason}")]
    Links {
        /// The container.
        id: ContainerId,
        /// Why they could not be applied.
        reason: String,
    },
    /// A volume cannot be mounted; nothing was changed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// An update's new container did not get ready; the old one was put back and serves.
    #[error("the update of {id} was rolled back: {reason}")]
    RolledBack {
        /// The container.
        id: ContainerId,
        /// Why the new container failed.
        reason: String,
    },
    /// A rollback cannot be done; nothing was changed.
    #[error(transparent)]
    Rollback(#[from] super::history::RollbackError),
    /// systemd, Docker or the disk failed.
    #[error("{0:#}")]
    Host(#[from] anyhow::Error),
}

/// What a delete did with the container's owned volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumesLeft {
    /// Kept on disk (listed by `gear volumes`), by their path in the container.
    pub kept: Vec<MountPath>,
    /// Removed.
    pub removed: Vec<MountPath>,
}

/// The outcome of an install.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Installed {
    /// The container.
    pub id: ContainerId,
    /// Its published ports.
    pub ports: Vec<PortPair>,
    /// Whether it was started.
    pub started: bool,
}

/// What became of a container's new links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinksSet {
    /// It runs, and has them now.
    Applied,
    /// It does not run; they apply at its next start.
    AtNextStart,
}

/// Whether a unit state means the container's processes exist (or are on their way).
pub(super) fn is_up(state: &UnitState) -> bool {
    matches!(
        state.active_state.as_str(),
        "active" | "activating" | "reloading" | "deactivating"
    )
}

impl<P: Parts> Host<P> {
    /// Starts `id` and marks it to start at boot; an idle container is idle no more.
    pub async fn start(&self, id: &ContainerId) -> Result<(), Error> {
        let lock = self.lock(id).await?;
        self.start_locked(&lock).await
    }

    pub(crate) async fn start_locked(&self, lock: &Lock) -> Result<(), Error> {
        self.run_locked(lock, Action::Start).await
    }

    /// Restarts `id` (starting it if stopped) and marks it to start at boot. A running
    /// container with published ports is switched ([`super::switch`]): no connection is
    /// refused meanwhile.
    pub async fn restart(&self, id: &ContainerId) -> Result<(), Error> {
        let lock = self.lock(id).await?;
        if self.switchable(id).await? {
            self.want_at_boot(id).await?;
            self.switch_locked(&lock, &crate::idle::connections::ProcNet, None)
                .await?;
            return Ok(());
        }
        self.run_locked(&lock, Action::Restart).await
    }

    /// Start or restart under `lock`: wanted at boot first, so that a crash before the job
    /// leaves a container that runs after the next boot; out of idling only once it runs.
    async fn run_locked(&self, lock: &Lock, action: Action) -> Result<(), Error> {
        let id = lock.id();
        self.require_installed(id)?;
        // GetUnit, not LoadUnit: a unit systemd has not loaded is not up, and loading it
        // here would only add a read of every unit directory before the job loads it.
        let was_up = self
            .systemd
            .loaded_state(&id.unit_name())
            .await?
            .is_some_and(|state| is_up(&state));
        self.want_at_boot(id).await?;
        let idle = self.thaw_if_frozen(id).await?;
        // A unit that failed earlier starts afresh, and its restart counter too.
        self.systemd.reset_failed(&id.unit_name()).await?;
        self.job(action, id).await?;
        if idle.is_some() {
            self.end_idle(id).await?;
        }
        // The container now runs on its current spec (a start of a running unit changes
        // nothing, so only a restart or a start from down lets old ports go).
        if action == Action::Restart || !was_up {
            self.release_retired(id)?;
        }
        Ok(())
    }

    /// Stops `id`; it stays stopped across reboots until started again, and no connection
    /// wakes it.
    pub async fn stop(&self, id: &ContainerId) -> Result<(), Error> {
        let lock = self.lock(id).await?;
        self.stop_locked(&lock).await
    }

    async fn stop_locked(&self, lock: &Lock) -> Result<(), Error> {
        let id = lock.id();
        self.require_installed(id)?;
        self.unwant_at_boot(id)?;
        self.forget_idle(id).await?;
        self.job(Action::Stop, id).await?;
        self.release_retired(id)?;
        Ok(())
    }

    /// Releases the ports an earlier spec of the running container kept.
    pub(crate) fn release_retired(&self, id: &ContainerId) -> anyhow::Result<()> {
        let mut spec = ContainerSpec::load(&self.paths, id)?;
        if spec.retired_ports.is_empty() {
            return Ok(());
        }
        Ports::new(&self.paths, self.port_range).release_only(id, &spec.retired_ports)?;
        spec.retired_ports.clear();
        spec.store(&self.paths)
    }

    /// Replaces the links of `id`. They apply at every start; a running container gets
    /// them at once, and if they cannot be applied to it nothing is changed.
    pub async fn set_links(
        &self,
        id: &ContainerId,
        links: Vec<NetworkLink>,
    ) -> Result<LinksSet, Error> {
        let _lock = self.lock(id).await?;
        let mut spec = self.spec(id)?;
        let name = unit::docker_name(id);
        let running = self.docker.inspect(&name).await?.is_some_and(|c| c.running);
        if running {
            linker::apply(&self.docker, &self.firewall, &name, &links)
                .await
                .map_err(|e| Error::Links {
                    id: id.clone(),
                    reason: format!("{e:#}"),
                })?;
        }
        spec.links = links;
        spec.store(&self.paths)?;
        Ok(match running {
            true => LinksSet::Applied,
            false => LinksSet::AtNextStart,
        })
    }

    /// Sets (or, with `None`, removes) the idle policy of `id`; `gear-idler` applies it
    /// at its next look (and is started if it does not run). Returns the updated spec.
    pub async fn set_idle_policy(
        &self,
        id: &ContainerId,
        policy: Option<IdlePolicy>,
    ) -> Result<ContainerSpec, Error> {
        let _lock = self.lock(id).await?;
        let mut spec = self.spec(id)?;
        if policy.is_some() && spec.ports.is_empty() {
            return Err(Error::NotIdleable(id.clone()));
        }
        spec.idle = policy;
        spec.store(&self.paths)?;
        if policy.is_some() {
            self.ensure_idler().await?;
        }
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
        let _lock = self.lock(id).await?;
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
    /// nothing is removed, and no idle container can wake. Each container is stopped under
    /// its lock. Returns the ids stopped, and the first error after trying all.
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

    /// Deletes `id`: stops it, then removes its unit, links, spec, environment, ports, MCS
    /// level, idle state and Docker container, and nothing of any other container. Works on
    /// what a half-done install left as well. Its owned volumes are kept unless `with_volumes`
    /// (which also removes the volumes an earlier delete kept).
    pub async fn delete(&self, id: &ContainerId, with_volumes: bool) -> Result<VolumesLeft, Error> {
        let _lock = self.lock(id).await?;
        let installed = self.is_installed(id);
        let store = Ports::new(&self.paths, self.port_range);
        let leftovers = self.paths.spec_file(id).exists()
            || self.paths.env_file(id).exists()
            || self.paths.idle_marker(id).exists()
            || (with_volumes && self.paths.container_volumes(id).exists())
            || !store.reserved(id)?.is_empty()
            || super::mcs::Levels::new(&self.paths).holds(id)?;
        if !installed && !leftovers {
            return Err(Error::NotInstalled(id.clone()));
        }
        let unit_name = id.unit_name();
        let old_user = ContainerSpec::load(&self.paths, id)
            .ok()
            .and_then(|s| s.user);
        self.forget_idle(id).await?;
        if installed && self.systemd.unit_state(&unit_name).await?.active_state != "inactive" {
            self.job(Action::Stop, id).await?;
        }
        // Unit file first: once it is gone the container is no longer installed.
        atomic_file::remove(&self.paths.unit_file(id))?;
        self.unwant_at_boot(id)?;
        atomic_file::remove(&self.paths.systemd_dir().join(&unit_name))?;
        store.release(id)?;
        super::mcs::Levels::new(&self.paths).release(id)?;
        atomic_file::remove(&self.paths.env_file(id))?;
        atomic_file::remove(&self.paths.spec_file(id))?;
        self.docker.remove_container(&unit::docker_name(id)).await?;
        atomic_file::remove(&self.paths.started_marker(id))?;
        atomic_file::remove(&self.paths.last_end(id))?;
        atomic_file::remove(&self.paths.history_file(id))?;
        atomic_file::remove(&self.paths.health_file(id))?;
        atomic_file::remove(&self.paths.not_ready(id))?;
        crate::keys::store::remove_all(&self.paths, id)?;
        if let Some(user) = old_user {
            self.accounts.remove(&user.name)?;
            remove_home(&self.paths, id)?;
        }
        if installed {
            self.systemd.reset_failed(&unit_name).await.ok();
            self.systemd.reload().await?;
        }
        // Last: the data outlives a delete that failed half-way.
        Ok(match with_volumes {
            true => VolumesLeft {
                removed: volumes::store::remove_all(&self.paths, id)?,
                kept: vec![],
            },
            false => VolumesLeft {
                kept: volumes::store::owned_dirs(&self.paths, id)?
                    .into_iter()
                    .map(|(target, _)| target)
                    .collect(),
                removed: vec![],
            },
        })
    }
}

#[cfg(test)]
mod tests;
