//! Kept versions: the last [`KEPT`] specs each container was installed with, and the id of
//! the image each ran, in `history/<id>.json`. `gear history` lists them; `gear rollback`
//! installs one again (switched, like any update of a running container) with no pull and
//! no build: `gear prune-images` keeps their images.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::host::{Host, Parts};
use super::lifecycle::{Error, Installed, is_up};
use super::ports::PortRequest;
use super::spec::{ContainerSpec, Image, InstallRequest};
use crate::atomic_file;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::paths::Paths;
use crate::systemd::Systemd;

/// How many versions are kept per container.
pub const KEPT: usize = 5;

/// One kept version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    /// Its number: 1 for a container's first install, one more for each new spec.
    pub version: u32,
    /// When it was installed, in seconds since the epoch.
    pub installed: u64,
    /// The id of the image it ran (`sha256:…`), so a moved tag does not change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The spec.
    pub spec: ContainerSpec,
}

/// The answer of `GET /container/:id/history`: oldest first; the last is the current spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct History {
    /// The kept versions, oldest first.
    pub versions: Vec<Version>,
}

/// Why a rollback cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// There is no version to go back to.
    #[error("{0} has no earlier version to roll back to (gear history lists what is kept)")]
    NoEarlier(ContainerId),
    /// The version asked for is not kept.
    #[error("{id} has no version {version}; kept: {kept}")]
    NoSuchVersion {
        /// The container.
        id: ContainerId,
        /// The version asked for.
        version: u32,
        /// The versions kept.
        kept: String,
    },
    /// The image of the version is gone from the host.
    #[error("the image of version {version} ({image}) is no longer on this host")]
    ImageGone {
        /// The version.
        version: u32,
        /// Its image.
        image: String,
    },
}

impl History {
    /// The history of `id`; empty when it has none.
    pub fn load(paths: &Paths, id: &ContainerId) -> anyhow::Result<History> {
        let path = paths.history_file(id);
        match std::fs::read(&path) {
            Ok(text) => {
                serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Adds `spec` (running image `image_id`) as the newest version, unless it is the
    /// newest already; keeps the last [`KEPT`]. The file is staged in `files`, so it is
    /// written with the rest of the install. Returns its version number.
    pub fn stage(
        paths: &Paths,
        id: &ContainerId,
        spec: &ContainerSpec,
        image_id: Option<String>,
        files: &mut atomic_file::Batch,
    ) -> anyhow::Result<u32> {
        let mut history = History::load(paths, id)?;
        if let Some(last) = history.versions.last()
            && same(&last.spec, spec)
            && last.image_id == image_id
        {
            return Ok(last.version);
        }
        let version = history.versions.last().map_or(1, |v| v.version + 1);
        let installed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        history.versions.push(Version {
            version,
            installed,
            image_id,
            spec: spec.clone(),
        });
        let extra = history.versions.len().saturating_sub(KEPT);
        history.versions.drain(..extra);
        let text = serde_json::to_vec_pretty(&history).context("serialising the history")?;
        files.stage(&paths.history_file(id), &text, 0o644)?;
        Ok(version)
    }

    /// The version a rollback goes to: `to`, or the one before the newest.
    fn target(&self, id: &ContainerId, to: Option<u32>) -> Result<&Version, RollbackError> {
        match to {
            Some(n) => self
                .versions
                .iter()
                .find(|v| v.version == n)
                .ok_or_else(|| RollbackError::NoSuchVersion {
                    id: id.clone(),
                    version: n,
                    kept: self
                        .versions
                        .iter()
                        .map(|v| v.version.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            None => self
                .versions
                .iter()
                .rev()
                .nth(1)
                .ok_or_else(|| RollbackError::NoEarlier(id.clone())),
        }
    }
}

/// Whether two specs run the same container (the ports an update retires aside).
pub(crate) fn same(a: &ContainerSpec, b: &ContainerSpec) -> bool {
    let strip = |s: &ContainerSpec| ContainerSpec {
        retired_ports: vec![],
        ..s.clone()
    };
    strip(a) == strip(b)
}

/// The install request that installs `spec` again (its environment is left as it is).
pub(crate) fn request_of(spec: &ContainerSpec, image: Image, started: bool) -> InstallRequest {
    InstallRequest {
        started,
        ports: spec
            .ports
            .iter()
            .map(|p| PortRequest {
                internal: p.internal,
                external: p.external.get(),
            })
            .collect(),
        systemd_slice: Some(spec.slice.clone()),
        memory: spec.memory,
        cpus: spec.cpus,
        restart: Some(spec.restart),
        network_links: Some(spec.links.clone()),
        idle: spec.idle,
        volumes: Some(spec.volumes.clone()),
        isolate: spec.user.is_some(),
        ready: spec.ready.clone(),
        drain_timeout: spec.drain_timeout,
        health: spec.health.clone(),
        ..InstallRequest::new(image)
    }
}

impl<P: Parts> Host<P> {
    /// The kept versions of `id`, oldest first.
    pub fn history(&self, id: &ContainerId) -> Result<History, Error> {
        self.require_installed(id)?;
        Ok(History::load(&self.paths, id)?)
    }

    /// Installs version `to` of `id` again (default: the one before the newest), from the
    /// image it ran, without pulling; a running container is switched to it.
    pub async fn rollback(&self, id: &ContainerId, to: Option<u32>) -> Result<Installed, Error> {
        let lock = self.lock(id).await?;
        let history = self.history(id)?;
        let target = history.target(id, to)?.clone();
        let image = self.kept_image(&target).await?;
        let up = self
            .systemd
            .loaded_state(&id.unit_name())
            .await?
            .is_some_and(|state| is_up(&state));
        log::info!("rolling {id} back to version {}", target.version);
        self.install_locked(&lock, request_of(&target.spec, image, up), None)
            .await
    }

    /// The image version `v` ran, for installing it again: its recorded image id, unless
    /// the reference still names that very image (then the reference, which reads better).
    /// A tag re-pointed since (say, by the pull of an update) is not followed.
    pub(crate) async fn kept_image(&self, v: &Version) -> Result<Image, Error> {
        let reference = v.spec.image.clone();
        let image = match (&v.image_id, self.docker.image_id(reference.as_str()).await?) {
            (Some(kept), Some(now)) if *kept == now => reference,
            (Some(kept), _) => kept.parse().map_err(anyhow::Error::from)?,
            (None, Some(_)) => reference,
            (None, None) => {
                return Err(RollbackError::ImageGone {
                    version: v.version,
                    image: reference.to_string(),
                }
                .into());
            }
        };
        if !self.docker.image_exists(image.as_str()).await? {
            return Err(RollbackError::ImageGone {
                version: v.version,
                image: image.to_string(),
            }
            .into());
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests;
