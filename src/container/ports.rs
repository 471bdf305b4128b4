//! Host port reservations: which container publishes which host port.
//!
//! A reservation is a symlink `ports/<external>` whose target text is `<id>:<internal>`. It
//! points at nothing and is only ever read with readlink(2). symlink(2) creates the name
//! atomically and fails with `EEXIST` when it is taken, so two installs (threads or separate
//! processes) can never reserve the same host port. That needs no lock file, and there is no
//! in-memory state to lose on restart; after a crash each entry is either there or not.
//!
//! Unlike geard (`port/reservation.go`), a conflict is an error that undoes only what the
//! failing call created, and release removes only entries that name the releasing container.
//! Calls for one container id are expected to be serialized by the caller (its install lock);
//! calls for different ids may run concurrently from anywhere.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

use crate::id::ContainerId;
use crate::paths::Paths;

/// Why a text or number is not a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPort {
    /// Not a number from 1 to 65535.
    #[error("'{0}' is not a port number from 1 to 65535")]
    Number(String),
    /// A port range that is not `FIRST-LAST` with FIRST <= LAST.
    #[error("port range '{0}' must be FIRST-LAST, e.g. 4000-60000")]
    Range(String),
    /// A port mapping without its `:`.
    #[error("port mapping '{0}' must be INTERNAL:EXTERNAL, e.g. 8080:0 (0 = any free host port)")]
    Mapping(String),
}

/// A TCP port number, 1–65535 (0 is not a port).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u16", into = "u16")]
pub struct PortNumber(u16);

impl PortNumber {
    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for PortNumber {
    type Error = InvalidPort;

    fn try_from(n: u16) -> Result<Self, InvalidPort> {
        match n {
            0 => Err(InvalidPort::Number("0".into())),
            n => Ok(PortNumber(n)),
        }
    }
}

impl From<PortNumber> for u16 {
    fn from(port: PortNumber) -> u16 {
        port.0
    }
}

impl FromStr for PortNumber {
    type Err = InvalidPort;

    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        parse_u16(s)?.try_into()
    }
}

impl fmt::Display for PortNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Digits only: `u16::from_str` would also accept "+80".
fn parse_u16(s: &str) -> Result<u16, InvalidPort> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidPort::Number(s.to_string()));
    }
    s.parse().map_err(|_| InvalidPort::Number(s.to_string()))
}

/// One published port: container port → host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortPair {
    /// The port inside the container.
    pub internal: PortNumber,
    /// The host port it is published on.
    pub external: PortNumber,
}

impl fmt::Display for PortPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.internal, self.external)
    }
}

/// What an install asks for: geard's JSON `{"Internal": 8080, "External": 0}`; External 0
/// or absent = allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortRequest {
    /// The port inside the container.
    pub internal: PortNumber,
    /// The host port wanted, or 0 for any free one (geard omits it then, and so do we).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub external: u16,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl PortRequest {
    /// The host port asked for, or `None` when any free one will do.
    pub fn requested_external(&self) -> Option<PortNumber> {
        PortNumber::try_from(self.external).ok()
    }
}

/// Parses the CLI form "INTERNAL:EXTERNAL" (EXTERNAL 0 = allocate), e.g. "8080:0".
impl FromStr for PortRequest {
    type Err = InvalidPort;

    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        let (internal, external) = s
            .split_once(':')
            .ok_or_else(|| InvalidPort::Mapping(s.to_string()))?;
        Ok(PortRequest {
            internal: internal.parse()?,
            external: parse_u16(external)?,
        })
    }
}

/// The host ports handed out to requests that leave the host port to us. Explicit host
/// ports may lie outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The lowest port handed out.
    pub first: u16,
    /// The highest port handed out (inclusive).
    pub last: u16,
}

impl Default for PortRange {
    /// 4000–60000: geard's range, above the well-known and common service ports.
    fn default() -> Self {
        PortRange {
            first: 4000,
            last: 60000,
        }
    }
}

