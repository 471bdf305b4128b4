//! Volumes: directories a container owns, and host directories bind-mounted into it.
//!
//! An owned volume (`-v /data`) is a plain directory under
//! `/var/lib/containers/volumes/<id>/`, named after its path in the container (`/var/lib/pg`
//! is `var+lib+pg`). It is created at install and outlives the Docker container (which is
//! removed at every stop), updates, re-installs and reboots; only `gear delete --volumes`
//! removes it. `docs/volumes.md` says why a directory and not a Docker named volume.
//!
//! A bind mount (`-v /srv/site:/www:ro`) mounts a host path the administrator chose. The
//! agent refuses paths that would hand a container the host (`/`, `/etc`, gear's state, the
//! Docker socket, or a directory holding one of them) unless it runs with
//! `--allow-system-mounts`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::id::ContainerId;
use crate::paths::Paths;
use crate::serde_str::serde_via_str;

pub mod store;

/// Why a volume is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// The path is not absolute, has `.`, `..` or empty parts, or characters gear does not pass on.
    #[error(
        "volume path '{0}' is not a clean absolute path (no '.', '..' or '//'; letters, digits and . _ - @ + = ~ only)"
    )]
    Path(String),
    /// A `-v` argument is neither `PATH` nor `HOST:PATH[:ro|rw]`.
    #[error("volume '{0}' is not PATH (owned) or HOSTPATH:PATH[:ro|rw] (bind mount)")]
    Syntax(String),
    /// An owned volume's path has a '+', the separator of its directory name.
    #[error("owned volume path '{0}' may not contain '+'")]
    OwnedPlus(String),
    /// A one-off job asked for an owned volume.
    #[error(
        "a job owns no volume ({0}): mount a host path (HOSTPATH:{0}) or a container's volumes (--volumes-from)"
    )]
    JobOwned(String),
    /// `--volumes-from` names a container that owns no volume.
    #[error("container {0} owns no volume")]
    NoneOwned(String),
    /// Two volumes are mounted at one path.
    #[error("two volumes are mounted at {0}")]
    Duplicate(String),
    /// A bind mount's host path does not exist.
    #[error("host path {0} does not exist")]
    NoSuchHostPath(String),
    /// A bind mount would expose the host.
    #[error(
        "host path {path} is refused: it is or holds {what}; the agent mounts it only with --allow-system-mounts"
    )]
    Protected {
        /// The host path asked for.
        path: String,
        /// What it exposes.
        what: String,
    },
}

/// An absolute, normalised path: no `.`, `..` or empty parts, and only characters that
/// pass unquoted through Docker's `--mount` (no ',' or ':') and a unit file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MountPath(String);

impl MountPath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MountPath {
    type Err = VolumeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VolumeError::Path(s.to_string());
        let rest = s.strip_prefix('/').ok_or_else(bad)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-@+=~".contains(c);
        if s.len() > 1024
            || rest
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == ".." || !p.chars().all(ok_char))
        {
            return Err(bad());
        }
        Ok(MountPath(format!("/{rest}")))
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(MountPath);

/// One volume of a container, in gear's form: `{"Target": "/data"}` is owned by the
/// container, `{"Source": "/srv/site", "Target": "/www", "ReadOnly": true}` mounts a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Volume {
    /// The host path to mount; absent for a volume the container owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<MountPath>,
    /// Where it appears in the container.
    pub target: MountPath,
    /// Mounted read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl Volume {
    /// A volume owned by the container, at `target`.
    pub fn owned(target: MountPath) -> Volume {
        Volume {
            source: None,
            target,
            read_only: false,
        }
    }

    /// The name of an owned volume's directory: its path without the leading '/', with
    /// '+' for '/' (owned paths have no '+', so the name maps back to the path).
    pub fn dir_name(target: &MountPath) -> String {
        target.as_str()[1..].replace('/', "+")
    }

    /// The path of an owned volume whose directory is called `name`.
    pub fn target_of(name: &str) -> Option<MountPath> {
        format!("/{}", name.replace('+', "/")).parse().ok()
    }

    /// Where the mount comes from on the host: the source, or the owned directory.
    pub fn host_path(&self, paths: &Paths, id: &ContainerId) -> PathBuf {
        match &self.source {
            Some(source) => PathBuf::from(source.as_str()),
            None => paths
                .container_volumes(id)
                .join(Volume::dir_name(&self.target)),
        }
    }
}

