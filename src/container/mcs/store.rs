//! The reservation store of MCS levels: one symlink per level held, under
//! `Paths::mcs_dir()`, named by the level (`s0:c12,c345`) and pointing at the id of the
//! container that holds it, as host ports are kept (`container::ports`). symlink(2) makes
//! an entry or fails with EEXIST, so of two installs that try the same level at once exactly
//! one gets it, with no lock shared by different ids. A pick tries the levels in its id's
//! order until it makes an entry or finds one that names the id already: it reads no other
//! container's spec, so an install costs the same with one container or a thousand.
//!
//! A host whose containers got their levels before the store existed has no directory: the
//! first use builds it once from the specs, in a hidden directory that is then renamed into
//! place unless another process placed its own first.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

use super::{McsLevel, walk};
use crate::container::ports::{numbered, read_target};
use crate::container::spec::ContainerSpec;
use crate::id::ContainerId;
use crate::paths::Paths;

/// The level reservations under one [`Paths`].
#[derive(Debug, Clone, Copy)]
pub struct Levels<'a> {
    paths: &'a Paths,
}

/// A level reserved for a container by [`Levels::reserve`] or [`Levels::keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub level: McsLevel,
    /// Whether this call made the entry: the caller then makes `Paths::mcs_dir()` durable
    /// before anything that relies on it (an install, with its files).
    pub created: bool,
}

