//! Idling: containers that stop (or freeze) after a while without traffic, and wake on the
//! first connection to any of their published ports. `docs/idling.md` tells the whole story.
//!
//! The truth is on disk: an idle container has a mark, `idle/<id>`, naming how it was idled;
//! its policy (`--idle-after`) is in its spec. Firewall rules are derived from those and
//! reconciled by `gear-idler`, so they can always be rebuilt after a crash or a reboot.
//!
//! - [`rules`]: the iptables rules (pure: rendering, parsing `iptables-save`, planning);
//! - [`firewall`]: the seam to iptables, and its fake;
//! - [`policy`]: when a container has been quiet long enough (pure, with a given clock);
//! - [`ops`]: idle, wake and forget a container (used by `gear-api` and `gear-idler`);
//! - [`queue`]: the NFQUEUE that holds first SYNs, and its fake;
//! - [`daemon`]: `gear-idler`'s loop.

pub mod daemon;
pub mod firewall;
pub mod ops;
pub mod policy;
pub mod queue;
pub mod rules;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::id::ContainerId;
use crate::paths::Paths;

/// How a container is idled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleMode {
    /// Stop the unit: no process, no memory; waking costs a container start.
    #[default]
    Stop,
    /// Freeze the container's processes (`docker pause`): memory stays, waking is a thaw.
    Freeze,
}

impl IdleMode {
    /// `stop` or `freeze`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdleMode::Stop => "stop",
            IdleMode::Freeze => "freeze",
        }
    }
}

/// An idle mode that is neither `stop` nor `freeze`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idle mode '{0}' is unknown: expected stop or freeze")]
pub struct InvalidMode(String);

impl FromStr for IdleMode {
    type Err = InvalidMode;
    fn from_str(s: &str) -> Result<Self, InvalidMode> {
        match s.trim() {
            "stop" => Ok(IdleMode::Stop),
            "freeze" => Ok(IdleMode::Freeze),
            other => Err(InvalidMode(other.to_string())),
        }
    }
}

impl fmt::Display for IdleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IdleMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdleMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A quiet period, written like `--idle-after`: `30s`, `5m`, `2h` (at least one second,
/// the idler's measuring step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleAfter(Duration);

impl IdleAfter {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for IdleAfter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = crate::duration::parse(s)?;
        if d < Duration::from_secs(1) {
            return Err(format!("idle time '{s}' is shorter than 1s"));
        }
        Ok(IdleAfter(d))
    }
}

impl fmt::Display for IdleAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.subsec_millis(), self.0.as_secs()) {
            (0, s) if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            (0, s) if s % 60 == 0 => write!(f, "{}m", s / 60),
            (0, s) => write!(f, "{s}s"),
            _ => write!(f, "{}ms", self.0.as_millis()),
        }
    }
}

impl Serialize for IdleAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IdleAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A container's idle policy (`"Idle": {"After": "5m", "Mode": "stop"}` in its spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct IdlePolicy {
    /// Idle it after this long without a packet to its published ports.
    pub after: IdleAfter,
    /// How.
    #[serde(default)]
    pub mode: IdleMode,
}

/// How `id` was idled, if it is idle (its mark).
pub fn marked(paths: &Paths, id: &ContainerId) -> anyhow::Result<Option<IdleMode>> {
    let path = paths.idle_marker(id);
    match std::fs::read_to_string(&path) {
        // A mark we cannot read still means idle; stopping is the safe reading.
        Ok(text) => Ok(Some(text.parse().unwrap_or_default())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Marks `id` idle (idled by `mode`); the mark survives restarts and reboots.
pub fn mark(paths: &Paths, id: &ContainerId, mode: IdleMode) -> anyhow::Result<()> {
    atomic_file::write(
        &paths.idle_marker(id),
        format!("{mode}\n").as_bytes(),
        0o644,
    )
}

/// Clears the idle mark of `id`; returns how it had been idled, if it was.
pub fn unmark(paths: &Paths, id: &ContainerId) -> anyhow::Result<Option<IdleMode>> {
    let was = marked(paths, id)?;
    if was.is_some() {
        atomic_file::remove(&paths.idle_marker(id))?;
    }
    Ok(was)
}

/// Holds the cross-process lock of one container: `gear-api` and `gear-idler` both take it
/// before they idle, wake, start or stop it, so neither undoes the other half-way. An
/// `flock(2)`, so a crashed holder releases it.
#[derive(Debug)]
pub struct Locked {
    id: ContainerId,
    _file: std::fs::File,
}

impl Locked {
    /// Waits for the lock of `id`.
    pub async fn acquire(paths: &Paths, id: &ContainerId) -> anyhow::Result<Locked> {
        let file = Self::open(paths, id)?;
        let id2 = id.clone();
        tokio::task::spawn_blocking(move || {
            file.lock()
                .with_context(|| format!("locking container {id2}"))
                .map(|()| file)
        })
        .await
        .context("the lock task failed")?
        .map(|file| Locked {
            id: id.clone(),
            _file: file,
        })
    }

    /// Takes the lock of `id` if nobody holds it.
    pub fn try_acquire(paths: &Paths, id: &ContainerId) -> anyhow::Result<Option<Locked>> {
        let file = Self::open(paths, id)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Locked {
                id: id.clone(),
                _file: file,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking container {id}"))
            }
        }
    }

    /// The container this lock is for.
    pub fn id(&self) -> &ContainerId {
        &self.id
    }

    fn open(paths: &Paths, id: &ContainerId) -> anyhow::Result<std::fs::File> {
        let path = paths.container_lock(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_like_flags() {
        let p: IdlePolicy = serde_json::from_str(r#"{"After":"90s"}"#).unwrap();
        assert_eq!(p.after.get(), Duration::from_secs(90));
        assert_eq!(p.mode, IdleMode::Stop);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"After":"90s","Mode":"stop"}"#
        );
        let p: IdlePolicy = serde_json::from_str(r#"{"After":"5m","Mode":"freeze"}"#).unwrap();
        assert_eq!(p.after.to_string(), "5m");
        assert_eq!(p.mode, IdleMode::Freeze);
        for bad in [
            r#"{"After":"500ms"}"#,
            r#"{"After":"5s","Mode":"nap"}"#,
            r#"{"After":"x"}"#,
            r#"{"After":"5s","Other":1}"#,
        ] {
            assert!(serde_json::from_str::<IdlePolicy>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn marks_survive_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let id: ContainerId = "web-1".parse().unwrap();
        assert_eq!(marked(&paths, &id).unwrap(), None);
        mark(&paths, &id, IdleMode::Freeze).unwrap();
        assert_eq!(marked(&paths, &id).unwrap(), Some(IdleMode::Freeze));
        assert_eq!(unmark(&paths, &id).unwrap(), Some(IdleMode::Freeze));
        assert_eq!(unmark(&paths, &id).unwrap(), None);
    }

    #[tokio::test]
    async fn the_lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let id: ContainerId = "web-1".parse().unwrap();
        let held = Locked::acquire(&paths, &id).await.unwrap();
        assert!(Locked::try_acquire(&paths, &id).unwrap().is_none());
        drop(held);
        assert!(Locked::try_acquire(&paths, &id).unwrap().is_some());
    }
}
