//! The agent's side of a build: start its unit (refused while the tag's unit runs), stream
//! its log as JSON lines until it ends, list builds.
//!
//! The answer only watches: the build is its own unit, so a client that goes away, or an
//! agent that exits, leaves it running; `gear build-logs --follow` picks it up again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::record::{self, BuildId, BuildRecord, BuildResult, log_file};
use super::{BuildRequest, InvalidBuild, unit};
use crate::container::host::{Host, Parts};
use crate::container::logs::LogStream;
use crate::systemd::{JobResult, Systemd};

/// How often the answer looks for new output.
const POLL: Duration = Duration::from_millis(100);
/// A line sent after this long without output, so clients and proxies see it is alive.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// How long the answer waits for systemd to unload an ended build's unit, so that the
/// client's next build of the tag is not refused.
const UNLOAD_WAIT: Duration = Duration::from_secs(10);

/// Why a build could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The request is not acceptable (`400`).
    #[error(transparent)]
    Invalid(#[from] InvalidBuild),
    /// A build of the same tag runs (`409`).
    #[error("a build of {0} is running ({1}); wait for it, or follow it with gear build-logs")]
    Running(String, String),
    /// There is no such build (`404`).
    #[error("no build {0}")]
    NoBuild(String),
    /// There is no such repository (`404`).
    #[error("no repository {0}")]
    NoRepository(String),
    /// systemd or the disk failed (`500`).
    #[error("{0:#}")]
    Host(#[from] anyhow::Error),
}

/// What `GET /builds` and the end of a build's answer say of one build (the request's
/// environment is left out: it may hold secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildInfo {
    /// Its number (`gear build-logs HOST ID`).
    pub id: BuildId,
    /// The image it makes.
    pub tag: String,
    /// Its source.
    pub source: String,
    /// Its git ref, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// The builder image.
    pub builder: String,
    /// Its unit.
    pub unit: String,
    /// `running`, `success` or `failed`.
    pub result: BuildResult,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The image id it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `s2i` or `dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// It restored the previous image's artifacts.
    #[serde(default)]
    pub incremental: bool,
}

impl From<&BuildRecord> for BuildInfo {
    fn from(r: &BuildRecord) -> BuildInfo {
        BuildInfo {
            id: r.id.clone(),
            tag: r.request.tag.to_string(),
            source: r.request.source.to_string(),
            r#ref: r.request.r#ref.as_ref().map(ToString::to_string),
            builder: r.request.base_image.to_string(),
            unit: r.unit.clone(),
            result: r.result,
            reason: r.reason.clone(),
            image: r.image.clone(),
            started_ms: r.started_ms,
            duration_ms: r.duration_ms,
            strategy: r.strategy.clone(),
            incremental: r.incremental,
        }
    }
}

/// `GET /builds`: `{"Builds": [...]}`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Builds {
    /// The builds the host keeps a record of.
    pub builds: Vec<BuildInfo>,
}

/// One line of a build's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BuildLine {
    /// First: which build this is.
    Started {
        /// Its number and unit.
        #[serde(rename = "Started")]
        started: Started,
    },
    /// Output of the build, as it was written.
    Output {
        /// The text (invalid UTF-8 replaced).
        #[serde(rename = "Output")]
        output: String,
    },
    /// Last: how it ended.
    Ended {
        /// The build.
        #[serde(rename = "Ended")]
        ended: BuildInfo,
    },
    /// Nothing new (sent every second without output).
    Alive {},
}

/// The build an answer is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Started {
    /// Its number.
    pub id: BuildId,
    /// Its unit.
    pub unit: String,
}

fn is_running(active_state: &str) -> bool {
    matches!(
        active_state,
        "active" | "activating" | "deactivating" | "reloading"
    )
}

impl<P: Parts> Host<P> {
    /// Starts a build of `req` in its unit and returns its record; refused while a build
    /// of the same tag runs.
    pub async fn start_build(&self, req: BuildRequest) -> Result<BuildRecord, BuildError> {
        req.check()?;
        let unit_name = req.tag.unit_name();
        if let Some(state) = self.systemd.loaded_state(&unit_name).await?
            && is_running(&state.active_state)
        {
            return Err(BuildError::Running(req.tag.to_string(), unit_name));
        }
        let rec = BuildRecord::start(req);
        rec.save(&self.paths)?;
        let log = log_file(&self.paths, &rec.id);
        std::fs::write(&log, b"")
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", log.display()))?;
        if let Err(e) = record::prune(&self.paths, record::KEEP) {
            log::warn!("pruning old builds: {e:#}");
        }
        let props = unit::properties(&rec, &self.paths, unit::BUILDER);
        match self.systemd.start_transient(&unit_name, &props).await {
            Ok(JobResult::Done) => Ok(rec),
            Ok(JobResult::Other(result)) => {
                // The builder never ran (its stop step may have recorded why already).
                let mut now = BuildRecord::load(&self.paths, &rec.id).unwrap_or(rec);
                if now.result == BuildResult::Running {
                    now.end(
                        BuildResult::Failed,
                        Some(format!("systemd could not start {unit_name} ({result})")),
                    );
                    now.save(&self.paths)?;
                }
                Ok(now)
            }
            Err(e) => {
                let _ = std::fs::remove_file(record::record_file(&self.paths, &rec.id));
                let _ = std::fs::remove_file(&log);
                // The unit appeared between the check and the start: another build won.
                if format!("{e:#}").contains("UnitExists") {
                    return Err(BuildError::Running(rec.request.tag.to_string(), unit_name));
                }
                Err(BuildError::Host(e))
            }
        }
    }

    /// The builds recorded on this host, newest first; a build whose unit is gone
    /// without a result (the host went down during it) shows as failed.
    pub async fn builds(&self) -> Result<Builds, BuildError> {
        let mut builds = Vec::new();
        for rec in record::list(&self.paths)? {
            let mut info = BuildInfo::from(&rec);
            if rec.result == BuildResult::Running && !self.unit_runs(&rec.unit).await {
                info.result = BuildResult::Failed;
                info.reason = Some("interrupted: its unit is gone".into());
            }
            builds.push(info);
        }
        Ok(Builds { builds })
    }

    /// The record of build `id`.
    pub fn build_record(&self, id: &BuildId) -> Result<BuildRecord, BuildError> {
        if !record::record_file(&self.paths, id).exists() {
            return Err(BuildError::NoBuild(id.to_string()));
        }
        Ok(BuildRecord::load(&self.paths, id)?)
    }

    async fn unit_runs(&self, unit: &str) -> bool {
        match self.systemd.loaded_state(unit).await {
            Ok(Some(state)) => is_running(&state.active_state),
            Ok(None) => false,
            // Unknown: say it runs rather than call it interrupted.
            Err(_) => true,
        }
    }
}

fn line(l: &BuildLine) -> std::io::Result<Bytes> {
    let text = serde_json::to_string(l).map_err(std::io::Error::other)?;
    Ok(Bytes::from(text + "\n"))
}

struct Follow<P: Parts> {
    host: Arc<Host<P>>,
    id: BuildId,
    unit: String,
    offset: u64,
    pending: Vec<u8>,
    quiet: Duration,
    first: Option<BuildLine>,
    /// Set once the build is over: the last line is sent after the rest of the log.
    ended: Option<BuildInfo>,
    done: bool,
}

/// The answer that follows build `rec`: its number, its log as it grows, then how it
/// ended. Dropping it stops nothing.
pub fn follow<P: Parts>(host: Arc<Host<P>>, rec: &BuildRecord) -> LogStream {
    let state = Follow {
        host,
        id: rec.id.clone(),
        unit: rec.unit.clone(),
        offset: 0,
        pending: Vec::new(),
        quiet: Duration::ZERO,
        first: Some(BuildLine::Started {
            started: Started {
                id: rec.id.clone(),
                unit: rec.unit.clone(),
            },
        }),
        ended: None,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, next_line))
}

async fn next_line<P: Parts>(mut s: Follow<P>) -> Option<(std::io::Result<Bytes>, Follow<P>)> {
    if let Some(first) = s.first.take() {
        return Some((line(&first), s));
    }
    loop {
        if s.done {
            return None;
        }
        let new = crate::job::run::read_from(&log_file(&s.host.paths, &s.id), &mut s.offset);
        if !new.is_empty() {
            s.pending.extend_from_slice(&new);
        }
        let valid = match std::str::from_utf8(&s.pending) {
            Ok(_) => s.pending.len(),
            Err(e) if e.error_len().is_none() && s.ended.is_none() => e.valid_up_to(),
            Err(_) => s.pending.len(),
        };
        if valid > 0 {
            let text: Vec<u8> = s.pending.drain(..valid).collect();
            s.quiet = Duration::ZERO;
            let output = String::from_utf8_lossy(&text).into_owned();
            return Some((line(&BuildLine::Output { output }), s));
        }
        if let Some(ended) = s.ended.take() {
            s.done = true;
            return Some((line(&BuildLine::Ended { ended }), s));
        }
        if let Some(info) = ended(&s).await {
            // One more read of the log, then the end.
            s.ended = Some(info);
            continue;
        }
        tokio::time::sleep(POLL).await;
        s.quiet += POLL;
        if s.quiet >= KEEPALIVE {
            s.quiet = Duration::ZERO;
            return Some((line(&BuildLine::Alive {}), s));
        }
    }
}

/// The build's end, once its record has a result and its unit is unloaded; a unit gone
/// without a result is recorded as failed.
async fn ended<P: Parts>(s: &Follow<P>) -> Option<BuildInfo> {
    let paths = &s.host.paths;
    let rec = BuildRecord::load(paths, &s.id).ok()?;
    // While the record says it runs, ask systemd only about once a second.
    if rec.result == BuildResult::Running && !s.quiet.is_zero() && s.quiet < KEEPALIVE - POLL {
        return None;
    }
    let loaded = s.host.systemd.loaded_state(&s.unit).await.ok()?;
    let unit_gone = loaded
        .as_ref()
        .is_none_or(|st| !is_running(&st.active_state));
    match rec.result {
        BuildResult::Running if unit_gone => {
            // The stop step writes the result after the main process: read once more.
            tokio::time::sleep(POLL).await;
            let mut rec = BuildRecord::load(paths, &s.id).ok()?;
            if rec.result == BuildResult::Running {
                rec.end(
                    BuildResult::Failed,
                    Some(format!("{} ended without a result", s.unit)),
                );
                let _ = rec.save(paths);
            }
            Some(BuildInfo::from(&rec))
        }
        BuildResult::Running => None,
        _ => {
            // Wait (a little) until systemd unloads the unit, so the client can build the
            // tag again at once.
            let deadline = tokio::time::Instant::now() + UNLOAD_WAIT;
            while tokio::time::Instant::now() < deadline
                && matches!(s.host.systemd.loaded_state(&s.unit).await, Ok(Some(_)))
            {
                tokio::time::sleep(POLL).await;
            }
            Some(BuildInfo::from(&rec))
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;
    use crate::container::host::fake_host;
    use crate::docker::fake::FakeDocker;
    use crate::systemd::{Property, UnitInfo};

    fn request() -> BuildRequest {
        BuildRequest::new(
            "/srv/site".parse().unwrap(),
            "gear-test/s2i-web".parse().unwrap(),
            "gear-test/site".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn a_build_starts_its_unit_and_a_second_one_of_the_tag_is_refused_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(fake_host(dir.path(), FakeDocker::default()));
        let rec = host.start_build(request()).await.unwrap();
        assert_eq!(rec.result, BuildResult::Running);
        assert_eq!(BuildRecord::load(&host.paths, &rec.id).unwrap(), rec);
        let started = host.systemd.transient.lock().unwrap().clone();
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].0, "gear-build-gear\\x2dtest-site:latest.service");
        assert!(started[0].1.contains(&Property::Str("Type", "exec".into())));

        host.systemd.units.lock().unwrap().push(UnitInfo {
            name: rec.unit.clone(),
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            job_type: None,
        });
        let again = host.start_build(request()).await.unwrap_err();
        assert!(matches!(again, BuildError::Running(..)), "{again}");
        assert_eq!(
            record::list(&host.paths).unwrap().len(),
            1,
            "no record for it"
        );
        // Another tag builds beside it.
        let mut other = request();
        other.tag = "gear-test/other".parse().unwrap();
        host.start_build(other).await.unwrap();
    }

    #[tokio::test]
    async fn the_answer_streams_the_log_then_the_result_and_a_vanished_unit_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(fake_host(dir.path(), FakeDocker::default()));
        let mut rec = host.start_build(request()).await.unwrap();
        std::fs::write(log_file(&host.paths, &rec.id), "---> Copying\nassembled\n").unwrap();
        rec.image = Some("sha256:new".into());
        rec.end(BuildResult::Success, None);
        rec.save(&host.paths).unwrap();
        let lines: Vec<BuildLine> = follow(host.clone(), &rec)
            .map(|b| serde_json::from_slice(&b.unwrap()).unwrap())
            .collect()
            .await;
        assert!(matches!(&lines[0], BuildLine::Started { started } if started.id == rec.id));
        assert_eq!(
            lines[1],
            BuildLine::Output {
                output: "---> Copying\nassembled\n".into()
            }
        );
        let BuildLine::Ended { ended } = &lines[2] else {
            panic!("{lines:?}")
        };
        assert_eq!(ended.result, BuildResult::Success);
        assert_eq!(ended.image.as_deref(), Some("sha256:new"));

        // A running record whose unit is gone (the host went down) lists as failed.
        let running = host.start_build(request()).await.unwrap();
        let builds = host.builds().await.unwrap().builds;
        let listed = builds.iter().find(|b| b.id == running.id).unwrap();
        assert_eq!(listed.result, BuildResult::Failed);
        assert_eq!(
            listed.reason.as_deref(),
            Some("interrupted: its unit is gone")
        );
    }
}
