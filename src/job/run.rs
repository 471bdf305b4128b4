//! Running one job on a [`Host`]: prepare (check, pull, environment), start the unit in a
//! task of its own, and stream JSON lines: the output as it grows, then how it ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{JobEnd, JobFiles, JobRequest, properties, write_env};
use crate::container::host::{Host, Parts};
use crate::container::lifecycle::Error;
use crate::container::logs::LogStream;
use crate::container::volumes::{self, VolumeError, store};
use crate::systemd::{Action, Systemd};

/// How often the agent looks for new output.
const POLL: Duration = Duration::from_millis(100);
/// A line sent after this long without output, so a client that went away is noticed
/// (a write to a closed connection fails) and its job stopped.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// How long systemd may take from the program's exit to the end of `ExecStopPost`.
const STOP_POST_WAIT: Duration = Duration::from_secs(60);

/// One line of the answer of `POST /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobLine {
    /// Output of the job, stdout and stderr as they were written.
    Output {
        /// The text (invalid UTF-8 replaced).
        #[serde(rename = "Output")]
        output: String,
    },
    /// The job ended.
    Ended {
        /// How.
        #[serde(rename = "Ended")]
        ended: JobEnd,
    },
    /// The job could not be run.
    Failed {
        /// Why.
        #[serde(rename = "Message")]
        message: String,
        /// The HTTP status a plain answer would have had.
        #[serde(rename = "Status")]
        status: u16,
    },
    /// Nothing new (sent every second without output).
    Alive {},
}

/// A job ready to start: its unit name, files and mounts.
#[derive(Debug)]
pub struct Prepared {
    /// `gear-job-<n>.service`.
    pub unit: String,
    /// Its files under `/run/gear/jobs`.
    pub files: JobFiles,
    /// (host path, path in the container, read-only).
    pub mounts: Vec<(PathBuf, String, bool)>,
}

impl<P: Parts> Host<P> {
    /// Checks the job's mounts against the host, pulls its image if missing and writes its
    /// environment. Nothing is started yet; on error nothing is left.
    pub async fn prepare_job(&self, req: &JobRequest) -> Result<Prepared, Error> {
        volumes::check_sources(&self.paths, &req.volumes, self.allow_system_mounts)?;
        let mut mounts: Vec<(PathBuf, String, bool)> = req
            .volumes
            .iter()
            .filter_map(|v| {
                let source = v.source.as_ref()?;
                Some((source.as_str().into(), v.target.to_string(), v.read_only))
            })
            .collect();
        if let Some(id) = &req.volumes_from {
            let owned = store::owned_dirs(&self.paths, id)?;
            if owned.is_empty() {
                return Err(VolumeError::NoneOwned(id.to_string()).into());
            }
            for (target, dir) in owned {
                if mounts.iter().any(|(_, t, _)| *t == target.as_str()) {
                    return Err(VolumeError::Duplicate(target.to_string()).into());
                }
                mounts.push((dir, target.to_string(), false));
            }
        }
        self.pull_if_missing(&req.image, None).await?;
        let unit = format!("gear-job-{}.service", unique());
        let files = JobFiles::of(&self.paths, &unit);
        create_private_dir(&self.paths.jobs_dir())?;
        write_env(&files, req.environment.as_ref())?;
        Ok(Prepared {
            unit,
            files,
            mounts,
        })
    }
}

