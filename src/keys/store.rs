//! The keys of containers: one file per container, `keys/<id>`, one key per line
//! (`TYPE BASE64 COMMENT`), replaced atomically on every change (mode 0644: public keys,
//! read by `gear-keys` as its own unprivileged user). One file keeps `gear-keys` to a
//! single read per login (sshd runs it for every login); a damaged line costs that key
//! only. Writers hold the container's lock.

use std::io::Write;

use anyhow::Context as _;

use super::PublicKey;
use crate::atomic_file;
use crate::id::ContainerId;
use crate::paths::Paths;

/// Adds `keys` to container `id`; a key it has already is replaced (its comment may have
/// changed) and keeps its place.
pub fn add(paths: &Paths, id: &ContainerId, keys: &[PublicKey]) -> anyhow::Result<()> {
    let mut all = read(paths, id, &mut std::io::sink());
    for key in keys {
        match all
            .iter_mut()
            .find(|k| k.fingerprint() == key.fingerprint())
        {
            Some(old) => *old = key.clone(),
            None => all.push(key.clone()),
        }
    }
    write(paths, id, &all)
}

/// Removes the keys with these fingerprints from `id`; returns the fingerprints that were
/// there.
pub fn remove(
    paths: &Paths,
    id: &ContainerId,
    fingerprints: &[String],
) -> anyhow::Result<Vec<String>> {
    let all = read(paths, id, &mut std::io::sink());
    let (gone, kept): (Vec<PublicKey>, Vec<PublicKey>) = all
        .into_iter()
        .partition(|k| fingerprints.iter().any(|f| f == k.fingerprint()));
    if !gone.is_empty() {
        write(paths, id, &kept)?;
    }
    Ok(gone.iter().map(|k| k.fingerprint().to_string()).collect())
}

/// Removes every key of `id` (when the container is deleted).
pub fn remove_all(paths: &Paths, id: &ContainerId) -> anyhow::Result<()> {
    atomic_file::remove(&paths.keys_of(id))
}

/// The keys of `id`, in the order they were added. A line that does not hold one valid
/// key is reported on `err` and skipped: it never hides the other keys.
pub fn read(paths: &Paths, id: &ContainerId, err: &mut impl Write) -> Vec<PublicKey> {
    let path = paths.keys_of(id);
    let Some(text) = read_text(&path, err) else {
        return vec![];
    };
    let mut keys = Vec::with_capacity(text.len() / 100);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match PublicKey::parse(line) {
            Ok(key) => keys.push(key),
            Err(e) => {
                writeln!(err, "warning: {} line {}: {e}", path.display(), n + 1).ok();
            }
        }
    }
    keys
}

fn write(paths: &Paths, id: &ContainerId, keys: &[PublicKey]) -> anyhow::Result<()> {
    let path = paths.keys_of(id);
    if keys.is_empty() {
        return atomic_file::remove(&path);
    }
    let dir = paths.keys_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    atomic_file::write(&path, text.as_bytes(), 0o644)
}

/// The text of a key file; `None` when there is none, or (reported on `err`) when it
/// cannot be read: a key file that cannot be read grants nothing.
pub(crate) fn read_text(path: &std::path::Path, err: &mut impl Write) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            writeln!(err, "warning: reading {}: {e}", path.display()).ok();
            None
        }
    }
}
