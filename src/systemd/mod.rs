//! The seam between gear and the systemd service manager.
//!
//! [`Systemd`] lists only the calls gear makes. The real implementation ([`dbus::Dbus`])
//! talks to PID 1 over the system bus; unit tests use [`fake::FakeSystemd`].

pub mod activation;
pub mod dbus;
#[cfg(test)]
pub mod fake;
pub mod notify;

use std::future::Future;

/// What `ListUnits` says of one loaded unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    /// Unit name, e.g. `ctr-web-1.service`.
    pub name: String,
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active_state: String,
    /// `running`, `dead`, `exited`, ...
    pub sub_state: String,
    /// The type of a queued job (`start`, `stop`, ...), if any.
    pub job_type: Option<String>,
}

/// The systemd calls gear makes.
pub trait Systemd: Send + Sync + 'static {
    /// Units currently loaded whose names match the glob `pattern`.
    fn list_units(
        &self,
        pattern: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<UnitInfo>>> + Send;
}
