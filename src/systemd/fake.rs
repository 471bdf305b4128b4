//! A recording, in-memory [`Systemd`] for unit tests.

use std::sync::Mutex;

use super::{Action, JobResult, Systemd, UnitDetails, UnitInfo, UnitState};

/// Holds the units a test says are loaded, and records every call.
#[derive(Debug, Default)]
pub struct FakeSystemd {
    /// The loaded units.
    pub units: Mutex<Vec<UnitInfo>>,
    /// Every call, in order, as text (`list_units ctr-*.service`).
    pub calls: Mutex<Vec<String>>,
    /// Units whose start jobs end in `failed`.
    pub failing: Mutex<Vec<String>>,
    /// Units whose start jobs never end (an image pull with no network).
    pub hanging: Mutex<Vec<String>>,
    /// The transient units started, with their properties.
    pub transient: Mutex<Vec<(String, Vec<super::Property>)>>,
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

impl FakeSystemd {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// The active state the fake holds for `name` (`inactive` if it has none).
    pub fn active_state(&self, name: &str) -> String {
        self.units
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.name == name)
            .map_or("inactive".into(), |u| u.active_state.clone())
    }
}

impl Systemd for FakeSystemd {
    async fn unit_state(&self, name: &str) -> anyhow::Result<UnitState> {
        self.record(format!("unit_state {name}"));
        let units = self.units.lock().unwrap();
        let unit = units.iter().find(|u| u.name == name);
        Ok(UnitState {
            load_state: unit.map_or("not-found".into(), |u| u.load_state.clone()),
            active_state: unit.map_or("inactive".into(), |u| u.active_state.clone()),
            sub_state: unit.map_or("dead".into(), |u| u.sub_state.clone()),
            need_daemon_reload: false,
        })
    }

    async fn unit_details(&self, name: &str) -> anyhow::Result<UnitDetails> {
        self.record(format!("unit_details {name}"));
        let running = self.active_state(name) == "active";
        Ok(UnitDetails {
            since_usec: Some(1_700_000_000_000_000),
            main_pid: running.then_some(4242),
            memory_bytes: running.then_some(8 << 20),
            result: Some("success".into()),
        })
    }

    async fn loaded_state(&self, name: &str) -> anyhow::Result<Option<UnitState>> {
        self.record(format!("loaded_state {name}"));
        let units = self.units.lock().unwrap();
        Ok(units.iter().find(|u| u.name == name).map(|u| UnitState {
            load_state: u.load_state.clone(),
            active_state: u.active_state.clone(),
            sub_state: u.sub_state.clone(),
            need_daemon_reload: false,
        }))
    }

    async fn run_job(&self, action: Action, name: &str) -> anyhow::Result<JobResult> {
        self.record(format!("{action:?} {name}").to_lowercase());
        if action != Action::Stop && self.failing.lock().unwrap().iter().any(|u| u == name) {
            return Ok(JobResult::Other("failed".into()));
        }
        let hangs = self.hanging.lock().unwrap().iter().any(|u| u == name);
        if action != Action::Stop && hangs {
            std::future::pending::<()>().await;
        }
        let (active, sub) = match action {
            Action::Start | Action::Restart => ("active", "running"),
            Action::Stop => ("inactive", "dead"),
        };
        let mut units = self.units.lock().unwrap();
        match units.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.active_state = active.into();
                u.sub_state = sub.into();
            }
            None => units.push(UnitInfo {
                name: name.to_string(),
                load_state: "loaded".into(),
                active_state: active.into(),
                sub_state: sub.into(),
                job_type: None,
            }),
        }
        Ok(JobResult::Done)
    }

    async fn reset_failed(&self, name: &str) -> anyhow::Result<()> {
        self.record(format!("reset_failed {name}"));
        Ok(())
    }

    async fn reload(&self) -> anyhow::Result<()> {
        self.record("reload".into());
        Ok(())
    }

    async fn enable(&self, name: &str) -> anyhow::Result<()> {
        self.record(format!("enable {name}"));
        Ok(())
    }

    async fn start_transient(
        &self,
        name: &str,
        properties: &[super::Property],
    ) -> anyhow::Result<JobResult> {
        self.record(format!("start_transient {name}"));
        self.transient
            .lock()
            .unwrap()
            .push((name.to_string(), properties.to_vec()));
        if self.failing.lock().unwrap().iter().any(|u| u == name) {
            return Ok(JobResult::Other("failed".into()));
        }
        Ok(JobResult::Done)
    }

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
