//! Restarts and updates that refuse no connection: while the old container drains and the
//! new one comes up, new connections to the published ports wait in gear-idler's SYN hold
//! (the same rules and queue that wake an idle container) instead of meeting a closed port.
//!
//! The steps, all under the container's lock:
//! 1. mark it idle and put hold rules on every port it publishes: from now on a first SYN
//!    waits in the idler's queue, and the idler's wake of it waits for this lock;
//! 2. drain: wait until no connection to the old container is open, at most its
//!    `DrainTimeout` (connections in flight finish; held ones have not reached it). One
//!    that docker-proxy accepted on the host and has not passed on yet counts too;
//! 3. restart the unit: a stop of the old container, a start of the new one, which ends
//!    once its readiness probe passes (or, without a probe, once each published port
//!    accepts at its address);
//! 4. running rules back, mark gone, lock dropped: the idler's waiting wake finds the
//!    container awake and lets every held SYN go, to the new container.
//!
//! A crash in between leaves a running container marked idle, which the idler's next look
//! un-marks (or a stopped one, which the first connection wakes).

use std::collections::BTreeSet;
use std::time::Duration;

use super::host::{Host, Parts};
use super::idling::{Woken, hold_rules_of, running_rules};
use super::lifecycle::{Error, is_up};
use super::lock::Lock;
use super::spec::{ContainerSpec, InstallRequest};
use super::unit::docker_name;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::idle::connections::{SocketTables, open_to};
use crate::idle::firewall::sync_one;
use crate::idle::{IdleMode, mark, marked, unmark};
use crate::systemd::{Action, Systemd};

/// How long a switch lets connections in flight finish when the spec says nothing.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// How long a switch without a readiness probe waits for the new container to accept.
const ACCEPT_WAIT: Duration = Duration::from_secs(20);

/// How long after the hold the drain starts counting: for a SYN that passed just before the
/// hold rules and is not in a socket yet (within the kernel, microseconds).
const SETTLE: Duration = Duration::from_millis(10);

/// How often open connections are counted while draining.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// What a switch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    /// How long new connections were held.
    pub held: Duration,
    /// How long the drain took, and whether connections were still open at its end.
    pub drained: Duration,
    /// Connections still open on the old container when the drain gave up.
    pub cut: usize,
}

impl<P: Parts> Host<P> {
    /// Whether a restart of `id` can be a switch: it runs, is not idle, and publishes ports
    /// a connection could be held on.
    pub(crate) async fn switchable(&self, id: &ContainerId) -> Result<bool, Error> {
        let up = self
            .systemd
            .loaded_state(&id.unit_name())
            .await?
            .is_some_and(|state| is_up(&state));
        if !up || marked(&self.paths, id)?.is_some() {
            return Ok(false);
        }
        Ok(self.spec(id)?.ports_in_use().next().is_some())
    }

    /// Restarts the running container of `lock` onto its current spec without refusing a
    /// connection (see the module's documentation). `sockets` reads its open connections.
    ///
    /// With `undo` (an update: the request that installs the old spec again, not started),
    /// a new container that does not get ready is rolled back to the old one while
    /// connections are still held, and the answer is [`Error::RolledBack`].
    pub async fn switch_locked(
        &self,
        lock: &Lock,
        sockets: &dyn SocketTables,
        undo: Option<InstallRequest>,
    ) -> Result<Switched, Error> {
        let id = lock.id();
        let spec = self.spec(id)?;
        let name = docker_name(id);
        // Without a listening idler a held SYN would go on (--queue-bypass) to a closed port.
        self.ensure_idler().await?;
        mark(&self.paths, id, IdleMode::Stop)?;
        let mut hold = hold_rules_of(&spec);
        hold.extend(running_rules(&spec));
        sync_one(&self.firewall, id, &hold).await?;
        let since = tokio::time::Instant::now();
        let (drained, cut) = self.drain(&name, &spec, sockets).await;
        let mut result = self.restart_ready(id, &spec).await;
        if let (Err(e), Some(undo)) = (&result, undo) {
            // The probe's own words, when that is what failed.
            let reason = match std::fs::read_to_string(self.paths.not_ready(id)) {
                Ok(why) if !why.is_empty() => format!("{e}: {why}"),
                _ => e.to_string(),
            };
            result = self.undo_update(lock, undo, reason).await;
        }
        // Whatever happened, the container is no longer held: its rules are a running
        // container's, and the idler lets held SYNs go once this lock is dropped.
        let held = since.elapsed();
        unmark(&self.paths, id)?;
        let spec = self.spec(id)?;
        if let Err(e) = sync_one(&self.firewall, id, &running_rules(&spec)).await {
            log::warn!("removing the hold of {id}: {e:#}; gear-idler removes it later");
        }
        result?;
        self.release_retired(id)?;
        log::info!(
            "switched {id}: connections held {} ms, drained in {} ms{}",
            held.as_millis(),
            drained.as_millis(),
            match cut {
                0 => String::new(),
                n => format!(", {n} still open were cut"),
            }
        );
        Ok(Switched { held, drained, cut })
    }

