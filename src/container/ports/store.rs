//! The reservation store: one symlink per reserved host port under `Paths::ports_dir()`
//! (see the parent module for why symlinks), with all-or-nothing changes.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

use super::{PortError, PortNumber, PortPair, PortRange, PortRequest};
use crate::id::ContainerId;
use crate::paths::Paths;

/// The reservations under one [`Paths`], handing out ports from one range.
#[derive(Debug, Clone)]
pub struct Ports<'a> {
    paths: &'a Paths,
    range: PortRange,
    /// The only entries that may be the reserving container's, when its caller knows them:
    /// a reserve then reads no other entry's target (see [`Ports::holding`]).
    held: Option<Vec<PortNumber>>,
    /// Ports an allocation never hands out ([`PortRange::ephemeral`]).
    avoid: Option<PortRange>,
}

impl<'a> Ports<'a> {
    /// Reservations under `paths.ports_dir()`, allocating from `range`.
    pub fn new(paths: &'a Paths, range: PortRange) -> Ports<'a> {
        Ports {
            paths,
            range,
            held: None,
            avoid: None,
        }
    }

    /// These reservations, whose allocations (port 0) skip the ports of `avoid`; ports a
    /// request names are still given.
    pub fn avoiding(mut self, avoid: Option<PortRange>) -> Ports<'a> {
        self.avoid = avoid;
        self
    }

