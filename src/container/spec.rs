//! What a container is installed with: the validated model behind `PUT /container/:id`,
//! stored as `specs/<id>.json` and rendered into its unit.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::environment::EnvironmentBody;
use super::hardening::{self, Relax};
use super::health::HealthCheck;
use super::ports::{PortPair, PortRequest};
use super::probe::{InvalidProbe, ReadyProbe, Wait};

/// The longest drain timeout.
const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(300);
use super::volumes::{self, Volume, VolumeConfig, VolumeError};
use crate::atomic_file;
use crate::id::ContainerId;
use crate::idle::IdlePolicy;
use crate::links::NetworkLink;
use crate::paths::Paths;
use crate::serde_str::serde_via_str;

/// Why a field of an install request is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    /// The image reference is empty or has characters Docker does not allow.
    #[error("image '{0}' is not a valid image reference (letters, digits and . _ - / : @ only)")]
    Image(String),
    /// The slice name is not a plain unit name.
    #[error(
        "slice '{0}' is not a valid slice name (letters, digits, '-' and '_', optionally ending in .slice)"
    )]
    Slice(String),
    /// A memory size is malformed.
    #[error("memory '{0}' is not a size: expected bytes or a number with K, M or G, at least 4M")]
    Memory(String),
    /// A CPU share is malformed.
    #[error("cpus '{0}' is not a CPU count: expected a number like 0.5 or 2, at least 0.01")]
    Cpus(String),
    /// A restart policy is unknown.
    #[error("restart policy '{0}' is unknown: expected no, on-failure or always")]
    Restart(String),
    /// A volume is malformed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// A relaxation of the container defaults is unknown.
    #[error(
        "'{0}' is not something to relax: expected new-privileges, net-raw, pids-limit, privileged-ports"
    )]
    Relax(String),
    /// A host port below 1024 was asked for without relaxing the default.
    #[error(
        "host port {0} is below 1024, where system services listen: to publish it anyway, \
         install with --relax privileged-ports (\"Relax\": [\"privileged-ports\"])"
    )]
    PrivilegedPort(u16),
    /// A geard option this agent does not carry out.
    #[error("{0} is not supported by this agent")]
    Unsupported(&'static str),
    /// A drain timeout is too long.
    #[error("drain timeout {0} is too long: at most 5m")]
    Drain(Wait),
    /// A verify window is out of range.
    #[error("verify window {0} is out of range: 1s to 1h")]
    Verify(Wait),
    /// A readiness probe cannot be used.
    #[error(transparent)]
    Probe(#[from] InvalidProbe),
}

/// A Docker image reference, e.g. `gear-test/httpd:latest` or `registry:5000/a/b@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image(String);

impl Image {
    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Image {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok_char =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@');
        // A leading '-' would be read by docker as an option.
        if s.is_empty() || s.len() > 255 || s.starts_with('-') || !s.chars().all(ok_char) {
            return Err(InvalidField::Image(s.to_string()));
        }
        Ok(Image(s.to_string()))
    }
}
impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(Image);

/// A systemd slice, always with its `.slice` suffix (geard's `container-small` is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceName(String);

impl SliceName {
    /// The unit name, e.g. `container.slice`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SliceName {
    /// The slice's cgroup path: systemd nests `a-b.slice` in `a.slice`, so
    /// `container-small.slice` is `/container.slice/container-small.slice`.
    pub fn cgroup_path(&self) -> String {
        let base = self.0.strip_suffix(".slice").unwrap_or(&self.0);
        let mut path = String::new();
        for (i, _) in base.match_indices('-').chain([(base.len(), "")]) {
            path.push_str(&format!("/{}.slice", &base[..i]));
        }
        path
    }
}

impl Default for SliceName {
    fn default() -> Self {
        SliceName("container.slice".into())
    }
}

impl FromStr for SliceName {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let base = s.strip_suffix(".slice").unwrap_or(s);
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
        // '-' nests a slice in its parent (`a-b.slice` in `a.slice`), so every part between
        // dashes must be a name: no leading, trailing or doubled '-' (systemd.slice(5)).
        if base.is_empty()
            || base.len() > 100
            || base.split('-').any(str::is_empty)
            || !base.chars().all(ok_char)
        {
            return Err(InvalidField::Slice(s.to_string()));
        }
        Ok(SliceName(format!("{base}.slice")))
    }
}
impl fmt::Display for SliceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(SliceName);

/// A memory limit in bytes; written `512M`, `1G`, `65536K` or plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory(u64);

impl Memory {
    /// The limit in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Memory {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidField::Memory(s.to_string());
        let (num, mult) = match s.char_indices().last() {
            Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
            Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
            Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
            _ => (s, 1),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let bytes = n.checked_mul(mult).ok_or_else(bad)?;
        // Docker refuses limits under 6 MB on some versions and 4 MB on all; say so early.
        if bytes < 4 << 20 {
            return Err(bad());
        }
        Ok(Memory(bytes))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b if b % (1 << 30) == 0 => write!(f, "{}G", b >> 30),
            b if b % (1 << 20) == 0 => write!(f, "{}M", b >> 20),
            b if b % (1 << 10) == 0 => write!(f, "{}K", b >> 10),
            b => write!(f, "{b}"),
        }
    }
}
serde_via_str!(Memory);