/// A name no other job on this host has had since boot: the time in µs and a counter.
fn unique() -> String {
    use std::sync::atomic::AtomicU32;
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{micros:x}{:x}",
        COUNT.fetch_add(1, Ordering::Relaxed) % 4096
    )
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Starts the prepared job in its own task and answers with [`JobLine`]s. If the answer is
/// dropped before the end (the client went away), the job is stopped; either way its
/// files are removed.
pub fn start<P: Parts>(host: Arc<Host<P>>, req: JobRequest, job: Prepared) -> LogStream {
    let props = properties(&req, &job.unit, &job.mounts, &job.files);
    let runner = {
        let host = host.clone();
        let (unit, exit) = (job.unit.clone(), job.files.exit.clone());
        tokio::spawn(async move {
            let started = host.systemd.start_transient(&unit, &props).await;
            // The start job ends with the program; ExecStopPost then removes the container
            // and writes the exit file.
            let deadline = tokio::time::Instant::now() + STOP_POST_WAIT;
            loop {
                if let Ok(line) = std::fs::read_to_string(&exit)
                    && let Some(end) = JobEnd::parse(&line)
                {
                    return Ok(end);
                }
                if let Err(e) = &started {
                    return Err(format!("{e:#}"));
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(format!(
                        "{unit} ended without saying how (no {})",
                        exit.display()
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        })
    };
    let guard = StopOnDrop {
        host,
        unit: job.unit,
        files: job.files.clone(),
        done: Arc::new(AtomicBool::new(false)),
    };
    let state = State {
        files: job.files,
        offset: 0,
        pending: Vec::new(),
        runner: Some(runner),
        end: None,
        quiet: Duration::ZERO,
        guard,
    };
    Box::pin(futures_util::stream::unfold(state, next_line))
}

struct State<P: Parts> {
    files: JobFiles,
    offset: u64,
    /// Bytes of an incomplete UTF-8 character at the end of the last read.
    pending: Vec<u8>,
    runner: Option<tokio::task::JoinHandle<Result<JobEnd, String>>>,
    /// The last line, once the job is over and its output sent.
    end: Option<JobLine>,
    quiet: Duration,
    guard: StopOnDrop<P>,
}

fn line(l: &JobLine) -> std::io::Result<Bytes> {
    let text = serde_json::to_string(l).map_err(std::io::Error::other)?;
    Ok(Bytes::from(text + "\n"))
}

async fn next_line<P: Parts>(mut s: State<P>) -> Option<(std::io::Result<Bytes>, State<P>)> {
    loop {
        if let Some(end) = s.end.take() {
            s.guard.done.store(true, Ordering::SeqCst);
            s.files.remove();
            // The stream ends after this line: `runner` is gone, `end` taken.
            return Some((line(&end), s));
        }
        let runner = s.runner.as_mut()?;
        let finished = runner.is_finished();
        let new = read_from(&s.files.out, &mut s.offset);
        if !new.is_empty() {
            s.pending.extend_from_slice(&new);
            let valid = match std::str::from_utf8(&s.pending) {
                Ok(_) => s.pending.len(),
                Err(e) if e.error_len().is_none() && !finished => e.valid_up_to(),
                Err(_) => s.pending.len(),
            };
            let text: Vec<u8> = s.pending.drain(..valid).collect();
            if !text.is_empty() {
                s.quiet = Duration::ZERO;
                let output = String::from_utf8_lossy(&text).into_owned();
                return Some((line(&JobLine::Output { output }), s));
            }
        }
        if finished {
            let runner = s.runner.take()?;
            s.end = Some(match runner.await {
                Ok(Ok(ended)) => JobLine::Ended { ended },
                Ok(Err(message)) => JobLine::Failed {
                    message,
                    status: 500,
                },
                Err(e) => JobLine::Failed {
                    message: format!("the job task failed: {e}"),
                    status: 500,
                },
            });
            continue;
        }
        tokio::time::sleep(POLL).await;
        s.quiet += POLL;
        if s.quiet >= KEEPALIVE {
            s.quiet = Duration::ZERO;
            return Some((line(&JobLine::Alive {}), s));
        }
    }
}

/// The bytes of `path` after `offset` (none if it does not exist yet), moving `offset`: what
/// a log followed as it grows gained since the last look (a job's output, a build's log).
pub(crate) fn read_from(path: &std::path::Path, offset: &mut u64) -> Vec<u8> {
    use std::io::{Read as _, Seek as _};
    let Ok(mut f) = std::fs::File::open(path) else {
        return vec![];
    };
    let mut buf = Vec::new();
    if f.seek(std::io::SeekFrom::Start(*offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
        *offset += buf.len() as u64;
    }
    buf
}

/// Stops the job's unit and removes its files if the answer ends early.
struct StopOnDrop<P: Parts> {
    host: Arc<Host<P>>,
    unit: String,
    files: JobFiles,
    done: Arc<AtomicBool>,
}

impl<P: Parts> Drop for StopOnDrop<P> {
    fn drop(&mut self) {
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        let (host, unit, files) = (self.host.clone(), self.unit.clone(), self.files.clone());
        log::info!("the client of {unit} went away: stopping it");
        tokio::spawn(async move {
            // Stopping runs ExecStopPost, which removes the Docker container.
            if let Err(e) = host.systemd.run_job(Action::Stop, &unit).await {
                log::warn!("stopping {unit}: {e:#}");
            }
            files.remove();
        });
    }
}