impl<'a> Levels<'a> {
    /// Reservations under `paths.mcs_dir()`.
    pub fn new(paths: &'a Paths) -> Levels<'a> {
        Levels { paths }
    }

    /// A level for `id`, whose spec records none: the first of its order (see
    /// [`super::pick`]) that is free, now reserved for it, or that names it already (an
    /// install that failed before its commit left it). `None` when every level is held.
    pub fn reserve(&self, id: &ContainerId) -> anyhow::Result<Option<Reserved>> {
        let dir = self.open()?;
        for level in walk(id) {
            let created = match claim(&dir, id, level)? {
                Claim::Created => true,
                Claim::Ours => false,
                Claim::Other(_) => continue,
            };
            return Ok(Some(Reserved { level, created }));
        }
        Ok(None)
    }

    /// Makes sure `level`, which `id`'s spec records, is reserved for `id` (one symlink(2)
    /// when it is). Should another container hold it too (two installs picked it at once
    /// before the store existed), both keep it: a new level would cut a container off from
    /// its files. That is logged.
    pub fn keep(&self, id: &ContainerId, level: McsLevel) -> anyhow::Result<Reserved> {
        let dir = self.open()?;
        let created = match claim(&dir, id, level)? {
            Claim::Created => true,
            Claim::Ours => false,
            Claim::Other(owner) => {
                log::warn!("{id} runs at SELinux level {level}, which {owner} holds too");
                false
            }
        };
        Ok(Reserved { level, created })
    }

    /// Releases `level` if `id` holds it (an install of a new container that failed).
    pub fn release_level(&self, id: &ContainerId, level: McsLevel) -> anyhow::Result<()> {
        let dir = self.paths.mcs_dir();
        if remove_if_owned(&dir, level, id)? {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Releases every level `id` holds (its delete). Reads every entry's target: a crash
    /// between a reserve and an install's commit can leave one its spec does not name.
    pub fn release(&self, id: &ContainerId) -> anyhow::Result<()> {
        let dir = self.open()?;
        let mut removed = false;
        for (level, owner) in scan(&dir)? {
            if owner == id.as_str() {
                removed |= remove_if_owned(&dir, level, id)?;
            }
        }
        if removed {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Whether `id` holds a level (reads every entry's target).
    pub fn holds(&self, id: &ContainerId) -> anyhow::Result<bool> {
        let all = scan(&self.paths.mcs_dir())?;
        Ok(all.iter().any(|(_, owner)| owner == id.as_str()))
    }

    /// Who holds `level`: the target of its entry, if there is one (one readlink(2)).
    pub fn owner(&self, level: McsLevel) -> anyhow::Result<Option<String>> {
        read_target(&self.paths.mcs_dir().join(level.to_string()))
    }

    /// Every reservation (level, holder), sorted by level.
    pub fn all(&self) -> anyhow::Result<Vec<(McsLevel, String)>> {
        let mut all = scan(&self.paths.mcs_dir())?;
        all.sort();
        Ok(all)
    }

    /// The store's directory, built from the specs first when it does not exist (a host
    /// upgraded from a gear without it, or an administrator removed it).
    fn open(&self) -> anyhow::Result<PathBuf> {
        let dir = self.paths.mcs_dir();
        if !dir.is_dir() {
            migrate(self.paths)?;
        }
        Ok(dir)
    }
}

/// What [`claim`] found.
enum Claim {
    /// The entry is new.
    Created,
    /// It named the container already.
    Ours,
    /// It names someone else (the target).
    Other(String),
}

/// Reserves `level` for `id` in `dir`, unless someone holds it.
fn claim(dir: &Path, id: &ContainerId, level: McsLevel) -> anyhow::Result<Claim> {
    let link = dir.join(level.to_string());
    // An entry can vanish between our symlink and readlink when its holder releases it:
    // then the level is free and we try again, a few times at most.
    for _ in 0..3 {
        match symlink(id.as_str(), &link) {
            Ok(()) => return Ok(Claim::Created),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", link.display())),
        }
        match read_target(&link)? {
            None => continue,
            Some(target) if target == id.as_str() => return Ok(Claim::Ours),
            Some(target) => return Ok(Claim::Other(target)),
        }
    }
    Ok(Claim::Other("another container".into()))
}

/// Builds the store from the specs: each level a spec records is reserved for its
/// container. Specs are read only here, once per host.
fn migrate(paths: &Paths) -> anyhow::Result<()> {
    let dir = paths.mcs_dir();
    let parent = dir
        .parent()
        .context("the MCS store has no parent directory")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Unique per process and call; hidden, and outside the store until complete.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let tmp = parent.join(format!(
        ".mcs.new-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let placed = build(paths, &tmp)
        .and_then(|()| sync_dir(&tmp))
        .and_then(|()| place(&tmp, &dir));
    match placed {
        Ok(true) => sync_dir(parent),
        // Another process placed its store first: use that one.
        Ok(false) => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Writes the reservations the specs record into the new directory `tmp`. A spec that
/// cannot be read has no level to keep.
fn build(paths: &Paths, tmp: &Path) -> anyhow::Result<()> {
    fs::create_dir(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let specs = paths.specs_dir();
    let read = match fs::read_dir(&specs) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", specs.display())),
    };
    for entry in read {
        let name = entry.with_context(|| format!("listing {}", specs.display()))?;
        let name = name.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<ContainerId>().ok())
        else {
            continue;
        };
        let Some(level) = ContainerSpec::load(paths, &id)
            .ok()
            .and_then(|s| s.selinux_level)
        else {
            continue;
        };
        if let Claim::Other(owner) = claim(tmp, &id, level)? {
            log::warn!("{id} runs at SELinux level {level}, which {owner} holds too");
        }
    }
    Ok(())
}

/// Renames `tmp` to `dir` unless `dir` exists; tells whether it did.
fn place(tmp: &Path, dir: &Path) -> anyhow::Result<bool> {
    match renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EEXIST | Errno::ENOTEMPTY) => Ok(false),
        // A filesystem without RENAME_NOREPLACE: a plain rename still refuses to replace a
        // store that holds an entry, and replacing an empty one loses nothing.
        Err(Errno::EINVAL) => match fs::rename(tmp, dir) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("renaming {}", tmp.display())),
        },
        Err(e) => Err(e).with_context(|| format!("renaming {}", tmp.display())),
    }
}

/// Every entry: (level, target). Names that are not levels (hidden temporary files) are
/// not reservations.
fn scan(dir: &Path) -> anyhow::Result<Vec<(McsLevel, String)>> {
    let mut entries = Vec::new();
    for (level, path) in numbered(dir)? {
        // Released between read_dir and readlink: no longer a reservation.
        if let Some(target) = read_target(&path)? {
            entries.push((level, target));
        }
    }
    Ok(entries)
}

/// Removes the entry of `level` if it names `id`; tells whether it did.
fn remove_if_owned(dir: &Path, level: McsLevel, id: &ContainerId) -> anyhow::Result<bool> {
    let link = dir.join(level.to_string());
    if read_target(&link)?.as_deref() != Some(id.as_str()) {
        return Ok(false);
    }
    match fs::remove_file(&link) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", link.display())),
    }
}

/// Makes created, renamed and removed entries survive a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}
