//! The record of each build under `/var/lib/containers/builds`: `<n>.json` (the request,
//! then the result) and `<n>.log` (what the build printed).
//!
//! The agent writes the record when it starts the build; `gear-builder` writes the result
//! at its end, or its stop step does when the builder was killed. Records outlive the
//! unit, so `gear builds` and `gear build-logs` show recent builds after they ended (the
//! newest [`KEEP`] are kept).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::BuildRequest;
use crate::paths::Paths;
use crate::serde_str::serde_via_str;

/// How many build records (and logs) a host keeps.
pub const KEEP: usize = 50;

/// A build's number: hexadecimal microseconds since the epoch and a counter, so that
/// numbers sort by start time and never repeat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildId(String);

impl BuildId {
    /// A number no other build on this host has had.
    pub fn new() -> BuildId {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let micros = now_ms() * 1000
            + SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_micros() % 1000));
        let n = COUNT.fetch_add(1, Ordering::Relaxed) % 4096;
        BuildId(format!("{micros:014x}{n:03x}"))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BuildId {
    fn default() -> Self {
        BuildId::new()
    }
}

impl FromStr for BuildId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{s}' is not a build number"));
        }
        Ok(BuildId(s.to_ascii_lowercase()))
    }
}

impl std::fmt::Display for BuildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(BuildId);

/// Where a build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildResult {
    /// Its unit runs.
    Running,
    /// The tag names the new image.
    Success,
    /// It ended without an image; the tag is as it was.
    Failed,
}

/// One build: what was asked, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildRecord {
    /// Its number.
    pub id: BuildId,
    /// What was asked.
    pub request: BuildRequest,
    /// Its unit, `gear-build-<tag>.service`.
    pub unit: String,
    /// When the agent started it, in ms since the epoch.
    pub started_ms: u64,
    /// Where it is.
    pub result: BuildResult,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The id of the image it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How long it took, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `s2i` or `dockerfile`, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Artifacts of the previous image were restored (`save-artifacts`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
}

impl BuildRecord {
    /// A running build of `request`, started now.
    pub fn start(request: BuildRequest) -> BuildRecord {
        BuildRecord {
            id: BuildId::new(),
            unit: request.tag.unit_name(),
            request,
            started_ms: now_ms(),
            result: BuildResult::Running,
            reason: None,
            image: None,
            duration_ms: None,
            strategy: None,
            incremental: false,
        }
    }

    /// The record, ended now with `result` (and `reason` when it failed).
    pub fn end(&mut self, result: BuildResult, reason: Option<String>) {
        self.result = result;
        self.reason = reason;
        self.duration_ms = Some(now_ms().saturating_sub(self.started_ms));
    }

    /// Writes the record (mode 0600: the environment may hold secrets), atomically.
    pub fn save(&self, paths: &Paths) -> anyhow::Result<()> {
        create_dir(paths)?;
        let json = serde_json::to_vec_pretty(self).context("encoding a build record")?;
        crate::atomic_file::write(&record_file(paths, &self.id), &json, 0o600)
    }

    /// Reads the record of build `id`.
    pub fn load(paths: &Paths, id: &BuildId) -> anyhow::Result<BuildRecord> {
        let file = record_file(paths, id);
        let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", file.display()))
    }
}

/// `/var/lib/containers/builds/<n>.json`.
pub fn record_file(paths: &Paths, id: &BuildId) -> PathBuf {
    paths.builds_dir().join(format!("{id}.json"))
}

/// `/var/lib/containers/builds/<n>.log`.
pub fn log_file(paths: &Paths, id: &BuildId) -> PathBuf {
    paths.builds_dir().join(format!("{id}.log"))
}

fn create_dir(paths: &Paths) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = paths.builds_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Every readable record, newest first (an unreadable one is skipped and logged).
pub fn list(paths: &Paths) -> anyhow::Result<Vec<BuildRecord>> {
    let dir = paths.builds_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut ids: Vec<BuildId> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids
        .iter()
        .filter_map(|id| {
            BuildRecord::load(paths, id)
                .map_err(|e| log::warn!("{e:#}"))
                .ok()
        })
        .collect())
}

/// Removes the records and logs of all but the newest `keep` builds.
pub fn prune(paths: &Paths, keep: usize) -> anyhow::Result<()> {
    for old in list(paths)?.into_iter().skip(keep) {
        if old.result == BuildResult::Running {
            continue;
        }
        let _ = std::fs::remove_file(log_file(paths, &old.id));
        let _ = std::fs::remove_file(record_file(paths, &old.id));
    }
    Ok(())
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
