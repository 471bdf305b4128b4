//! One-off jobs (`POST /jobs`, `gear run`): an image run once as a transient systemd unit,
//! `gear-job-<n>.service`, not an installed container.
//!
//! The unit is `Type=oneshot` around `docker run --rm`, so its start job ends when the
//! program does. Its output goes to a file the agent streams as it grows; its
//! `ExecStopPost` removes the Docker container and writes how the program ended
//! (`$EXIT_CODE $EXIT_STATUS $SERVICE_RESULT`, set by systemd). `CollectMode=` unloads the
//! unit even when it failed, and the agent removes the files at the end, so nothing is left
//! behind: not after success, failure, a timeout (systemd's start timeout stops it), nor
//! when the client goes away (the agent stops the unit).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::container::environment::{Environment, EnvironmentBody};
use crate::container::spec::{Cpus, Image, Memory, SliceName};
use crate::container::volumes::{self, Volume, VolumeError};
use crate::docker::DOCKER;
use crate::id::ContainerId;
use crate::paths::Paths;
use crate::serde_str::serde_via_str;
use crate::systemd::Property;

pub mod run;

/// How long a job may run before systemd stops it (`30s`, `10m`, `2h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTimeout(Duration);

impl JobTimeout {
    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for JobTimeout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match crate::duration::parse(s)? {
            d if d.is_zero() => Err(format!("timeout '{s}' must be longer than 0")),
            d => Ok(JobTimeout(d)),
        }
    }
}

impl std::fmt::Display for JobTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}
serde_via_str!(JobTimeout);

/// The body of `POST /jobs`. geard's fields (`Image`, `Command`, `Arguments`, `Name`)
/// plus gear's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobRequest {
    /// The image to run (pulled if the host does not have it).
    pub image: Image,
    /// The program to run instead of the image's entrypoint (geard's `Command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The arguments, after the image (`gear run IMAGE HOST -- ARGS...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentBody>,
    /// Bind mounts of host paths (a job owns no volume).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Mount every owned volume of this container at its path (a backup, a migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<ContainerId>,
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// CPU limit.
    #[serde(default, rename = "CPUs", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// Stop the job after this long (no limit when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<JobTimeout>,
    /// geard's client names its jobs; gear names them itself.
    #[serde(default, rename = "Name", skip_serializing)]
    pub geard_name: Option<String>,
}

impl JobRequest {
    /// A job running `image` with its own command and nothing else.
    pub fn new(image: Image) -> JobRequest {
        JobRequest {
            image,
            command: None,
            arguments: vec![],
            environment: None,
            volumes: vec![],
            volumes_from: None,
            memory: None,
            cpus: None,
            timeout: None,
            geard_name: None,
        }
    }

    /// What can be checked without the host: mounts name a host path, targets differ.
    pub fn check(&self) -> Result<(), VolumeError> {
        if let Some(v) = self.volumes.iter().find(|v| v.source.is_none()) {
            return Err(VolumeError::JobOwned(v.target.to_string()));
        }
        volumes::check(&self.volumes)
    }
}

/// The files of one job under `/run/gear/jobs`.
#[derive(Debug, Clone)]
pub struct JobFiles {
    /// Its environment (`--env-file`).
    pub env: PathBuf,
    /// Its output, stdout and stderr interleaved.
    pub out: PathBuf,
    /// How it ended, written by its `ExecStopPost`.
    pub exit: PathBuf,
}

impl JobFiles {
    /// The files of unit `unit`.
    pub fn of(paths: &Paths, unit: &str) -> JobFiles {
        let dir = paths.jobs_dir();
        JobFiles {
            env: dir.join(format!("{unit}.env")),
            out: dir.join(format!("{unit}.out")),
            exit: dir.join(format!("{unit}.exit")),
        }
    }

