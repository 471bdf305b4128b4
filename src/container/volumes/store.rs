//! The owned volumes on disk: listing them with their size, and removing a container's.
//!
//! The directories are the truth, not the specs: a container deleted without `--volumes`
//! has no spec any more, and its volumes are still listed (as not in use) until removed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{MountPath, Volume};
use crate::id::ContainerId;
use crate::paths::Paths;

/// One owned volume, as `GET /volumes` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    /// The container that owns it.
    pub id: ContainerId,
    /// Its path in the container.
    pub target: MountPath,
    /// Its directory on the host.
    pub host_path: PathBuf,
    /// The disk space its files use, in bytes (as `du` counts it).
    pub bytes: u64,
    /// The container is installed and mounts it.
    pub in_use: bool,
}

/// The answer of `GET /volumes` and `GET /volumes/:id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeList {
    /// Volumes sorted by container id, then path.
    pub volumes: Vec<VolumeInfo>,
}

/// The owned volumes of `only` (or of every container), with their sizes. `in_use` says,
/// for a container id, which targets its current spec mounts (`None`: not installed).
pub fn list(
    paths: &Paths,
    only: Option<&ContainerId>,
    in_use: impl Fn(&ContainerId) -> Option<Vec<MountPath>>,
) -> anyhow::Result<VolumeList> {
    let mut volumes = Vec::new();
    let ids = match only {
        Some(id) => vec![id.clone()],
        None => ids_with_volumes(paths)?,
    };
    for id in ids {
        let used = in_use(&id).unwrap_or_default();
        for (target, dir) in owned_dirs(paths, &id)? {
            volumes.push(VolumeInfo {
                bytes: disk_usage(&dir)?,
                in_use: used.contains(&target),
                id: id.clone(),
                target,
                host_path: dir,
            });
        }
    }
    volumes.sort_by(|a, b| (&a.id, &a.target).cmp(&(&b.id, &b.target)));
    Ok(VolumeList { volumes })
}

/// Removes every owned volume of `id`; returns their paths in the container.
pub fn remove_all(paths: &Paths, id: &ContainerId) -> anyhow::Result<Vec<MountPath>> {
    let removed: Vec<MountPath> = owned_dirs(paths, id)?.into_iter().map(|(t, _)| t).collect();
    let dir = paths.container_volumes(id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(removed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(removed),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// The owned volumes of `id` on disk: (path in the container, directory), sorted.
pub fn owned_dirs(paths: &Paths, id: &ContainerId) -> anyhow::Result<Vec<(MountPath, PathBuf)>> {
    let dir = paths.container_volumes(id);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        // Anything that is not a volume's directory (a stray file) is not listed.
        if let Some(target) = name.to_str().and_then(Volume::target_of)
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            found.push((target, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Container ids that have a directory under `volumes/`.
fn ids_with_volumes(paths: &Paths) -> anyhow::Result<Vec<ContainerId>> {
    let dir = paths.volumes_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut ids: Vec<ContainerId> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    ids.sort();
    Ok(ids)
}

/// The blocks the files under `dir` take, in bytes, without following symlinks or
/// crossing into other file systems' mounts.
fn disk_usage(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let top =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut total = top.blocks() * 512;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.blocks() * 512;
            if meta.is_dir() && meta.dev() == top.dev() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}