/// `-v PATH` (owned) or `-v HOSTPATH:PATH[:ro|rw]` (bind mount), as geard's CLI wrote them.
impl FromStr for Volume {
    type Err = VolumeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, read_only) = match parts.as_slice() {
            [target] => (None, target, false),
            [source, target] => (Some(source), target, false),
            [source, target, mode @ ("ro" | "rw")] => (Some(source), target, *mode == "ro"),
            _ => return Err(VolumeError::Syntax(s.to_string())),
        };
        Ok(Volume {
            source: source.map(|s| s.parse()).transpose()?,
            target: target.parse()?,
            read_only,
        })
    }
}

/// geard's `VolumeConfig`. Mind geard's naming: in `VolumeMounts`, `Path` is the **host**
/// path and `HostPath` the path in the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VolumeConfig {
    /// Volumes the container owns.
    #[serde(default)]
    pub volumes: Option<Vec<GeardVolume>>,
    /// Host paths mounted into the container.
    #[serde(default)]
    pub volume_mounts: Option<Vec<GeardMount>>,
}

/// geard's `Volume`: `{"Path": "/data"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GeardVolume {
    /// The path in the container.
    pub path: MountPath,
}

/// geard's `VolumeMount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GeardMount {
    /// The path on the host (sic).
    pub path: MountPath,
    /// The path in the container (sic).
    pub host_path: MountPath,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl VolumeConfig {
    /// The volumes in gear's form.
    pub fn into_volumes(self) -> Vec<Volume> {
        let owned = self.volumes.unwrap_or_default().into_iter();
        let mounts = self.volume_mounts.unwrap_or_default().into_iter();
        owned
            .map(|v| Volume::owned(v.path))
            .chain(mounts.map(|m| Volume {
                source: Some(m.path),
                target: m.host_path,
                read_only: m.read_only,
            }))
            .collect()
    }
}

/// Checks what can be checked without the host: owned paths have no '+', no two volumes
/// share a target.
pub fn check(volumes: &[Volume]) -> Result<(), VolumeError> {
    let mut targets = std::collections::BTreeSet::new();
    for v in volumes {
        if v.source.is_none() && v.target.as_str().contains('+') {
            return Err(VolumeError::OwnedPlus(v.target.to_string()));
        }
        if v.target.as_str() == "/" || !targets.insert(v.target.as_str()) {
            return Err(VolumeError::Duplicate(v.target.to_string()));
        }
    }
    Ok(())
}

/// Host paths that a bind mount may not be, be under, or hold, and what each exposes.
fn protected(paths: &Paths) -> Vec<(PathBuf, &'static str)> {
    vec![
        (PathBuf::from("/etc"), "/etc"),
        (paths.state_dir(), "gear's state"),
        (PathBuf::from("/var/run/docker.sock"), "the Docker socket"),
        (PathBuf::from("/run/docker.sock"), "the Docker socket"),
        (PathBuf::from("/run/containerd"), "containerd's socket"),
    ]
}

/// Checks the bind mounts against the host: each source exists, and (unless `allow_system`)
/// neither it nor what its symlinks lead to is `/`, a protected path, under one or above one.
pub fn check_sources(
    paths: &Paths,
    volumes: &[Volume],
    allow_system: bool,
) -> Result<(), VolumeError> {
    for source in volumes.iter().filter_map(|v| v.source.as_ref()) {
        let given = Path::new(source.as_str());
        let real = std::fs::canonicalize(given)
            .map_err(|_| VolumeError::NoSuchHostPath(source.to_string()))?;
        if allow_system {
            continue;
        }
        let refuse = |what: &str| VolumeError::Protected {
            path: source.to_string(),
            what: what.to_string(),
        };
        for p in [given, real.as_path()] {
            if p == Path::new("/") {
                return Err(refuse("the whole host"));
            }
            for (guarded, what) in protected(paths) {
                let guarded = std::fs::canonicalize(&guarded).unwrap_or(guarded);
                if p.starts_with(&guarded) || guarded.starts_with(p) {
                    return Err(refuse(what));
                }
            }
        }
    }
    Ok(())
}

/// Creates the directories of the owned volumes of `id` that do not exist yet (mode 0755,
/// owned by root; `volumes/` and `volumes/<id>/` are 0700, so only root and the container
/// reach them).
pub fn create_owned(paths: &Paths, id: &ContainerId, volumes: &[Volume]) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let owned: Vec<&Volume> = volumes.iter().filter(|v| v.source.is_none()).collect();
    if owned.is_empty() {
        return Ok(());
    }
    for dir in [paths.volumes_dir(), paths.container_volumes(id)] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    for v in owned {
        let dir = v.host_path(paths, id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