    /// Removes them (absent ones are fine).
    pub fn remove(&self) {
        for f in [&self.env, &self.out, &self.exit] {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Removes Docker container `$2` (`docker run --rm` may not have, when the docker client
/// was killed), then writes how the job ended to file `$1`: its presence means the job is
/// over and its container gone. systemd sets the variables for stop-post commands.
const STOP_POST: &str = concat!(
    "/usr/bin/docker rm -f \"$2\" >/dev/null 2>&1; ",
    "echo \"$EXIT_CODE $EXIT_STATUS $SERVICE_RESULT\" > \"$1.tmp\" && mv \"$1.tmp\" \"$1\""
);

/// The properties of job unit `unit` running `req` with these mounts. Pure.
pub fn properties(
    req: &JobRequest,
    unit: &str,
    mounts: &[(PathBuf, String, bool)],
    files: &JobFiles,
) -> Vec<Property> {
    let name = unit.trim_end_matches(".service").to_string();
    let mut argv: Vec<String> = [DOCKER, "run", "--rm", "--init", "--name", &name]
        .into_iter()
        .map(String::from)
        .collect();
    argv.extend(["--label".into(), format!("gear.job={name}")]);
    argv.extend(["--env-file".into(), files.env.display().to_string()]);
    for (source, target, ro) in mounts {
        let mut m = format!("type=bind,source={},target={target}", source.display());
        if *ro {
            m.push_str(",readonly");
        }
        argv.extend(["--mount".into(), m]);
    }
    if let Some(m) = req.memory {
        argv.extend(["--memory".into(), m.bytes().to_string()]);
    }
    if let Some(c) = req.cpus {
        argv.extend(["--cpus".into(), c.to_string()]);
    }
    if let Some(cmd) = &req.command {
        argv.extend(["--entrypoint".into(), cmd.clone()]);
    }
    argv.push(req.image.to_string());
    argv.extend(req.arguments.iter().cloned());
    let out = files.out.display().to_string();
    vec![
        Property::Str(
            "Description",
            format!("gear job: {} {}", req.image, req.arguments.join(" ")),
        ),
        // The start job lasts as long as the program: its end is the job's end.
        Property::Str("Type", "oneshot".into()),
        // Unloaded once it ended, failed or not: nothing is left in systemd.
        Property::Str("CollectMode", "inactive-or-failed".into()),
        Property::Str("Slice", SliceName::default().to_string()),
        // Both streams into one file, appended, so their lines interleave as written.
        Property::Str("StandardOutputFileToAppend", out.clone()),
        Property::Str("StandardErrorFileToAppend", out),
        // For a oneshot service the start timeout is the run time limit.
        Property::U64(
            "TimeoutStartUSec",
            req.timeout
                .map_or(u64::MAX, |t| t.duration().as_micros() as u64),
        ),
        Property::Exec("ExecStart", argv, false),
        Property::Exec(
            "ExecStopPost",
            [
                "/bin/sh",
                "-c",
                STOP_POST,
                "stop-post",
                &files.exit.display().to_string(),
                &name,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            true,
        ),
    ]
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobEnd {
    /// The exit code to report: the program's; 128+N when killed by signal N; 124 when it
    /// was stopped at its timeout.
    pub exit_code: i32,
    /// systemd's result: `success`, `exit-code`, `signal`, `timeout`, ...
    pub result: String,
}

impl JobEnd {
    /// Reads the `ExecStopPost` line `EXIT_CODE EXIT_STATUS SERVICE_RESULT`.
    pub fn parse(line: &str) -> Option<JobEnd> {
        let mut parts = line.split_whitespace();
        let (code, status, result) = (parts.next()?, parts.next()?, parts.next()?);
        let exit_code = match (result, code) {
            ("timeout", _) => 124,
            (_, "exited") => status.parse().ok()?,
            (_, _) => 128 + signal_number(status),
        };
        Some(JobEnd {
            exit_code,
            result: result.to_string(),
        })
    }
}

/// The number of signal `name` as systemd writes it (`TERM`), for the common ones.
fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ABRT" => 6,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "TERM" => 15,
        _ => 0,
    }
}

/// Writes the job's environment file (0600: it may hold secrets).
pub fn write_env(files: &JobFiles, env: Option<&EnvironmentBody>) -> anyhow::Result<()> {
    let env = env
        .cloned()
        .map(Environment::from)
        .unwrap_or_else(Environment::new);
    crate::atomic_file::write(&files.env, env.render().as_bytes(), 0o600)
}

#[cfg(test)]
mod tests;