    /// These reservations, whose reserve takes `held` (the host ports its spec publishes)
    /// as all the container may hold: it lists the directory's names and reads only those
    /// entries, instead of every entry's target. Reading a thousand targets was most of an
    /// install's time on a host with a thousand containers. An entry of the container's that
    /// its spec does not name (left by a crash between a reserve and the install's commit)
    /// stays reserved until [`Ports::release`] (its delete).
    pub fn holding(mut self, held: impl IntoIterator<Item = PortNumber>) -> Ports<'a> {
        self.held = Some(held.into_iter().collect());
        self
    }

    /// Reserves host ports for `id`: requested explicit externals must be free (or already
    /// owned by `id`), zeros get a free port from the range; ports `id` held before but no
    /// longer asks for are released; a pair with the same internal port as one `id` already
    /// holds keeps its external port when the request says 0 (re-install keeps ports stable).
    /// All-or-nothing: on any error, what this call created is rolled back and `id`'s
    /// previous reservations are untouched.
    ///
    /// The new entries are durable only once the caller syncs [`Paths::ports_dir`] (an
    /// install does, with its files, before its unit appears: one wait for the disk less).
    ///
    /// Returns the pairs sorted by internal port.
    pub fn reserve(
        &self,
        id: &ContainerId,
        requested: &[PortRequest],
    ) -> Result<Vec<PortPair>, PortError> {
        self.reserve_and(id, requested, true)
    }

    /// As [`Ports::reserve`], but the ports `id` held before and no longer asks for stay
    /// reserved: a running container still publishes them until it restarts on the new
    /// request. [`Ports::release_only`] lets them go then.
    pub fn reserve_keeping(
        &self,
        id: &ContainerId,
        requested: &[PortRequest],
    ) -> Result<Vec<PortPair>, PortError> {
        self.reserve_and(id, requested, false)
    }

    fn reserve_and(
        &self,
        id: &ContainerId,
        requested: &[PortRequest],
        release_unclaimed: bool,
    ) -> Result<Vec<PortPair>, PortError> {
        check_request(requested)?;
        let dir = self.paths.ports_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // What is taken, and what `id` holds that no requested pair has claimed yet
        // (external → internal). Whatever is left of the latter at the end is released.
        let (mut taken, mut unclaimed) = match &self.held {
            None => {
                let entries = scan(&dir)?;
                let taken: HashSet<PortNumber> = entries.iter().map(|e| e.external).collect();
                let mine = entries
                    .iter()
                    .filter_map(|e| e.pair_of(id))
                    .map(|p| (p.external, p.internal))
                    .collect();
                (taken, mine)
            }
            Some(held) => (names(&dir)?, owned(&dir, id, held)?),
        };
        let mut changes = Changes {
            dir: &dir,
            id,
            undo: Vec::new(),
        };
        let claimed = self.claim(&mut changes, requested, &mut taken, &mut unclaimed);
        let mut pairs = match claimed {
            Ok(pairs) => pairs,
            Err(e) => {
                changes.rollback();
                return Err(e);
            }
        };
        // The new reservations are made: from here on, a failure only leaves an entry that
        // names `id`, which its next reserve or release removes, so it is logged, not returned.
        let unclaimed = if release_unclaimed {
            unclaimed
        } else {
            BTreeMap::new()
        };
        let released = !unclaimed.is_empty();
        for external in unclaimed.into_keys() {
            if let Err(e) = remove_if_owned(&dir, external, id) {
                log::warn!("releasing host port {external} of {id}: {e:#}");
            }
        }
        if released && let Err(e) = sync_dir(&dir) {
            log::warn!("{e:#}");
        }
        pairs.sort_by_key(|p| (p.internal, p.external));
        Ok(pairs)
    }

    /// Creates or retargets the entries for `requested`; `changes` records each step.
    fn claim(
        &self,
        changes: &mut Changes<'_>,
        requested: &[PortRequest],
        taken: &mut HashSet<PortNumber>,
        unclaimed: &mut BTreeMap<PortNumber, PortNumber>,
    ) -> Result<Vec<PortPair>, PortError> {
        let mut pairs = Vec::with_capacity(requested.len());
        let mut any_port = Vec::new();
        // Explicit host ports first, so that a pair content with any port never takes one.
        for request in requested {
            let internal = request.internal;
            let Some(external) = request.requested_external() else {
                any_port.push(internal);
                continue;
            };
            match unclaimed.remove(&external) {
                Some(old) if old == internal => {}
                Some(old) => changes.retarget(external, old, internal)?,
                None => {
                    changes.create_explicit(external, internal)?;
                    taken.insert(external);
                }
            }
            pairs.push(PortPair { internal, external });
        }
        let mut to_allocate = Vec::new();
        for internal in any_port {
            let kept = unclaimed
                .iter()
                .find(|&(_, &old)| old == internal)
                .map(|(&external, _)| external);
            match kept {
                Some(external) => {
                    unclaimed.remove(&external);
                    pairs.push(PortPair { internal, external });
                }
                None => to_allocate.push(internal),
            }
        }
        let len = self.range.len_without(self.avoid);
        // Start where the id's hash points, so that concurrent installs spread over the
        // range instead of all racing for its first free port.
        let mut next = if len == 0 {
            0
        } else {
            (fnv1a(changes.id.as_str().as_bytes()) % u64::from(len)) as u32
        };
        for internal in to_allocate {
            let external = self.allocate(changes, internal, &mut next, taken, unclaimed)?;
            pairs.push(PortPair { internal, external });
        }
        Ok(pairs)
    }

    /// Takes the next free port of the range, walking from `next` and wrapping around.
    fn allocate(
        &self,
        changes: &mut Changes<'_>,
        internal: PortNumber,
        next: &mut u32,
        taken: &mut HashSet<PortNumber>,
        unclaimed: &mut BTreeMap<PortNumber, PortNumber>,
    ) -> Result<PortNumber, PortError> {
        let len = self.range.len_without(self.avoid);
        for _ in 0..len {
            let offset = *next % len;
            *next = offset + 1;
            let Some(port) = self.range.nth_without(offset, self.avoid) else {
                continue;
            };
            // A port this container no longer uses is about to be released anyway; handing
            // it over keeps a full range from failing a re-install.
            if let Some(old) = unclaimed.remove(&port) {
                changes.retarget(port, old, internal)?;
                return Ok(port);
            }
            if !taken.insert(port) {
                continue;
            }
            // Another install may have taken it since the scan: EEXIST means "try the next".
            if changes.create(port, internal)? {
                return Ok(port);
            }
        }
        Err(PortError::Exhausted { range: self.range })
    }

    /// The pairs `id` holds (sorted by internal port).
    pub fn reserved(&self, id: &ContainerId) -> anyhow::Result<Vec<PortPair>> {
        let mut pairs: Vec<PortPair> = scan(&self.paths.ports_dir())?
            .iter()
            .filter_map(|e| e.pair_of(id))
            .collect();
        pairs.sort_by_key(|p| (p.internal, p.external));
        Ok(pairs)
    }

    /// Releases every port `id` holds; never touches a port owned by another id.
    pub fn release(&self, id: &ContainerId) -> anyhow::Result<()> {
        let dir = self.paths.ports_dir();
        let mut removed = false;
        for entry in scan(&dir)? {
            if entry.pair_of(id).is_some() {
                removed |= remove_if_owned(&dir, entry.external, id)?;
            }
        }
        if removed {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Releases those of `ports` that `id` holds (never another id's).
    pub fn release_only(&self, id: &ContainerId, ports: &[PortPair]) -> anyhow::Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let dir = self.paths.ports_dir();
        for p in ports {
            remove_if_owned(&dir, p.external, id)?;
        }
        sync_dir(&dir)
    }

    /// All reservations on the host: (external, owner id, internal), sorted by external port.
    /// Entries that name no container are left out (and logged by the scan).
    pub fn all(&self) -> anyhow::Result<Vec<(PortNumber, ContainerId, PortNumber)>> {
        let mut all: Vec<_> = scan(&self.paths.ports_dir())?
            .into_iter()
            .filter_map(|e| {
                let (owner, internal) = e.owner?;
                Some((e.external, owner, internal))
            })
            .collect();
        all.sort_by_key(|(external, _, _)| *external);
        Ok(all)
    }

    /// Who publishes host port `external`: (owner id, internal port); `None` if nobody.
    /// One readlink(2), so the idler can ask for every held packet.
    pub fn owner(&self, external: PortNumber) -> anyhow::Result<Option<(ContainerId, PortNumber)>> {
        let link = self.paths.ports_dir().join(external.to_string());
        Ok(read_target(&link)?.as_deref().and_then(parse_target))
    }
}

/// Duplicate ports in one request are errors: geard accepted duplicate host ports silently.
fn check_request(requested: &[PortRequest]) -> Result<(), PortError> {
    let mut internals = HashSet::new();
    let mut externals = HashSet::new();
    for request in requested {
        if !internals.insert(request.internal) {
            return Err(PortError::DuplicateInternal(request.internal));
        }
        if let Some(external) = request.requested_external()
            && !externals.insert(external)
        {
            return Err(PortError::DuplicateExternal(external));
        }
    }
    Ok(())
}

/// One entry of the ports directory.
struct Entry {
    external: PortNumber,
    /// `None` when the target is not `<id>:<internal>`: the port stays taken, but we never
    /// guess whose it is, so no release removes it.
    owner: Option<(ContainerId, PortNumber)>,
}

impl Entry {
    fn pair_of(&self, id: &ContainerId) -> Option<PortPair> {
        match &self.owner {
            Some((owner, internal)) if owner == id => Some(PortPair {
                internal: *internal,
                external: self.external,
            }),
            _ => None,
        }
    }
}

/// Reads every reservation. Names that are not port numbers (temporary `.` files, geard's
/// old `interfaces/` tree) are not reservations and are skipped.
fn scan(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (external, path) in numbered(dir)? {
        // Released between read_dir and readlink: no longer a reservation.
        let Some(target) = read_target(&path)? else {
            continue;
        };
        let owner = parse_target(&target);
        if owner.is_none() {
            log::warn!("{} does not name a container: {target:?}", path.display());
        }
        entries.push(Entry { external, owner });
    }
    Ok(entries)
}

/// The host ports reserved: the names of the entries, no target read.
fn names(dir: &Path) -> anyhow::Result<HashSet<PortNumber>> {
    Ok(numbered(dir)?.into_iter().map(|(port, _)| port).collect())
}

/// The entries of a reservation directory whose names parse as `T` (a port number here, an
/// MCS level in `mcs`), with their paths; none when there is no directory. Other names
/// (temporary files, geard's old `interfaces/` tree) are not reservations.
pub(in crate::container) fn numbered<T: std::str::FromStr>(
    dir: &Path,
) -> anyhow::Result<Vec<(T, PathBuf)>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut entries = Vec::new();
    for item in read {
        let item = item.with_context(|| format!("reading {}", dir.display()))?;
        if let Some(name) = item.file_name().to_str().and_then(|n| n.parse().ok()) {
            entries.push((name, item.path()));
        }
    }
    Ok(entries)
}

