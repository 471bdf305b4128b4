//! The seam between gear and the systemd service manager.
//!
//! [`Systemd`] lists only the calls gear makes. The real implementation ([`dbus::Dbus`])
//! talks to PID 1 over the system bus; unit tests use [`fake::FakeSystemd`].

pub mod activation;
pub mod dbus;
#[cfg(test)]
pub mod fake;
pub mod notify;
pub mod reconnect;

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

/// What systemd says of one unit, loaded on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, ...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active_state: String,
    /// `running`, `dead`, `start-post`, ...
    pub sub_state: String,
    /// The unit file changed on disk since systemd loaded it.
    pub need_daemon_reload: bool,
}

/// More of what `systemctl status` shows of a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDetails {
    /// When it entered its current state (`StateChangeTimestamp`, µs since the epoch).
    pub since_usec: Option<u64>,
    /// Its main process, while it has one.
    pub main_pid: Option<u32>,
    /// The memory its cgroup uses (`MemoryCurrent`), where accounted.
    pub memory_bytes: Option<u64>,
    /// How it last ended (`Result`: `success`, `exit-code`, `oom-kill`, ...).
    pub result: Option<String>,
}

/// How a job systemd ran for gear ended (`JobRemoved`'s result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// The job did what it was asked.
    Done,
    /// Anything else: `failed`, `timeout`, `dependency`, `canceled`, ... (systemd's word).
    Other(String),
}

/// What a unit is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `StartUnit`.
    Start,
    /// `StopUnit`.
    Stop,
    /// `RestartUnit`.
    Restart,
}

/// One property of a transient unit, as `StartTransientUnit` takes it (systemd's D-Bus
/// names: `Type`, `TimeoutStartUSec`, `ExecStart`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Property {
    /// A string.
    Str(&'static str, String),
    /// A boolean.
    Bool(&'static str, bool),
    /// A number.
    U64(&'static str, u64),
    /// A command line (`ExecStart`, `ExecStopPost`): its argv, and whether a failure is
    /// ignored (the `-` prefix).
    Exec(&'static str, Vec<String>, bool),
}

/// The systemd calls gear makes.
pub trait Systemd: Send + Sync + 'static {
    /// Units currently loaded whose names match the glob `pattern`.
    fn list_units(
        &self,
        pattern: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<UnitInfo>>> + Send;

    /// The state of unit `name`, loading it from disk if systemd has not yet.
    fn unit_state(&self, name: &str) -> impl Future<Output = anyhow::Result<UnitState>> + Send;

    /// Details of service `name` for `gear status`.
    fn unit_details(&self, name: &str) -> impl Future<Output = anyhow::Result<UnitDetails>> + Send;

    /// The state of unit `name` if systemd has it loaded, `None` if not, without loading
    /// it: a unit is read from disk at its first reference anyway, and loading a new one
    /// makes systemd re-read every unit directory, a cost that grows with the units.
    fn loaded_state(
        &self,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<UnitState>>> + Send;

    /// Queues `action` on unit `name` (mode `replace`) and waits until the job ends.
    fn run_job(
        &self,
        action: Action,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<JobResult>> + Send;

    /// Forgets that unit `name` failed, so it shows `inactive` (`ResetFailedUnit`).
    fn reset_failed(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Re-reads every unit file (`daemon-reload`).
    fn reload(&self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Enables unit file `name` as its `[Install]` section says (`EnableUnitFiles`).
    fn enable(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Starts the transient unit `name` with `properties` (mode `fail`, so a unit of that
    /// name is never replaced) and waits until its start job ends: for a `Type=oneshot`
    /// service, until its main process has exited.
    fn start_transient(
        &self,
        name: &str,
        properties: &[Property],
    ) -> impl Future<Output = anyhow::Result<JobResult>> + Send;
}
