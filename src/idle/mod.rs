//! Idling: containers that stop (or freeze) after a while without traffic, and wake on the
//! first connection to any of their published ports. `docs/idling.md` tells the whole story.
//!
//! The truth is on disk: an idle container has a mark, `idle/<id>`, naming how it was idled;
//! its policy (`--idle-after`) is in its spec. Firewall rules are derived from those and
//! reconciled by `gear-idler`, so they can always be rebuilt after a crash or a reboot.
//!
//! This module holds the parts that know nothing of containers' lifecycle, so that the
//! lifecycle can build on them:
//! - [`policy`]: the idle policy, and when a container has been quiet long enough (pure,
//!   with a given clock);
//! - [`rules`]: the iptables rules (pure: rendering, parsing `iptables-save`, planning);
//! - [`connections`]: open connections to a container's ports, which keep it from idling;
//! - [`firewall`]: reading and syncing those rules through the [`crate::netfilter`] seam;
//! - [`queue`]: the NFQUEUE that holds first SYNs, and its fake;
//! - [`wakes`]: how many wakes connections may cause, per source and overall.
//!
//! Idling and waking a container are lifecycle steps (`container::idling`); `gear-idler`'s
//! loop is [`crate::idler`].

pub mod connections;
pub mod firewall;
pub mod policy;
pub mod queue;
pub mod rules;
pub mod wakes;

pub use policy::{IdleAfter, IdleMode, IdlePolicy, InvalidMode};

use crate::atomic_file;
use crate::id::ContainerId;
use crate::paths::Paths;
use anyhow::Context as _;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