/// Those of the entries `held` that name `id` (external → internal).
fn owned(
    dir: &Path,
    id: &ContainerId,
    held: &[PortNumber],
) -> anyhow::Result<BTreeMap<PortNumber, PortNumber>> {
    let mut mine = BTreeMap::new();
    for &external in held {
        let target = read_target(&dir.join(external.to_string()))?;
        if let Some((owner, internal)) = target.as_deref().and_then(parse_target)
            && &owner == id
        {
            mine.insert(external, internal);
        }
    }
    Ok(mine)
}

/// The target text of a reservation (a port's here, an MCS level's in `mcs`); `None` when
/// it does not exist. Something that is not a symlink still holds what it names, for no
/// one.
pub(in crate::container) fn read_target(link: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_link(link) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(Some("(not a symlink)".into())),
        Err(e) => Err(e).with_context(|| format!("reading {}", link.display())),
    }
}

fn target(id: &ContainerId, internal: PortNumber) -> String {
    format!("{id}:{internal}")
}

/// Ids cannot contain `:`, so the last one separates the internal port.
fn parse_target(target: &str) -> Option<(ContainerId, PortNumber)> {
    let (id, internal) = target.rsplit_once(':')?;
    Some((id.parse().ok()?, internal.parse().ok()?))
}

/// Removes `ports/<external>` if its target names `id`; tells whether it did.
fn remove_if_owned(dir: &Path, external: PortNumber, id: &ContainerId) -> anyhow::Result<bool> {
    let link = dir.join(external.to_string());
    let owned = read_target(&link)?
        .and_then(|t| parse_target(&t))
        .is_some_and(|(owner, _)| &owner == id);
    if !owned {
        return Ok(false);
    }
    match fs::remove_file(&link) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", link.display())),
    }
}

