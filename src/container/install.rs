//! Installing (or updating) a container: the image, its ports, environment and spec, then
//! its unit file, written last as the commit point (see `lifecycle`).

use tokio::sync::mpsc::UnboundedSender;

use super::environment::Environment;
use super::host::{Host, Parts};
use super::lifecycle::{Error, Installed, is_up};
use super::ports::{PortPair, Ports};
use super::spec::{ContainerSpec, Image, InstallRequest};
use super::unit;
use crate::atomic_file;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::systemd::Systemd;

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
        self.pull_if_missing(&req.image, progress).await?;
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
        let store = Ports::new(&self.paths, self.port_range);
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
        let spec = ContainerSpec {
            id: id.clone(),
            image: req.image,
            links,
            ports: ports.clone(),
            retired_ports: retired,
            slice: req.systemd_slice.unwrap_or_default(),
            memory: req.memory,
            cpus: req.cpus,
            restart: req.restart.unwrap_or_default(),
            idle: req.idle,
        };
        let driver = self.cgroup_driver().await?;
        let unit = unit::render(&spec, &self.paths, driver).map_err(anyhow::Error::from)?;
        files.stage(&self.paths.spec_file(id), &spec.to_json()?, 0o644)?;
        let text = format!("{}{}", unit::GENERATED_HEADER, unit.render());
        // The commit point, staged last: once it is in place the container is installed.
        files.stage(&self.paths.unit_file(id), text.as_bytes(), 0o644)?;
        files.commit()?;
        self.link(&self.paths.systemd_dir(), id)?;
        self.ensure_loaded(id).await?;
        if spec.idle.is_some() {
            self.ensure_idler().await?;
        }
        if req.started {
            self.start_locked(&lock).await?;
        }
        Ok(Installed {
            id: id.clone(),
            ports,
            started: req.started,
        })
    }

    async fn pull_if_missing(
        &self,
        image: &Image,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<(), Error> {
        if self.docker.image_exists(image.as_str()).await? {
            return Ok(());
        }
        if let Some(tx) = progress {
            let _ = tx.send(format!("pulling {image}"));
        }
        self.docker
            .pull(image.as_str(), progress)
            .await
            .map_err(|e| Error::ImageUnavailable {
                image: image.clone(),
                reason: format!("{e:#}"),
            })
    }
}
