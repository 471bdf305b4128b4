//! The steps a container's unit runs around `docker run`, as `gear-step STEP ID`
//! ([`unit::render`](super::unit::render) writes them into `ctr-<id>.service`).
//!
//! Each one is a few calls to the Engine API from one small process: a `docker` client
//! process costs ~20-30 ms to start, and a unit used to run up to four of them (and one
//! every 20 ms while waiting for the container to run). A stop needs no step: systemd's
//! SIGTERM reaches `docker run`, which passes it on to the container.
//!
//! - [`prepare`] (in `ExecStart`, `gear-step run`, before it becomes `docker run`; or
//!   `ExecStartPre` in units written before): removes a container left by a crash, then
//!   marks that one may exist from now on;
//! - [`started`] (`ExecStartPost`): returns once the container runs, so the unit is
//!   `active` only then, and fails at once if `docker run` ends first; then applies the
//!   container's links, if it has any; then, if it has a readiness probe, waits until the
//!   probe passes (failing the start at its timeout);
//! - [`remove`] (`ExecStopPost`): removes the container whatever stopped the unit (so a
//!   killed `docker run` leaves no orphan), then its marker; when `docker run` ended by
//!   itself ([`MainEnd`]), `--rm` already removed it, and only the marker goes.

use std::path::Path;

use anyhow::Context as _;

use super::spec::ContainerSpec;
use super::unit::docker_name;
use super::{linker, probe};
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::netfilter::Firewall;
use crate::paths::Paths;

/// Before `docker run`: if the marker says a container of this name may still exist (its last
/// stop did not finish: a host crash, a killed unit), removes it, so `docker run` never
/// fails on a name conflict. Then sets the marker for this run. A normal start costs no
/// Engine call.
///
/// `run`, the unit's main process when it is `gear-step run` (which prepares and then
/// becomes `docker run`): written into the marker once done, for [`wait_prepared`].
pub async fn prepare(
    paths: &Paths,
    docker: &impl Docker,
    id: &ContainerId,
    run: Option<u32>,
) -> anyhow::Result<()> {
    let marker = paths.started_marker(id);
    if marker.exists() {
        docker.remove_container(&docker_name(id)).await?;
    }
    let stamp = run.map(prepared_stamp).unwrap_or_default();
    create_marker(&marker, stamp.as_bytes())
}

/// What the marker says once `gear-step run` with process id `main` has prepared: the
/// boot's id too, so a marker a crash left can never pass for this boot's.
fn prepared_stamp(main: u32) -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    format!("{} {main}\n", boot.trim())
}

/// `ExecStartPost` starts as soon as the main process is forked, while `gear-step run` may
/// still be removing a leftover container (whose end must not pass for the new one's):
/// this waits until the marker says that `main` has prepared, or `main_alive()` says it
/// ended. Usually it already has.
pub async fn wait_prepared(
    paths: &Paths,
    id: &ContainerId,
    main: u32,
    main_alive: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let marker = paths.started_marker(id);
    let done = prepared_stamp(main);
    while std::fs::read_to_string(&marker).map_or(true, |text| text != done) {
        anyhow::ensure!(main_alive(), "the start of {id} ended while preparing");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    Ok(())
}

/// `ExecStartPost`: waits until the container runs, giving up when `main_alive()` says
/// `docker run` (the unit's main process) has ended; then applies its links; then waits
/// until its readiness probe, if it has one, passes.
pub async fn started(
    paths: &Paths,
    docker: &impl Docker,
    fw: &impl Firewall,
    id: &ContainerId,
    main_alive: impl Fn() -> bool + Send + Clone,
) -> anyhow::Result<()> {
    let name = docker_name(id);
    docker.wait_running(&name, main_alive.clone()).await?;
    linker::apply_at_start(paths, docker, fw, id).await?;
    let Some(probe) = ContainerSpec::load(paths, id)?.ready else {
        return Ok(());
    };
    let ip = docker
        .inspect(&name)
        .await?
        .and_then(|c| c.ip)
        .with_context(|| format!("{name} has no address on Docker's bridge to probe"))?;
    let not_ready = paths.not_ready(id);
    match probe::wait_ready(ip, &probe, main_alive).await {
        Ok(took) => {
            log::info!("ready after {} ms ({probe})", took.as_millis());
            crate::atomic_file::remove(&not_ready)
        }
        Err(reason) => {
            // For the agent, which tells the client why its update was rolled back.
            if let Some(dir) = not_ready.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            if let Err(e) = crate::atomic_file::write(&not_ready, reason.as_bytes(), 0o644) {
                log::warn!("recording why {name} is not ready: {e:#}");
            }
            anyhow::bail!("{name} {reason}")
        }
    }
}

/// `ExecStopPost`: removes the container (usually `--rm` already has), then its marker, once
/// the container is known to be gone. When `end` says `docker run` ended by itself, it only
/// returns once `--rm` has removed the container, so the engine is not asked.
///
/// When the engine is down (`engine_up` false: dockerd was killed), nothing is asked of it:
/// connecting to Docker's socket would start Docker, whose start waits for this very stop
/// (its restart stops the container units first), so the stop would hang until its timeout.
/// The marker stays, and the next [`prepare`] removes whatever is left. The same holds when
/// the engine does not answer within [`ENGINE_PATIENCE`].
pub async fn remove(
    paths: &Paths,
    docker: &impl Docker,
    id: &ContainerId,
    engine_up: bool,
    end: MainEnd,
) -> anyhow::Result<()> {
    let marker = paths.started_marker(id);
    if end.container_removed() {
        record_end(paths, id, false)?;
        return remove_marker(&marker);
    }
    if !engine_up {
        log::warn!("Docker is not running; the next start removes what is left of {id}");
        return Ok(());
    }
    // systemd sees only `docker run` exit 137 when the kernel kills the container for
    // memory; Docker's events say which it was, for `gear status`.
    if let Ok(started) = std::fs::metadata(&marker).and_then(|m| m.modified()) {
        let oom = tokio::time::timeout(
            ENGINE_PATIENCE,
            docker.oom_killed_since(&docker_name(id), started),
        )
        .await;
        match oom {
            Ok(Ok(oom)) => record_end(paths, id, oom)?,
            Ok(Err(e)) => log::warn!("reading how {id} ended: {e:#}"),
            Err(_) => log::warn!("Docker did not say in time how {id} ended"),
        }
    }
    match tokio::time::timeout(ENGINE_PATIENCE, docker.remove_container(&docker_name(id))).await {
        Ok(result) => result?,
        Err(_) => {
            log::warn!(
                "Docker did not answer within {ENGINE_PATIENCE:?}; the next start removes what is left of {id}"
            );
            return Ok(());
        }
    }
    remove_marker(&marker)
}

fn remove_marker(marker: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", marker.display()))
        }
        _ => Ok(()),
    }
}