/// What one `reserve` call has changed so far, so that a failure can put it back.
struct Changes<'a> {
    dir: &'a Path,
    id: &'a ContainerId,
    undo: Vec<Undo>,
}

enum Undo {
    /// An entry this call created.
    Created(PortNumber),
    /// An entry of `id` that pointed at `internal` before this call.
    Retargeted {
        external: PortNumber,
        internal: PortNumber,
    },
}

impl Changes<'_> {
    fn link(&self, external: PortNumber) -> PathBuf {
        self.dir.join(external.to_string())
    }

    /// Creates `ports/<external>`; `Ok(false)` when the port is taken.
    fn create(&mut self, external: PortNumber, internal: PortNumber) -> anyhow::Result<bool> {
        let link = self.link(external);
        match symlink(target(self.id, internal), &link) {
            Ok(()) => {
                self.undo.push(Undo::Created(external));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("creating {}", link.display())),
        }
    }

    /// Creates the entry for a host port the request names; `InUse` when someone holds it.
    fn create_explicit(
        &mut self,
        external: PortNumber,
        internal: PortNumber,
    ) -> Result<(), PortError> {
        // An entry can vanish between our symlink and readlink when its owner releases it;
        // then the port is free and we try again, a few times at most.
        for _ in 0..3 {
            if self.create(external, internal)? {
                return Ok(());
            }
            if let Some(target) = read_target(&self.link(external))? {
                let owner = parse_target(&target).map_or(target, |(owner, _)| owner.to_string());
                return Err(PortError::InUse {
                    port: external,
                    owner,
                });
            }
        }
        Err(PortError::InUse {
            port: external,
            owner: "another container".into(),
        })
    }

    /// Points an entry `id` owns at another internal port.
    fn retarget(
        &mut self,
        external: PortNumber,
        from: PortNumber,
        to: PortNumber,
    ) -> anyhow::Result<()> {
        replace(self.dir, self.id, external, to)?;
        self.undo.push(Undo::Retargeted {
            external,
            internal: from,
        });
        Ok(())
    }

    /// Undoes every change, newest first. Best effort: a failure here is logged, because the
    /// error that caused the rollback is the one to report.
    fn rollback(self) {
        for undo in self.undo.into_iter().rev() {
            let result = match undo {
                Undo::Created(external) => remove_if_owned(self.dir, external, self.id).map(drop),
                Undo::Retargeted { external, internal } => {
                    replace(self.dir, self.id, external, internal)
                }
            };
            if let Err(e) = result {
                log::warn!("rolling back the port reservation of {}: {e:#}", self.id);
            }
        }
        if let Err(e) = sync_dir(self.dir) {
            log::warn!("{e:#}");
        }
    }
}

/// Replaces the target of `ports/<external>` by renaming a new symlink over it, so the port
/// is never free in between.
fn replace(
    dir: &Path,
    id: &ContainerId,
    external: PortNumber,
    internal: PortNumber,
) -> anyhow::Result<()> {
    // Unique per process and call; the leading '.' keeps scans from reading it as a port.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{external}.tmp-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let link = dir.join(external.to_string());
    symlink(target(id, internal), &tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = fs::rename(&tmp, &link) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), link.display()));
    }
    Ok(())
}

/// Makes created, renamed and removed entries survive a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between Rust releases), so an id
/// starts its search at the same place in every process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
