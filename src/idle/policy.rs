//! When a running container has been quiet long enough to idle: the packet counters of its
//! rules, compared from one look to the next. Pure: the caller passes the time.
//!
//! Counters are never zeroed (two processes zeroing one counter would lose packets);
//! any change from the last look is traffic, including a reset when a rule is re-created.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::id::ContainerId;

/// What was last seen of one container.
#[derive(Debug, Clone, Copy)]
struct Seen {
    packets: Option<u64>,
    quiet_since: Instant,
}

/// The last traffic of every watched container.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<ContainerId, Seen>,
}

impl Tracker {
    /// An empty tracker: every container starts its quiet period when first observed.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Records the packet count of `id` at `now` (`None` while it has no counting rule);
    /// returns how long it has been quiet.
    pub fn observe(&mut self, id: &ContainerId, packets: Option<u64>, now: Instant) -> Duration {
        let seen = self.seen.entry(id.clone()).or_insert(Seen {
            packets,
            quiet_since: now,
        });
        if seen.packets != packets || packets.is_none() {
            seen.packets = packets;
            seen.quiet_since = now;
        }
        now.saturating_duration_since(seen.quiet_since)
    }

    /// Forgets `id`: it was idled, stopped, or lost its policy.
    pub fn forget(&mut self, id: &ContainerId) {
        self.seen.remove(id);
    }

    /// Keeps only the containers for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(&ContainerId) -> bool) {
        self.seen.retain(|id, _| keep(id));
    }
}

/// Whether a container quiet for `quiet` should idle under a policy of `after`.
pub fn due(quiet: Duration, after: Duration) -> bool {
    quiet >= after
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_time_restarts_with_every_packet() {
        let id: ContainerId = "web-1".parse().unwrap();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let after = Duration::from_secs(5);
        let mut t = Tracker::new();
        // No counting rule yet: the clock does not run.
        assert_eq!(t.observe(&id, None, at(0)), Duration::ZERO);
        assert_eq!(t.observe(&id, None, at(9)), Duration::ZERO);
        // The rule appears at 10; quiet from then on.
        assert_eq!(t.observe(&id, Some(0), at(10)), Duration::ZERO);
        assert!(!due(t.observe(&id, Some(0), at(14)), after));
        // A packet at 15 restarts the clock.
        assert_eq!(t.observe(&id, Some(3), at(15)), Duration::ZERO);
        assert!(!due(t.observe(&id, Some(3), at(19)), after));
        assert!(due(t.observe(&id, Some(3), at(20)), after));
        // A re-created rule (counter back to 0) is traffic too.
        assert_eq!(t.observe(&id, Some(0), at(21)), Duration::ZERO);
        t.forget(&id);
        assert_eq!(t.observe(&id, Some(0), at(30)), Duration::ZERO);
        t.retain(|_| false);
        assert_eq!(t.observe(&id, Some(0), at(40)), Duration::ZERO);
    }
}