/// A CPU limit in hundredths of a CPU; written `0.5`, `2`, `1.25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus(u32);

impl FromStr for Cpus {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidField::Cpus(s.to_string());
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty()
            || frac.len() > 2
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let hundredths = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(bad)?;
        if hundredths == 0 || hundredths > 100_000 {
            return Err(bad());
        }
        Ok(Cpus(hundredths))
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 % 100 {
            0 => write!(f, "{}", self.0 / 100),
            r => write!(f, "{}.{:02}", self.0 / 100, r),
        }
    }
}
serde_via_str!(Cpus);

/// What systemd does when the container exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Leave it stopped (the unit shows `failed` if it exited with an error).
    No,
    /// Start it again after an error exit (the default, like most services).
    #[default]
    OnFailure,
    /// Start it again whenever it exits.
    Always,
}

impl RestartPolicy {
    /// The value of systemd's `Restart=`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

impl FromStr for RestartPolicy {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "no" => Ok(RestartPolicy::No),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "always" => Ok(RestartPolicy::Always),
            _ => Err(InvalidField::Restart(s.to_string())),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
serde_via_str!(RestartPolicy);

/// The body of `PUT /container/:id` (geard's field names; unknown fields are refused so a
/// typo is not silently ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InstallRequest {
    /// The image to run.
    pub image: Image,
    /// Start it now, and at every boot.
    #[serde(default)]
    pub started: bool,
    /// Ports to publish; `External` 0 or absent allocates a host port.
    #[serde(default)]
    pub ports: Vec<PortRequest>,
    /// Environment variables (they replace the container's environment file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentBody>,
    /// The slice to run in (default `container.slice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_slice: Option<SliceName>,
    /// Memory limit of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// CPU limit of the container.
    #[serde(default, rename = "CPUs", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// Restart policy (default `on-failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Network links; absent keeps the container's links, a list replaces them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_links: Option<Vec<NetworkLink>>,
    /// Idle it after a while without traffic (`{"After": "5m", "Mode": "stop"}`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdlePolicy>,
    /// Volumes in gear's form (`{"Target": "/data"}`, `{"Source": "/srv", "Target": "/www",
    /// "ReadOnly": true}`); absent keeps the container's volumes, a list replaces them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// geard's form of the volumes (added to `Volumes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_config: Option<Box<VolumeConfig>>,
    /// geard's client repeats the id in the body; as in geard, the path wins.
    #[serde(default, rename = "Id", skip_serializing)]
    pub geard_id: Option<String>,
    /// Run it as its own Unix user `ctr-ID` (created on install, removed on delete), the
    /// login of `ssh ctr-ID@host`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate: bool,
    /// A readiness probe run from the host (`{"Http": "/ready", "Port": 8080, "Timeout":
    /// "30s"}`, or `{"Port": 8080}` for a TCP connect): the container counts as started
    /// only once it answers. Absent: once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyProbe>,
    /// How long a restart or update lets connections in flight on the old container finish
    /// before stopping it (default 10s, at most 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<Wait>,
    /// A health check run from the host while it runs (`{"Http": "/health", "Interval":
    /// "5s", "Failures": 3}`); failures in a row restart it unless `Restart` is `no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// Container defaults to do without (`new-privileges`, `net-raw`, `pids-limit`,
    /// `privileged-ports`); see [`super::hardening`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relax: Vec<Relax>,
    /// The bound on its processes (default [`super::hardening::DEFAULT_PIDS_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<NonZeroU32>,
    /// After an update that switches to the new container: how long to watch it (`"60s"`,
    /// 1s to 1h). Should it fail its health checks (or, without any, stop running) in that
    /// time, the previous version is switched back in and the install fails, saying why.
    /// Not kept in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Wait>,
    /// geard's fields that gear has no use for, or does not support yet: accepted while
    /// they ask for nothing ([`InstallRequest::check`] refuses what they would ask for).
    #[serde(default, skip_serializing)]
    pub simple: bool,
    /// See `simple`.
    #[serde(default, skip_serializing)]
    pub socket_activation: bool,
    /// See `simple` (meaningless without socket activation).
    #[serde(default, skip_serializing)]
    pub skip_socket_proxy: bool,
}

impl InstallRequest {
    /// A request for `image` and nothing else: not started, no ports, every field absent.
    pub fn new(image: Image) -> InstallRequest {
        InstallRequest {
            image,
            started: false,
            ports: vec![],
            environment: None,
            systemd_slice: None,
            memory: None,
            cpus: None,
            restart: None,
            network_links: None,
            idle: None,
            volumes: None,
            volume_config: None,
            geard_id: None,
            isolate: false,
            ready: None,
            drain_timeout: None,
            health: None,
            relax: vec![],
            pids_limit: None,
            verify: None,
            simple: false,
            socket_activation: false,
            skip_socket_proxy: false,
        }
    }