impl FromStr for PortRange {
    type Err = InvalidPort;

    /// `FIRST-LAST`, e.g. `4000-60000`; both ends are ports and FIRST <= LAST.
    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        let bad = || InvalidPort::Range(s.to_string());
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first: PortNumber = first.parse().map_err(|_| bad())?;
        let last: PortNumber = last.parse().map_err(|_| bad())?;
        if first > last {
            return Err(bad());
        }
        Ok(PortRange {
            first: first.get(),
            last: last.get(),
        })
    }
}

impl PortRange {
    fn len(self) -> u32 {
        if self.first <= self.last {
            u32::from(self.last) - u32::from(self.first) + 1
        } else {
            0
        }
    }

    /// The `offset`th port of the range (`None` for port 0 of a range starting at 0).
    fn nth(self, offset: u32) -> Option<PortNumber> {
        let n = u16::try_from(u32::from(self.first) + offset).ok()?;
        PortNumber::try_from(n).ok()
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a reservation failed. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// One container port is asked for twice.
    #[error("internal port {0} is published more than once")]
    DuplicateInternal(PortNumber),
    /// One host port is asked for twice.
    #[error("host port {0} is requested for more than one internal port")]
    DuplicateExternal(PortNumber),
    /// Another container holds the host port asked for.
    #[error("host port {port} is already reserved by {owner}")]
    InUse {
        /// The port asked for.
        port: PortNumber,
        /// The id its entry names (or the entry's raw target when it names no container).
        owner: String,
    },
    /// Every port of the range is reserved.
    #[error("no free host port left in {range}")]
    Exhausted {
        /// The range that was searched.
        range: PortRange,
    },
    /// The ports directory could not be read or changed.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// The reservations under one [`Paths`], handing out ports from one range.
#[derive(Debug, Clone)]
pub struct Ports<'a> {
    paths: &'a Paths,
    range: PortRange,
}

impl<'a> Ports<'a> {
    /// Reservations under `paths.ports_dir()`, allocating from `range`.
    pub fn new(paths: &'a Paths, range: PortRange) -> Ports<'a> {
        Ports { paths, range }
    }

    /// Reserves host ports for `id`: requested explicit externals must be free (or already
    /// owned by `id`), zeros get a free port from the range; ports `id` held before but no
    /// longer asks for are released; a pair with the same internal port as one `id` already
    /// holds keeps its external port when the request says 0 (re-install keeps ports stable).
    /// All-or-nothing: on any error, what this call created is rolled back and `id`'s
    /// previous reservations are untouched.
    ///
    /// Returns the pairs sorted by internal port.
    pub fn reserve(
        &self,
        id: &ContainerId,
        requested: &[PortRequest],
    ) -> Result<Vec<PortPair>, PortError> {
        check_request(requested)?;
        let dir = self.paths.ports_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let entries = scan(&dir)?;
        let mut taken: HashSet<PortNumber> = entries.iter().map(|e| e.external).collect();
        // What `id` holds and no requested pair has claimed yet (external → internal).
        // Whatever is left at the end is released.
        let mut unclaimed: BTreeMap<PortNumber, PortNumber> = entries
            .iter()
            .filter_map(|e| e.pair_of(id))
            .map(|p| (p.external, p.internal))
            .collect();
        let mut changes = Changes {
            dir: &dir,
            id,
            undo: Vec::new(),
        };
        let claimed = self
            .claim(&mut changes, requested, &mut taken, &mut unclaimed)
            .and_then(|pairs| {
                sync_dir(&dir)?;
                Ok(pairs)
            });
        let mut pairs = match claimed {
            Ok(pairs) => pairs,
            Err(e) => {
                changes.rollback();
                return Err(e);
            }
        };
        // The new reservations are durable: from here on, a failure only leaves an entry that
        // names `id`, which its next reserve or release removes, so it is logged, not returned.
        for external in unclaimed.into_keys() {
            if let Err(e) = remove_if_owned(&dir, external, id) {
                log::warn!("releasing host port {external} of {id}: {e:#}");
            }
        }
        if let Err(e) = sync_dir(&dir) {
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
        let len = self.range.len();
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
        let len = self.range.len();
        for _ in 0..len {
            let offset = *next % len;
            *next = offset + 1;
            let Some(port) = self.range.nth(offset) else {
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
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut entries = Vec::new();
    for item in read {
        let item = item.with_context(|| format!("reading {}", dir.display()))?;
        let Some(external) = item.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // Released between read_dir and readlink: no longer a reservation.
        let Some(target) = read_target(&item.path())? else {
            continue;
        };
        let owner = parse_target(&target);
        if owner.is_none() {
            log::warn!(
                "{} does not name a container: {target:?}",
                item.path().display()
            );
        }
        entries.push(Entry { external, owner });
    }
    Ok(entries)
}

/// The target text of a reservation; `None` when it does not exist. Something that is not a
/// symlink still holds its port, with a target that names no one.
fn read_target(link: &Path) -> anyhow::Result<Option<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            "4000-60000".parse::<PortRange>().unwrap(),
            PortRange::default()
        );
        assert_eq!(
            "80-80".parse::<PortRange>().unwrap(),
            PortRange {
                first: 80,
                last: 80
            }
        );
        for bad in ["", "4000", "0-10", "10-5", "a-b", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?} accepted");
        }
    }

    fn id(s: &str) -> ContainerId {
        s.parse().unwrap()
    }

    fn port(n: u16) -> PortNumber {
        PortNumber::try_from(n).unwrap()
    }

    fn pair(internal: u16, external: u16) -> PortPair {
        PortPair {
            internal: port(internal),
            external: port(external),
        }
    }

    fn reqs(list: &[&str]) -> Vec<PortRequest> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn range(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    fn root() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        (dir, paths)
    }

    #[test]
    fn parses_cli_mappings() {
        let r: PortRequest = "8080:0".parse().unwrap();
        assert_eq!((r.internal, r.requested_external()), (port(8080), None));
        let r: PortRequest = "8080:4000".parse().unwrap();
        assert_eq!(r.requested_external(), Some(port(4000)));
        for bad in [
            "8080",
            "a:b",
            "0:80",
            "8080:70000",
            "",
            ":",
            "+80:0",
            "80:-1",
            "80:1:2",
        ] {
            assert!(bad.parse::<PortRequest>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "8080".parse::<PortRequest>(),
            Err(InvalidPort::Mapping("8080".into()))
        );
        assert_eq!(
            "8080:70000".parse::<PortRequest>(),
            Err(InvalidPort::Number("70000".into()))
        );
        assert_eq!("65535".parse::<PortNumber>(), Ok(port(65535)));
        assert!("0".parse::<PortNumber>().is_err());
    }

    #[test]
    fn json_is_geards() {
        let r: PortRequest = serde_json::from_str(r#"{"Internal":8080}"#).unwrap();
        assert_eq!(r.external, 0);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"Internal":8080}"#);
        let r: PortRequest = serde_json::from_str(r#"{"Internal":80,"External":4000}"#).unwrap();
        assert_eq!(r.requested_external(), Some(port(4000)));
        assert!(serde_json::from_str::<PortRequest>(r#"{"Internal":0}"#).is_err());
        assert!(serde_json::from_str::<PortRequest>(r#"{"Internal":1,"External":70000}"#).is_err());
        assert_eq!(
            serde_json::to_string(&pair(80, 4000)).unwrap(),
            r#"{"Internal":80,"External":4000}"#
        );
    }

    #[test]
    fn allocates_reuses_and_releases() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, range(5000, 5009));
        let web = id("web-1");
        let pairs = ports.reserve(&web, &reqs(&["443:0", "80:0"])).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            (pairs[0].internal, pairs[1].internal),
            (port(80), port(443))
        );
        assert_ne!(pairs[0].external, pairs[1].external);
        assert!(
            pairs
                .iter()
                .all(|p| (5000..=5009).contains(&p.external.get()))
        );
        assert_eq!(ports.reserved(&web).unwrap(), pairs);
        // The storage format: a symlink per host port whose target names owner and internal port.
        let link = paths.ports_dir().join(pairs[0].external.to_string());
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("web-1:80"));
        // Reserving the same again changes nothing.
        assert_eq!(
            ports.reserve(&web, &reqs(&["80:0", "443:0"])).unwrap(),
            pairs
        );
        ports.release(&web).unwrap();
        assert!(ports.reserved(&web).unwrap().is_empty());
        assert_eq!(fs::read_dir(paths.ports_dir()).unwrap().count(), 0);
        ports.release(&web).unwrap();
    }

    #[test]
    fn reinstall_keeps_the_external_port_of_an_internal_port() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, PortRange::default());
        let web = id("web-1");
        let first = ports.reserve(&web, &reqs(&["80:0", "443:0"])).unwrap();
        let second = ports.reserve(&web, &reqs(&["80:0", "8443:0"])).unwrap();
        assert_eq!(second[0], first[0]);
        assert_eq!(second[1].internal, port(8443));
        assert_eq!(ports.all().unwrap().len(), 2, "443's port was not released");
        // An explicit new host port moves the pair and frees the old one.
        let third = ports.reserve(&web, &reqs(&["80:7000"])).unwrap();
        assert_eq!(third, vec![pair(80, 7000)]);
        assert_eq!(
            ports.all().unwrap(),
            vec![(port(7000), web.clone(), port(80))]
        );
        // A host port the container holds can be given to another of its internal ports.
        let fourth = ports.reserve(&web, &reqs(&["81:7000", "80:0"])).unwrap();
        assert_eq!(fourth[1], pair(81, 7000));
        assert_ne!(fourth[0].external, port(7000));
    }

    #[test]
    fn a_port_taken_by_another_container_is_in_use_and_nothing_changes() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, range(5000, 5009));
        let (a, b) = (id("ctr-a"), id("ctr-b"));
        ports.reserve(&a, &reqs(&["80:6000"])).unwrap();
        ports.reserve(&b, &reqs(&["22:0"])).unwrap();
        let before = ports.all().unwrap();
        match ports.reserve(&b, &reqs(&["22:0", "80:6000"])) {
            Err(PortError::InUse { port: p, owner }) => {
                assert_eq!((p, owner.as_str()), (port(6000), "ctr-a"));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        assert_eq!(ports.all().unwrap(), before);
        assert_eq!(ports.reserved(&a).unwrap(), vec![pair(80, 6000)]);
    }

    #[test]
    fn release_leaves_other_containers_ports() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, range(5000, 5009));
        let (a, b) = (id("ctr-a"), id("ctr-b"));
        ports.reserve(&a, &reqs(&["80:0", "81:0"])).unwrap();
        let held = ports.reserve(&b, &reqs(&["80:0", "81:0"])).unwrap();
        ports.release(&a).unwrap();
        assert_eq!(ports.reserved(&b).unwrap(), held);
        assert_eq!(ports.all().unwrap().len(), 2);
    }

