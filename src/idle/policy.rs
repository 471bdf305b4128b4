//! A container's idle policy (after how long without traffic it idles, and whether that
//! stops or freezes it), and when a running container has been quiet long enough: the
//! packet counters of its rules, compared from one look to the next. Pure: the caller
//! passes the time.
//!
//! Counters are never zeroed (two processes zeroing one counter would lose packets);
//! any change from the last look is traffic, including a reset when a rule is re-created.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::id::ContainerId;
use crate::serde_str::serde_via_str;

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

serde_via_str!(IdleMode);

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

serde_via_str!(IdleAfter);

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

    /// Counts `now` as traffic of `id` (an open connection, which sends no packet while
    /// quiet): its quiet time starts again.
    pub fn touch(&mut self, id: &ContainerId, now: Instant) {
        if let Some(seen) = self.seen.get_mut(id) {
            seen.quiet_since = now;
        }
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
        // An open connection seen at 20 counts as traffic then.
        t.touch(&id, at(20));
        assert!(!due(t.observe(&id, Some(3), at(24)), after));
        assert!(due(t.observe(&id, Some(3), at(25)), after));
        // A re-created rule (counter back to 0) is traffic too.
        assert_eq!(t.observe(&id, Some(0), at(21)), Duration::ZERO);
        t.forget(&id);
        assert_eq!(t.observe(&id, Some(0), at(30)), Duration::ZERO);
        t.retain(|_| false);
        assert_eq!(t.observe(&id, Some(0), at(40)), Duration::ZERO);
    }
}