    /// Puts the old spec back (`undo`) and starts it, still under the hold; the update's
    /// answer is then [`Error::RolledBack`] with `reason`.
    async fn undo_update(
        &self,
        lock: &Lock,
        undo: InstallRequest,
        reason: String,
    ) -> Result<(), Error> {
        let id = lock.id();
        log::warn!("{id}: the new version failed ({reason}); rolling back to the previous one");
        self.write_install(lock, undo, None).await?;
        let old = self.spec(id)?;
        if let Err(again) = self.restart_ready(id, &old).await {
            return Err(anyhow::anyhow!(
                "the update failed ({reason}), and so did the rollback to the previous version: {again}"
            )
            .into());
        }
        Err(Error::RolledBack {
            id: id.clone(),
            reason,
        })
    }

    /// Restarts the unit; done once the new container is ready: its probe passed (the job
    /// ends only then) or, without one, each published port accepts.
    async fn restart_ready(&self, id: &ContainerId, spec: &ContainerSpec) -> Result<(), Error> {
        self.systemd.reset_failed(&id.unit_name()).await?;
        self.job(Action::Restart, id).await?;
        if spec.ready.is_some() {
            return Ok(());
        }
        let name = docker_name(id);
        if self
            .docker
            .inspect(&name)
            .await?
            .and_then(|c| c.ip)
            .is_none()
        {
            // No address on Docker's bridge to knock at: the held SYNs go once it runs.
            log::warn!("{name} has no bridge address: not waiting for its ports");
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
        match self.ready(&name, &spec.ports, deadline).await? {
            Woken::NotReady => Err(anyhow::anyhow!(
                "{id} did not accept on its published ports within {ACCEPT_WAIT:?}"
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// Waits until no connection to `spec`'s internal ports is open in its container, at
    /// most its drain timeout. Returns how long it took and how many were left.
    async fn drain(
        &self,
        name: &str,
        spec: &ContainerSpec,
        sockets: &dyn SocketTables,
    ) -> (Duration, usize) {
        let since = tokio::time::Instant::now();
        let deadline = since + spec.drain_timeout();
        let ports: BTreeSet<u16> = spec.ports_in_use().map(|p| p.internal.get()).collect();
        // A connection docker-proxy accepted on the host just before the hold reaches the
        // container a moment later; until it does, it is open on the host, on a published
        // port, so it is counted there (a fixed wait for it cost every switch 100 ms).
        let published: BTreeSet<u16> = spec.ports_in_use().map(|p| p.external.get()).collect();
        tokio::time::sleep(SETTLE).await;
        let pid = match self.docker.inspect(name).await {
            Ok(Some(c)) if c.running && c.pid > 0 => c.pid,
            _ => return (since.elapsed(), 0),
        };
        loop {
            let inside = match sockets.tables(pid) {
                Ok(tables) => open_to(&tables, &ports),
                // Gone (it ended by itself): nothing left to drain.
                Err(_) => 0,
            };
            let at_host = sockets
                .tables(std::process::id())
                .map_or(0, |tables| open_to(&tables, &published));
            // A proxied connection shows on both sides once it has reached the container.
            let open = inside.max(at_host);
            if open == 0 || tokio::time::Instant::now() >= deadline {
                return (since.elapsed(), open);
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests;