    #[test]
    fn a_failure_rolls_back_what_the_call_created() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, range(5000, 5001));
        let (a, b) = (id("ctr-a"), id("ctr-b"));
        ports.reserve(&b, &reqs(&["1:5005"])).unwrap();
        let held = ports.reserve(&a, &reqs(&["80:0"])).unwrap();
        // The first pair's entry is created, then the second pair fails.
        let err = ports.reserve(&a, &reqs(&["443:7000", "8080:5005"]));
        assert!(matches!(err, Err(PortError::InUse { .. })), "{err:?}");
        assert!(!paths.ports_dir().join("7000").exists());
        assert_eq!(ports.reserved(&a).unwrap(), held);
        // A retargeted entry is put back too.
        ports.reserve(&b, &reqs(&["1:5005", "2:0"])).unwrap();
        let err = ports.reserve(&a, &reqs(&["81:7000", "443:0", "444:0"]));
        assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
        assert!(!paths.ports_dir().join("7000").exists());
        assert_eq!(ports.reserved(&a).unwrap(), held);
        assert_eq!(ports.reserved(&b).unwrap().len(), 2);
    }

    #[test]
    fn a_full_range_is_exhausted() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, range(5000, 5001));
        let (a, b) = (id("ctr-a"), id("ctr-b"));
        ports.reserve(&a, &reqs(&["1:0", "2:0"])).unwrap();
        let err = ports.reserve(&b, &reqs(&["80:0"]));
        assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
        let err = ports.reserve(&a, &reqs(&["1:0", "2:0", "3:0"]));
        assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
        assert_eq!(ports.reserved(&a).unwrap().len(), 2);
        // Explicit host ports need not be in the range.
        assert_eq!(
            ports.reserve(&b, &reqs(&["80:80"])).unwrap(),
            vec![pair(80, 80)]
        );
        // A port the container gives up is handed to its new internal port.
        assert_eq!(ports.reserve(&a, &reqs(&["1:0", "3:0"])).unwrap().len(), 2);
        let empty = Ports::new(&paths, range(10, 9));
        let err = empty.reserve(&b, &reqs(&["81:0"]));
        assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
    }

    #[test]
    fn rejects_duplicates_in_one_request() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, PortRange::default());
        let a = id("ctr-a");
        let err = ports.reserve(&a, &reqs(&["80:0", "80:5000"]));
        assert!(matches!(err, Err(PortError::DuplicateInternal(p)) if p == port(80)));
        let err = ports.reserve(&a, &reqs(&["80:5000", "81:5000"]));
        assert!(matches!(err, Err(PortError::DuplicateExternal(p)) if p == port(5000)));
        assert!(ports.all().unwrap().is_empty());
    }

    #[test]
    fn entries_that_name_no_container_hold_their_port_and_stay() {
        let (_dir, paths) = root();
        let dir = paths.ports_dir();
        fs::create_dir_all(dir.join("interfaces/1/50")).unwrap();
        symlink("garbage", dir.join("5000")).unwrap();
        fs::write(dir.join("5001"), "").unwrap();
        let ports = Ports::new(&paths, range(5000, 5002));
        let a = id("ctr-a");
        assert_eq!(
            ports.reserve(&a, &reqs(&["80:0"])).unwrap(),
            vec![pair(80, 5002)]
        );
        assert!(matches!(
            ports.reserve(&a, &reqs(&["80:5000"])),
            Err(PortError::InUse { owner, .. }) if owner == "garbage"
        ));
        ports.release(&a).unwrap();
        assert!(ports.all().unwrap().is_empty());
        assert!(dir.join("5000").symlink_metadata().is_ok());
        assert!(dir.join("5001").exists());
    }

    #[test]
    fn concurrent_installs_get_distinct_ports() {
        let (_dir, paths) = root();
        let ports = Ports::new(&paths, range(20000, 20199));
        let requests = reqs(&[
            "1:0", "2:0", "3:0", "4:0", "5:0", "6:0", "7:0", "8:0", "9:0", "10:0",
        ]);
        let results: Vec<Vec<PortPair>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let (ports, requests) = (&ports, &requests);
                    s.spawn(move || {
                        ports
                            .reserve(&id(&format!("ctr-{i:02}")), requests)
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let externals: HashSet<PortNumber> = results.iter().flatten().map(|p| p.external).collect();
        assert_eq!(externals.len(), 160);
        let all = ports.all().unwrap();
        assert_eq!(all.len(), 160);
        for (i, pairs) in results.iter().enumerate() {
            assert_eq!(&ports.reserved(&id(&format!("ctr-{i:02}"))).unwrap(), pairs);
        }
    }
}
