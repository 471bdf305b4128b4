//! The key files of containers: `keys/<id>/<fingerprint>.pub`, one key per file, each
//! written atomically (mode 0644: public keys, read by `gear-keys` as its own
//! unprivileged user). One file per key means a damaged file costs that key only.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{PublicKey, file_name};
use crate::atomic_file;
use crate::id::ContainerId;
use crate::paths::Paths;

/// Writes `keys` for container `id`; a key it already has is written again (its comment
/// may have changed).
pub fn add(paths: &Paths, id: &ContainerId, keys: &[PublicKey]) -> anyhow::Result<()> {
    let dir = paths.keys_of(id);
    create_dir(&paths.keys_dir())?;
    create_dir(&dir)?;
    for key in keys {
        let line = format!("{key}\n");
        atomic_file::write(&dir.join(key.file_name()), line.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Removes the keys with these fingerprints from `id`; returns the fingerprints that were
/// there.
pub fn remove(
    paths: &Paths,
    id: &ContainerId,
    fingerprints: &[String],
) -> anyhow::Result<Vec<String>> {
    let dir = paths.keys_of(id);
    let mut removed = Vec::new();
    for fp in fingerprints {
        let path = dir.join(file_name(fp));
        if path.exists() {
            atomic_file::remove(&path)?;
            removed.push(fp.clone());
        }
    }
    Ok(removed)
}

/// Removes every key of `id` (when the container is deleted).
pub fn remove_all(paths: &Paths, id: &ContainerId) -> anyhow::Result<()> {
    let dir = paths.keys_of(id);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The keys of `id`, sorted by file name. A file that cannot be read or does not hold one
/// valid key is reported on `err` and skipped: it never hides the other keys.
pub fn read(paths: &Paths, id: &ContainerId, err: &mut impl Write) -> Vec<PublicKey> {
    let dir = paths.keys_of(id);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
        Err(e) => {
            writeln!(err, "warning: reading {}: {e}", dir.display()).ok();
            return vec![];
        }
    };
    files.sort();
    let mut keys = Vec::with_capacity(files.len());
    for path in files {
        match read_one(&path) {
            Ok(key) => keys.push(key),
            Err(e) => {
                writeln!(err, "warning: skipping {}: {e:#}", path.display()).ok();
            }
        }
    }
    keys
}

fn read_one(path: &std::path::Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path)?;
    let key = PublicKey::parse(text.trim_end_matches('\n'))?;
    // The name is the fingerprint: a file renamed or edited by hand does not count.
    anyhow::ensure!(
        path.file_name().is_some_and(|n| *n == *key.file_name()),
        "its name is not its key's fingerprint"
    );
    Ok(key)
}

fn create_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("creating {}", dir.display()))
        }
        _ => Ok(()),
    }
}
