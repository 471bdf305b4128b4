//! Installing (or updating) a container: the image, its ports, environment and spec, then
//! its unit file, written last as the commit point (see `lifecycle`).

use tokio::sync::mpsc::UnboundedSender;

use super::environment::Environment;
use super::history::{History, same};
use super::host::{Host, Parts};
use super::lifecycle::{Error, Installed, is_up};
use super::lock::Lock;
use super::mcs::{Levels, McsLevel, Reserved, Selinux};
use super::ports::{PortPair, PortRange, Ports};
use super::spec::{ContainerSpec, Image, InstallRequest};
use super::{unit, volumes};
use crate::atomic_file;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::paths::Paths;
use crate::systemd::Systemd;
use anyhow::Context as _;

impl<P: Parts> Host<P> {
    /// Installs (or updates) `id`. An update takes effect at the next start; a running
    /// container keeps running, and keeps the host ports it publishes until then.
    pub async fn install(
        &self,
        id: &ContainerId,
        req: InstallRequest,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<Installed, Error> {
        let lock = self.lock(id).await?;
        let verify = req.verify;
        let (installed, undo) = self.install_switched(&lock, req, progress).await?;
        // Only an update that switched has a previous version running just before.
        if let (Some(window), Some(undo)) = (verify, undo) {
            drop(lock);
            self.verify_update(id, window.0, undo, progress).await?;
        }
        Ok(installed)
    }

    /// [`Host::install`] under `lock`.
    pub(crate) async fn install_locked(
        &self,
        lock: &Lock,
        req: InstallRequest,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<Installed, Error> {
        Ok(self.install_switched(lock, req, progress).await?.0)
    }

    /// [`Host::install_locked`], and for an update that switched to a new container, the
    /// request that installs the previous version again.
    async fn install_switched(
        &self,
        lock: &Lock,
        req: InstallRequest,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<(Installed, Option<InstallRequest>), Error> {
        let started = req.started;
        let id = lock.id();
        // The version running now, whose image an undo must run again by its id.
        let before = History::load(&self.paths, id)?.versions.pop();
        let w = self.write_install(lock, req, progress).await?;
        let mut switched = None;
        // An update of a running container asked to run applies now, by a switch that
        // refuses no connection; otherwise it applies at the next start.
        let changed = w.old.as_ref().is_some_and(|o| !same(o, &w.spec)) || w.env_given;
        if started && w.running && changed && self.switchable(id).await? {
            // Should the new container not get ready, the old spec goes back.
            let undo = match &w.old {
                Some(o) => Some(self.undo_request(o, before.as_ref()).await),
                None => None,
            };
            self.switch_locked(lock, &crate::idle::connections::ProcNet, undo.clone())
                .await?;
            switched = undo;
        } else if started {
            self.start_locked(lock).await?;
        }
        let installed = Installed {
            id: id.clone(),
            ports: w.spec.ports,
            started,
        };
        Ok((installed, switched))
    }

    /// The request that installs `old` again, from the image it ran: the id recorded with
    /// its version (`before`), as `gear rollback` does, so that a tag the update re-pointed
    /// does not bring the new image back. Without a record of it, its image reference.
    async fn undo_request(
        &self,
        old: &ContainerSpec,
        before: Option<&super::history::Version>,
    ) -> InstallRequest {
        let image = match before.filter(|v| same(&v.spec, old)) {
            Some(v) => match self.kept_image(v).await {
                Ok(image) => image,
                Err(e) => {
                    log::warn!(
                        "the image version {} ran: {e}; an undo uses {}",
                        v.version,
                        old.image
                    );
                    old.image.clone()
                }
            },
            None => old.image.clone(),
        };
        super::history::request_of(old, image, false)
    }

    /// Writes what an install asks for (its files, reservations, unit and kept version)
    /// and has systemd load the unit; starts nothing.
    pub(crate) async fn write_install(
        &self,
        lock: &Lock,
        req: InstallRequest,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<Written, Error> {
        let id = lock.id();
        // Refused before anything is pulled or written.
        let asked_volumes = req.all_volumes();
        if let Some(v) = &asked_volumes {
            volumes::check_sources(&self.paths, v, self.allow_system_mounts)?;
        }
        // Checked with the request (`InstallRequest::check`) too; here it gets its port.
        let ready = req
            .ready
            .clone()
            .map(|probe| probe.resolve(req.ports.iter().map(|p| p.internal)))
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?;
        let health = req
            .health
            .clone()
            .map(|check| check.resolve(req.ports.iter().map(|p| p.internal)))
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?;
        let image_id = self.pull_if_missing(&req.image, progress).await?;
        let old = self
            .is_installed(id)
            .then(|| ContainerSpec::load(&self.paths, id))
            .transpose()?;
        // GetUnit, not LoadUnit: a unit systemd has not loaded does not run.
        let running = match &old {
            Some(_) => self
                .systemd
                .loaded_state(&id.unit_name())
                .await?
                .is_some_and(|state| is_up(&state)),
            None => false,
        };
        // Until the commit point, a failure (a full disk, say) must leave nothing of a
        // container that was not installed: its reservations and files are taken back.
        let mut partial = old.is_none().then(|| PartialInstall {
            paths: &self.paths,
            range: self.port_range,
            id,
            env_was_there: self.paths.env_file(id).exists(),
            level: None,
        });
        // What the old spec publishes is all the container holds: no other entry is read.
        let store = Ports::new(&self.paths, self.port_range)
            .avoiding(self.avoid_ports)
            .holding(
                old.iter()
                    .flat_map(|o| o.ports_in_use().map(|p| p.external)),
            );
        let ports = match running {
            true => store.reserve_keeping(id, &req.ports)?,
            false => store.reserve(id, &req.ports)?,
        };
        // What the running container still publishes and the new spec does not.
        let retired: Vec<PortPair> = match (&old, running) {
            (Some(old), true) => old
                .ports_in_use()
                .filter(|p| !ports.iter().any(|n| n.external == p.external))
                .collect(),
            _ => vec![],
        };
        // The environment, spec and unit are written as one batch: fewer waits for the disk.
        let mut files = atomic_file::Batch::default();
        let env_given = req.environment.is_some();
        match req.environment {
            Some(body) => Environment::from(body).stage(&self.paths, id, &mut files)?,
            None if !self.paths.env_file(id).exists() => {
                Environment::new().stage(&self.paths, id, &mut files)?
            }
            None => {}
        }
        // Links given replace the old ones; none given keeps them (as geard's NetworkLinks).
        let links = match req.network_links {
            Some(links) => links,
            None => old.as_ref().map(|o| o.links.clone()).unwrap_or_default(),
        };
        let user = self.user_for(id, req.isolate, old.as_ref())?;
        let level = self.selinux_level(id, old.as_ref())?;
        if let (Some(partial), Some(level)) = (&mut partial, level) {
            partial.level = Some(level.level);
        }
        let spec = ContainerSpec {
            user,
            ready,
            drain_timeout: req.drain_timeout,
            health,
            id: id.clone(),
            image: req.image,
            links,
            ports: ports.clone(),
            retired_ports: retired,
            slice: req.systemd_slice.unwrap_or_default(),
            relax: req.relax,
            pids_limit: req.pids_limit,
            selinux_level: level.map(|l| l.level),
            memory: req.memory,
            cpus: req.cpus,
            restart: req.restart.unwrap_or_default(),
            idle: req.idle,
            // Volumes given replace the old ones; none given keeps them, as links.
            volumes: match asked_volumes {
                Some(v) => v,
                None => old.as_ref().map(|o| o.volumes.clone()).unwrap_or_default(),
            },
        };
        let driver = self.cgroup_driver().await?;
        let unit = unit::render(&spec, &self.paths, driver).map_err(anyhow::Error::from)?;
        volumes::create_owned(&self.paths, id, &spec.volumes)?;
        files.stage(&self.paths.spec_file(id), &spec.to_json()?, 0o644)?;
        History::stage(&self.paths, id, &spec, image_id, &mut files)?;
        // The reservations' directory is made durable with the files' directories.
        files.sync_dir_too(&self.paths.ports_dir());
        if level.is_some_and(|l| l.created) {
            files.sync_dir_too(&self.paths.mcs_dir());
        }
        let text = format!("{}{}", unit::GENERATED_HEADER, unit.render());
        // The commit point, staged last: once it is in place the container is installed.
        files.stage(&self.paths.unit_file(id), text.as_bytes(), 0o644)?;
        files.commit()?;
        std::mem::forget(partial);
        self.link(&self.paths.systemd_dir(), id)?;
        self.ensure_loaded(id).await?;
        // gear-idler runs the health checks too.
        if spec.idle.is_some() || spec.health.is_some() {
            self.ensure_idler().await?;
        }
        Ok(Written {
            old,
            running,
            spec,
            env_given,
        })
    }

    /// The MCS level of `id`: none without SELinux; else the one its spec records, whose
    /// reservation is made sure of, or a new one no other container holds
    /// ([`Levels::reserve`]: no other container's spec is read).
    fn selinux_level(
        &self,
        id: &ContainerId,
        old: Option<&ContainerSpec>,
    ) -> anyhow::Result<Option<Reserved>> {
        if self.selinux == Selinux::Disabled {
            return Ok(None);
        }
        let levels = Levels::new(&self.paths);
        if let Some(level) = old.and_then(|o| o.selinux_level) {
            return levels.keep(id, level).map(Some);
        }
        levels
            .reserve(id)?
            .map(Some)
            .context("every SELinux MCS level is in use by another container")
    }

    /// Pulls `image` unless it is present; returns its id (one look at the engine when it
    /// is present).
    pub(crate) async fn pull_if_missing(
        &self,
        image: &Image,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<Option<String>, Error> {
        if let Some(id) = self.docker.image_id(image.as_str()).await? {
            return Ok(Some(id));
        }
        if let Some(tx) = progress {
            let _ = tx.send(format!("pulling {image}"));
        }
        self.pull_image(image, progress).await?;
        Ok(self.docker.image_id(image.as_str()).await?)
    }

    /// Pulls `image`; a failure is [`Error::ImageUnavailable`] with Docker's reason.
    pub(crate) async fn pull_image(
        &self,
        image: &Image,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<(), Error> {
        self.docker
            .pull(image.as_str(), progress)
            .await
            .map_err(|e| Error::ImageUnavailable {
                image: image.clone(),
                reason: format!("{e:#}"),
            })
    }
}

/// What [`Host::write_install`] wrote.
pub(crate) struct Written {
    /// The spec before, if it was installed.
    pub old: Option<ContainerSpec>,
    /// Whether it ran.
    pub running: bool,
    /// The new spec.
    pub spec: ContainerSpec,
    /// Whether the request set the environment.
    pub env_given: bool,
}

/// What an install of a new container has done before its commit point; dropped before it
/// (an error, or the request's task cancelled), it takes all of it back.
struct PartialInstall<'a> {
    paths: &'a Paths,
    range: PortRange,
    id: &'a ContainerId,
    /// An environment set before the install (`gear set-env` first) is the user's: kept.
    env_was_there: bool,
    /// The MCS level reserved for it, once it is.
    level: Option<McsLevel>,
}

impl Drop for PartialInstall<'_> {
    fn drop(&mut self) {
        // Removing needs no free space, so this works on the full disk that failed the install.
        let env = match self.env_was_there {
            true => Ok(()),
            false => atomic_file::remove(&self.paths.env_file(self.id)),
        };
        let level = match self.level {
            Some(level) => Levels::new(self.paths).release_level(self.id, level),
            None => Ok(()),
        };
        let undo = Ports::new(self.paths, self.range)
            .release(self.id)
            .and(level)
            .and(env)
            .and(atomic_file::remove(&self.paths.spec_file(self.id)));
        if let Err(e) = undo {
            log::warn!("taking back the failed install of {}: {e:#}", self.id);
        }
    }
}

#[cfg(test)]
mod tests;
