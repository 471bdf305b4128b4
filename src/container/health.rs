//! Health checks from the host: the same TCP or HTTP check as readiness
//! ([`super::probe`]), repeated every `Interval` while the container runs. `Failures`
//! failed checks in a row restart it, unless its restart policy is `no`. gear-idler runs
//! the checks ([`Checker::round`] every tick of its own).
//!
//! A passing check writes nothing, neither to the journal nor to disk. The first failure
//! of a run of them, and the restart, write one journal line each; `health/<id>` (written
//! at each failure and at the first pass after failures, never otherwise) holds whether
//! the container passes now, how many checks failed in a row, and the last failure: what
//! `gear status` shows.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::host::{Host, Parts};
use super::ports::PortNumber;
use super::probe::{self, HttpPath, InvalidProbe, ReadyProbe, Wait};
use super::spec::RestartPolicy;
use super::unit::docker_name;
use crate::atomic_file;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::paths::Paths;
use crate::systemd::Systemd;

/// How often a container is checked when its check says nothing.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How many failures in a row restart it when its check says nothing.
pub const DEFAULT_FAILURES: u32 = 3;

/// A health check, as the install body and the spec carry it:
/// `{"Http": "/health", "Port": 8080, "Interval": "5s", "Failures": 3}` (no `Http`: TCP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// GET this path, which must answer 2xx or 3xx; absent, a TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpPath>,
    /// The container's port (default: its first published internal port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortNumber>,
    /// How often (default 10s, 1s to 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Wait>,
    /// How many failures in a row restart it (default 3, 1 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
}

impl HealthCheck {
    /// The check as a probe.
    pub fn probe(&self) -> ReadyProbe {
        ReadyProbe {
            http: self.http.clone(),
            port: self.port,
            timeout: None,
        }
    }

    /// How often it runs.
    pub fn interval(&self) -> Duration {
        self.interval.map_or(DEFAULT_INTERVAL, |w| w.0)
    }

    /// How many failures in a row restart the container.
    pub fn failures(&self) -> u32 {
        self.failures.unwrap_or(DEFAULT_FAILURES)
    }

    /// The check as stored in a spec: its port named, its numbers checked.
    pub fn resolve(
        mut self,
        published: impl IntoIterator<Item = PortNumber>,
    ) -> Result<HealthCheck, InvalidProbe> {
        self.port = self.probe().resolve(published)?.port;
        let interval = self.interval();
        if interval < Duration::from_secs(1) || interval > Duration::from_secs(3600) {
            return Err(InvalidProbe::Interval(Wait(interval)));
        }
        if !(1..=100).contains(&self.failures()) {
            return Err(InvalidProbe::Failures(self.failures()));
        }
        Ok(self)
    }
}

/// What `health/<id>` holds once a container has failed a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    /// Whether its last check passed.
    pub passing: bool,
    /// Failed checks in a row now (0 while passing).
    pub failures: u32,
    /// Why the last failed check failed.
    pub last_failure: String,
    /// When, in seconds since the epoch.
    pub last_failure_at: u64,
    /// How many times failed checks restarted it.
    #[serde(default)]
    pub restarts: u32,
}

impl HealthState {
    /// The state of `id`: `None` when it never failed a check (or has none).
    pub fn load(paths: &Paths, id: &ContainerId) -> Option<HealthState> {
        let text = std::fs::read(paths.health_file(id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn store(&self, paths: &Paths, id: &ContainerId) -> anyhow::Result<()> {
        let path = paths.health_file(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        atomic_file::write(&path, &serde_json::to_vec(self)?, 0o644)
    }
}

/// Where each checked container stands.
#[derive(Debug, Default)]
struct Standing {
    next: Option<Instant>,
    /// What `health/<id>` says (loaded at the first check).
    state: Option<HealthState>,
    loaded: bool,
}

/// The checks' memory between rounds.
#[derive(Debug, Default)]
pub struct Checker {
    standing: HashMap<ContainerId, Standing>,
    /// The specs a round looks at, read again only when they change.
    specs: super::spec::cache::SpecCache,
}

/// What a round found a container in need of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The container.
    pub id: ContainerId,
    /// Whether its restart policy lets it be restarted.
    pub restart: bool,
}

impl Checker {
    /// Checks every running container whose check is due at `now`; returns those that
    /// reached their failures in a row (the caller restarts them).
    pub async fn round<P: Parts>(
        &mut self,
        host: &Host<P>,
        now: Instant,
    ) -> anyhow::Result<Vec<Failing>> {
        let mut failing = Vec::new();
        let mut seen = Vec::new();
        let installed = host.installed.get(&host.paths)?;
        self.specs.retain(|id| installed.binary_search(id).is_ok());
        for id in installed.iter() {
            let Some(spec) = self.specs.get(&host.paths, id).ok() else {
                continue;
            };
            let Some(check) = spec.health.clone() else {
                continue;
            };
            seen.push(id.clone());
            let standing = self.standing.entry(id.clone()).or_default();
            if standing.next.is_some_and(|t| t > now) {
                continue;
            }
            standing.next = Some(now + check.interval());
            if !standing.loaded {
                standing.state = HealthState::load(&host.paths, id);
                standing.loaded = true;
            }
            // Only a started container is checked: not one stopped, idle, frozen, or
            // still starting (its readiness probe has not passed).
            let active = host
                .systemd
                .unit_state(&id.unit_name())
                .await
                .is_ok_and(|u| u.active_state == "active");
            let info = match active {
                true => host.docker.inspect(&docker_name(id)).await.ok().flatten(),
                false => None,
            };
            let Some(ip) = info.filter(|c| c.running && !c.paused).and_then(|c| c.ip) else {
                continue;
            };
            let result = probe::check(ip, &check.probe()).await;
            let state = &mut standing.state;
            match (result, state.as_mut()) {
                // Passing, as before: nothing is written.
                (Ok(()), None) => {}
                (Ok(()), Some(s)) if s.passing => {}
                (Ok(()), Some(s)) => {
                    s.passing = true;
                    s.failures = 0;
                    s.store(&host.paths, id)?;
                }
                (Err(reason), _) => {
                    let s = state.get_or_insert_with(|| HealthState {
                        passing: true,
                        failures: 0,
                        last_failure: String::new(),
                        last_failure_at: 0,
                        restarts: 0,
                    });
                    if s.passing {
                        log::warn!("{id}: health check failed: {reason}");
                    }
                    s.passing = false;
                    s.failures += 1;
                    s.last_failure = reason.clone();
                    s.last_failure_at = epoch_secs();
                    let restart = spec.restart != RestartPolicy::No;
                    let done = s.failures >= check.failures();
                    if done {
                        log::warn!(
                            "{id}: {} health checks failed in a row ({reason}); {}",
                            s.failures,
                            match restart {
                                true => "restarting it",
                                false => "not restarted: its restart policy is no",
                            }
                        );
                        s.failures = 0;
                        s.restarts += u32::from(restart);
                    }
                    s.store(&host.paths, id)?;
                    if done {
                        failing.push(Failing {
                            id: id.clone(),
                            restart,
                        });
                    }
                }
            }
        }
        self.standing.retain(|id, _| seen.contains(id));
        Ok(failing)
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
