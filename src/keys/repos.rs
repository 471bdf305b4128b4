//! The keys of Git repositories: one file per repository,
//! [`crate::paths::Paths::repository_keys`], one key per line with its access in front
//! (`read TYPE BASE64 COMMENT` or `write ...`), replaced atomically on every change, mode
//! 0644 (`gear-keys` reads it as its own user). Writers hold the repository's lock.

use std::io::Write;

use anyhow::Context as _;

use super::PublicKey;
use crate::atomic_file;
use crate::id::RepoId;
use crate::paths::Paths;

/// What a key may do, from its forced command (`gear-git-shell read|write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Fetch, clone and remote archive.
    Read,
    /// Push too.
    Write,
}

impl Access {
    /// The argument of the forced command.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            other => Err(format!("access '{other}': expected read or write")),
        }
    }
}

/// One key of a repository and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoKey {
    /// The key.
    pub key: PublicKey,
    /// Read (clone, fetch, archive) or write (push too).
    pub access: Access,
}

/// Adds `keys` to repository `id` with `access`; a key it has already takes the new
/// access (and comment) in its place.
pub fn add(paths: &Paths, id: &RepoId, keys: &[PublicKey], access: Access) -> anyhow::Result<()> {
    let mut all = read(paths, id, &mut std::io::sink());
    for key in keys {
        let new = RepoKey {
            key: key.clone(),
            access,
        };
        match all
            .iter_mut()
            .find(|k| k.key.fingerprint() == key.fingerprint())
        {
            Some(old) => *old = new,
            None => all.push(new),
        }
    }
    write(paths, id, &all)
}

/// Removes the keys with these fingerprints from `id`; returns those that were there.
pub fn remove(paths: &Paths, id: &RepoId, fingerprints: &[String]) -> anyhow::Result<Vec<String>> {
    let all = read(paths, id, &mut std::io::sink());
    let (gone, kept): (Vec<RepoKey>, Vec<RepoKey>) = all
        .into_iter()
        .partition(|k| fingerprints.iter().any(|f| f == k.key.fingerprint()));
    if !gone.is_empty() {
        write(paths, id, &kept)?;
    }
    Ok(gone
        .iter()
        .map(|k| k.key.fingerprint().to_string())
        .collect())
}

/// Removes every key of `id` (when the repository is deleted).
pub fn remove_all(paths: &Paths, id: &RepoId) -> anyhow::Result<()> {
    atomic_file::remove(&paths.repository_keys(id))
}

/// The keys of `id`, in the order they were added. A line that is not `read KEY` or
/// `write KEY` with a valid key is reported on `err` and skipped.
pub fn read(paths: &Paths, id: &RepoId, err: &mut impl Write) -> Vec<RepoKey> {
    let path = paths.repository_keys(id);
    let Some(text) = super::store::read_text(&path, err) else {
        return vec![];
    };
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once(' ')
            .ok_or_else(|| "no access in front of the key".to_string())
            .and_then(|(access, key)| {
                Ok(RepoKey {
                    access: access.parse()?,
                    key: PublicKey::parse(key).map_err(|e| e.to_string())?,
                })
            });
        match parsed {
            Ok(key) => keys.push(key),
            Err(e) => {
                writeln!(err, "warning: {} line {}: {e}", path.display(), n + 1).ok();
            }
        }
    }
    keys
}

fn write(paths: &Paths, id: &RepoId, keys: &[RepoKey]) -> anyhow::Result<()> {
    let path = paths.repository_keys(id);
    if keys.is_empty() {
        return atomic_file::remove(&path);
    }
    let dir = path.parent().context("the keys' directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text: String = keys
        .iter()
        .map(|k| format!("{} {}\n", k.access.as_str(), k.key))
        .collect();
    atomic_file::write(&path, text.as_bytes(), 0o644)
}