/// The exit status of `docker run` when the error is Docker's own, not the container's;
/// `gear-step run` exits with it too when it fails before it becomes `docker run`.
pub const RUN_FAILED: u8 = 125;

/// How the unit's main process, `docker run --rm`, ended, as systemd tells `ExecStopPost`
/// (`$EXIT_CODE`, `$EXIT_STATUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainEnd {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it, or systemd said nothing (it never started, or an older systemd).
    Unknown,
}

impl MainEnd {
    /// Reads systemd's `$EXIT_CODE` and `$EXIT_STATUS`.
    pub fn from_systemd(code: Option<&str>, status: Option<&str>) -> MainEnd {
        match (code, status.and_then(|s| s.parse().ok())) {
            (Some("exited"), Some(status)) => MainEnd::Exited(status),
            _ => MainEnd::Unknown,
        }
    }

    /// Whether the container is surely gone: `docker run --rm` returns the container's exit
    /// status only after the engine removed it. Not for 125 (Docker's own error, maybe with
    /// a container created), 126 and 127 (the command could not run) or 137 (SIGKILL,
    /// maybe the kernel's for memory, which Docker's events tell), nor for a killed client.
    pub fn container_removed(self) -> bool {
        matches!(self, MainEnd::Exited(s)
            if s != i32::from(RUN_FAILED) && !matches!(s, 126 | 127 | 137))
    }
}

/// Records how the last run of `id` ended: `oom-kill`, or nothing to say.
fn record_end(paths: &Paths, id: &ContainerId, oom: bool) -> anyhow::Result<()> {
    let path = paths.last_end(id);
    if oom {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::atomic_file::write(&path, b"oom-kill\n", 0o644)
    } else {
        crate::atomic_file::remove(&path)
    }
}

/// How the last run of `id` ended, where its stop step recorded it (`oom-kill`).
pub fn last_end(paths: &Paths, id: &ContainerId) -> Option<String> {
    std::fs::read_to_string(paths.last_end(id))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// How long a stop waits for the engine to remove a container before leaving it to the next
/// start.
pub const ENGINE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// `ExecStart`: [`prepare`] has run; this becomes `command` (`docker run ...`) in the same
/// process, which so stays the unit's main process, with systemd none the wiser. Returns only
/// when the exec failed.
pub fn become_command(command: &[std::ffi::OsString]) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let Some((program, args)) = command.split_first() else {
        return anyhow::anyhow!("no command to run");
    };
    let e = std::process::Command::new(program).args(args).exec();
    anyhow::Error::new(e).context(format!("running {}", Path::new(program).display()))
}

/// Whether the engine whose pid file is `pid_file` runs. A missing pid file says nothing (an
/// engine set up otherwise): it counts as running, and [`ENGINE_PATIENCE`] bounds the wait.
pub fn engine_running(pid_file: &Path) -> bool {
    match std::fs::read_to_string(pid_file) {
        Ok(text) => text.trim().parse().is_ok_and(process_alive),
        Err(_) => true,
    }
}

fn create_marker(marker: &Path, text: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(marker, text).with_context(|| format!("creating {}", marker.display()))
}

/// Whether process `pid` still runs (exists and is not a zombie): `/proc/PID/stat`'s state,
/// which follows the command name's closing parenthesis.
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

#[cfg(test)]
mod tests;
