//! A recording, in-memory [`Systemd`] for unit tests.

use std::sync::Mutex;

use super::{Systemd, UnitInfo};

/// Holds the units a test says are loaded, and records every call.
#[derive(Debug, Default)]
pub struct FakeSystemd {
    /// The loaded units.
    pub units: Mutex<Vec<UnitInfo>>,
    /// Every call, in order, as text (`list_units ctr-*.service`).
    pub calls: Mutex<Vec<String>>,
}

impl FakeSystemd {
    /// A fake with these units loaded, all `loaded` and in the given active state.
    pub fn with_units(units: &[(&str, &str, &str)]) -> FakeSystemd {
        let fake = FakeSystemd::default();
        *fake.units.lock().unwrap() = units
            .iter()
            .map(|(name, active, sub)| UnitInfo {
                name: name.to_string(),
                load_state: "loaded".into(),
                active_state: active.to_string(),
                sub_state: sub.to_string(),
                job_type: None,
            })
            .collect();
        fake
    }
}

/// Shell-style glob with `*` only, which is all gear's patterns use.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

impl Systemd for FakeSystemd {
    async fn list_units(&self, pattern: &str) -> anyhow::Result<Vec<UnitInfo>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("list_units {pattern}"));
        Ok(self
            .units
            .lock()
            .unwrap()
            .iter()
            .filter(|u| glob_match(pattern, &u.name))
            .cloned()
            .collect())
    }
}
