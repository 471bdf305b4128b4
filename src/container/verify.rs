//! `--verify`: after an update switched to its new container, watch it for a window; should
//! it fail its health checks (as many in a row as its check's `Failures`) or stop running
//! (it exited, or something restarted it) in that time, switch the previous version back
//! in, by the image id it ran, and fail the install saying why.
//!
//! The watch runs the container's own health check (at its interval) from the request,
//! beside gear-idler's; a container without a health check is only watched to keep
//! running. The container's lock is not held while watching (other operations on it go
//! on); it is taken again for the rollback, which is skipped when the spec was changed
//! meanwhile (that change is the operator's newer word).

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::history::same;
use super::host::{Host, Parts};
use super::lifecycle::Error;
use super::probe;
use super::spec::{ContainerSpec, InstallRequest};
use super::unit::docker_name;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::idle::marked;

/// The shortest window.
pub const MIN: Duration = Duration::from_secs(1);
/// The longest window.
pub const MAX: Duration = Duration::from_secs(3600);
/// The window of `--verify` without a value.
pub const DEFAULT: Duration = Duration::from_secs(60);

/// How often the container is looked at between health checks.
const TICK: Duration = Duration::from_millis(500);

impl<P: Parts> Host<P> {
    /// Watches the new container of `id` for `window` (see the module's documentation);
    /// on failure, installs `undo` (the previous version, by its image id) again and
    /// answers [`Error::RolledBack`].
    pub(crate) async fn verify_update(
        &self,
        id: &ContainerId,
        window: Duration,
        undo: InstallRequest,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<(), Error> {
        let spec = self.spec(id)?;
        if let Some(tx) = progress {
            let _ = tx.send(format!("verifying {id} for {}s", window.as_secs()));
        }
        let Err(reason) = self.watch(id, &spec, window).await else {
            log::info!("{id}: the update passed its verification");
            return Ok(());
        };
        let lock = self.lock(id).await?;
        if !same(&self.spec(id)?, &spec) {
            return Err(anyhow::anyhow!(
                "{id} failed its verification ({reason}), but was updated meanwhile: not rolled back"
            )
            .into());
        }
        log::warn!("{id}: the update failed its verification ({reason}); rolling back");
        let undo = InstallRequest {
            started: true,
            verify: None,
            ..undo
        };
        if let Err(e) = self.install_locked(&lock, undo, None).await {
            return Err(anyhow::anyhow!(
                "{id} failed its verification ({reason}), and so did the rollback to the previous version: {e}"
            )
            .into());
        }
        Err(Error::RolledBack {
            id: id.clone(),
            reason: format!("it failed its verification: {reason}"),
        })
    }

    /// `Ok` when the container of `id` keeps running, the same process, and does not
    /// fail its health check as often in a row as it allows, for `window`; else why not.
    async fn watch(
        &self,
        id: &ContainerId,
        spec: &ContainerSpec,
        window: Duration,
    ) -> Result<(), String> {
        let name = docker_name(id);
        let now = tokio::time::Instant::now;
        let deadline = now() + window;
        let mut next_check = now();
        let mut failed = 0;
        let mut first_pid = None;
        loop {
            if marked(&self.paths, id).ok().flatten().is_some() {
                // Idled (or being switched by another request): no longer this watch's.
                log::info!("{id}: idled while verifying; the verification ends here");
                return Ok(());
            }
            let info = match self.docker.inspect(&name).await {
                Ok(Some(info)) if info.running => info,
                Ok(_) => return Err("its container exited".into()),
                Err(e) => return Err(format!("inspecting its container: {e:#}")),
            };
            if *first_pid.get_or_insert(info.pid) != info.pid {
                return Err("its container exited and was started again".into());
            }
            if let (Some(check), Some(ip)) = (&spec.health, info.ip)
                && !info.paused
                && now() >= next_check
            {
                next_check = now() + check.interval();
                match probe::check(ip, &check.probe()).await {
                    Ok(()) => failed = 0,
                    Err(why) => {
                        failed += 1;
                        if failed >= check.failures() {
                            return Err(format!(
                                "{failed} health checks failed in a row, the last: {why}"
                            ));
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(now());
            if left.is_zero() {
                return Ok(());
            }
            let mut wait = left.min(TICK);
            if spec.health.is_some() {
                wait = wait.min(next_check.saturating_duration_since(now()));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests;