    /// Refuses geard options that this agent cannot carry out, naming each, rather than
    /// ignoring what the client asked for.
    pub fn check(&self) -> Result<(), InvalidField> {
        let unsupported = [
            (
                self.simple && self.ports.is_empty(),
                "Simple without Ports (publish every exposed port): name the ports",
            ),
            (
                self.socket_activation,
                "SocketActivation (use the idle policy, Idle, instead)",
            ),
        ];
        if let Some((_, what)) = unsupported.into_iter().find(|(asked, _)| *asked) {
            return Err(InvalidField::Unsupported(what));
        }
        if let Some(v) = self.all_volumes() {
            volumes::check(&v)?;
        }
        if let Some(probe) = &self.ready {
            probe
                .clone()
                .resolve(self.ports.iter().map(|p| p.internal))?;
        }
        if let Some(check) = &self.health {
            check
                .clone()
                .resolve(self.ports.iter().map(|p| p.internal))?;
        }
        if let Some(w) = self.drain_timeout
            && w.0 > MAX_DRAIN
        {
            return Err(InvalidField::Drain(w));
        }
        if let Some(w) = self.verify
            && !(super::verify::MIN..=super::verify::MAX).contains(&w.0)
        {
            return Err(InvalidField::Verify(w));
        }
        hardening::check_ports(&self.ports, &self.relax)
    }

    /// The volumes asked for, both forms together; `None` when neither form names any
    /// (geard's client sends an empty `VolumeConfig` with every install).
    pub fn all_volumes(&self) -> Option<Vec<Volume>> {
        let geard = self
            .volume_config
            .as_deref()
            .cloned()
            .unwrap_or_default()
            .into_volumes();
        match (&self.volumes, geard.is_empty()) {
            (None, true) => None,
            (own, _) => Some(own.iter().flatten().cloned().chain(geard).collect()),
        }
    }
}

/// An installed container, as stored in `specs/<id>.json` and rendered into its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpec {
    /// The container id.
    pub id: ContainerId,
    /// The image it runs.
    pub image: Image,
    /// Published ports, with their reserved host ports.
    #[serde(default)]
    pub ports: Vec<PortPair>,
    /// Host ports of an earlier install that the running container still publishes: an
    /// update never takes them away from it. They go when it next starts from down,
    /// restarts or stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_ports: Vec<PortPair>,
    /// Its slice.
    #[serde(default)]
    pub slice: SliceName,
    /// Its memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Its CPU limit.
    #[serde(default, rename = "CPUs", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// Its restart policy.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Its network links, applied in its network namespace at every start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<NetworkLink>,
    /// Its idle policy (specs written before idling existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdlePolicy>,
    /// Its volumes: owned ones and bind mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Its own Unix user, when installed with `Isolate`: its processes run as this uid,
    /// and the user is the SSH login into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<crate::accounts::ContainerUser>,
    /// Its readiness probe, with its port named: its start ends once the probe passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyProbe>,
    /// How long a restart or update lets its connections in flight finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<Wait>,
    /// Its health check, with its port named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// The container defaults it does without ([`super::hardening`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relax: Vec<Relax>,
    /// Its bound on processes, when not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<NonZeroU32>,
    /// Its own SELinux MCS level, when the host has SELinux ([`super::mcs`]).
    #[serde(
        default,
        rename = "SELinuxLevel",
        skip_serializing_if = "Option::is_none"
    )]
    pub selinux_level: Option<super::mcs::McsLevel>,
}

impl ContainerSpec {
    /// Every host port the container may be publishing now: its own and the retired ones.
    pub fn ports_in_use(&self) -> impl Iterator<Item = PortPair> + '_ {
        self.ports.iter().chain(&self.retired_ports).copied()
    }

    /// How long a restart or update lets connections in flight finish.
    pub fn drain_timeout(&self) -> std::time::Duration {
        self.drain_timeout
            .map_or(super::switch::DEFAULT_DRAIN, |w| w.0)
    }

    /// Reads the spec of `id` from `specs/<id>.json`.
    pub fn load(paths: &Paths, id: &ContainerId) -> anyhow::Result<ContainerSpec> {
        let path = paths.spec_file(id);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Stores this spec as `specs/<id>.json`, atomically.
    pub fn store(&self, paths: &Paths) -> anyhow::Result<()> {
        atomic_file::write(&paths.spec_file(&self.id), &self.to_json()?, 0o644)
    }

    /// The spec as `specs/<id>.json` holds it.
    pub fn to_json(&self) -> anyhow::Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).context("serialising the spec")
    }
}

pub mod cache;

#[cfg(test)]
mod tests;
