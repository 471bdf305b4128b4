//! Idling as part of the lifecycle: idle a container (stop or freeze it until the first
//! connection), wake it, and what start, stop and delete do to an idle one. `gear-api`
//! (`gear idle`, `gear unidle`) and `gear-idler` (quiet containers, first SYNs) both call
//! these, always under the container's [`Lock`].
//!
//! The order of the steps is what keeps a crash harmless. Idling marks first, then holds,
//! then stops, so a crash leaves an idle container that wakes. Waking wants it at boot,
//! starts it, and only then removes the mark, so a crash leaves either a running container
//! (the idler's next look clears a mark that a running container still has) or an idle one
//! that still wakes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::host::{Host, Parts};
use super::lifecycle::Error;
use super::lock::Lock;
use super::ports::PortPair;
use super::spec::ContainerSpec;
use super::unit::docker_name;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::idle::firewall::sync_one;
use crate::idle::rules::{Kind, Rule};
use crate::idle::{IdleMode, mark, marked, unmark};
use crate::systemd::{Action, Systemd};

/// How a wake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// It was not idle: nothing was done.
    WasAwake,
    /// It runs, and every port asked for accepts connections.
    Ready,
    /// It runs, but a port asked for did not accept connections in time.
    NotReady,
}

/// The rules that hold first SYNs to every published port of `spec`.
pub fn hold_rules(spec: &ContainerSpec) -> Vec<Rule> {
    rules_of(&spec.id, spec.ports.iter().copied(), Kind::Hold)
}

/// The rules that hold first SYNs to every port `spec`'s running container may publish
/// (its retired ones too): a restart's hold ([`super::switch`]).
pub fn hold_rules_of(spec: &ContainerSpec) -> Vec<Rule> {
    rules_of(&spec.id, spec.ports_in_use(), Kind::Hold)
}

/// The rules a running container gets: counting rules on every port it may publish (an
/// updated one still publishes its old ports) when it has an idle policy.
pub fn running_rules(spec: &ContainerSpec) -> Vec<Rule> {
    match spec.idle {
        Some(_) => rules_of(&spec.id, spec.ports_in_use(), Kind::Count),
        None => vec![],
    }
}

fn rules_of(id: &ContainerId, ports: impl Iterator<Item = PortPair>, kind: Kind) -> Vec<Rule> {
    ports
        .map(|p| Rule {
            kind,
            id: id.clone(),
            port: p.external,
        })
        .collect()
}

impl<P: Parts> Host<P> {
    /// `gear idle`: idles `id` now, by `mode`, else its policy's mode, else stopping.
    pub async fn idle(&self, id: &ContainerId, mode: Option<IdleMode>) -> Result<(), Error> {
        let lock = self.lock(id).await?;
        let mode = match mode {
            Some(mode) => mode,
            None => self.spec(id)?.idle.map(|p| p.mode).unwrap_or_default(),
        };
        self.idle_locked(&lock, mode).await
    }

    /// `gear unidle`: wakes `id` now and waits (at most `timeout`) until its published
    /// ports answer.
    pub async fn unidle(&self, id: &ContainerId, timeout: Duration) -> Result<Woken, Error> {
        let lock = self.lock(id).await?;
        let ports = self.spec(id)?.ports;
        let woken = self.wake(&lock, &ports, timeout).await?;
        if woken != Woken::WasAwake {
            self.after_wake(&lock).await?;
        }
        Ok(woken)
    }

    /// Idles the container: marks it, takes it out of the boot target, holds its ports, then
    /// stops (or freezes) it. Idling an idle or stopped container just makes it idle.
    pub async fn idle_locked(&self, lock: &Lock, mode: IdleMode) -> Result<(), Error> {
        let id = lock.id();
        let spec = self.spec(id)?;
        if spec.ports.is_empty() {
            return Err(Error::NotIdleable(id.clone()));
        }
        // Nothing could wake it without the idler.
        self.ensure_idler().await?;
        mark(&self.paths, id, mode)?;
        self.unwant_at_boot(id)?;
        // Held before the stop: a connection that comes while it stops wakes it again.
        sync_one(&self.firewall, id, &hold_rules(&spec)).await?;
        match mode {
            IdleMode::Stop => self.job(Action::Stop, id).await?,
            IdleMode::Freeze => match self.docker.inspect(&docker_name(id)).await? {
                Some(c) if c.running && !c.paused => self.docker.pause(&docker_name(id)).await?,
                _ => {}
            },
        }
        Ok(())
    }

    /// Wakes the container if it is idle: wants it at boot, starts or thaws it, waits until
    /// each of `ports` accepts connections (at most `timeout`), and only then clears its
    /// mark. On failure it is stopped and stays idle, with its SYNs still held. Rules are
    /// left to [`Host::after_wake`], so that the caller can let held packets go first.
    pub async fn wake(
        &self,
        lock: &Lock,
        ports: &[PortPair],
        timeout: Duration,
    ) -> Result<Woken, Error> {
        let id = lock.id();
        if marked(&self.paths, id)?.is_none() {
            return Ok(Woken::WasAwake);
        }
        self.require_installed(id)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let name = docker_name(id);
        let start = async {
            self.want_at_boot(id).await?;
            match self.docker.inspect(&name).await? {
                Some(c) if c.paused => self.docker.unpause(&name).await?,
                _ => {
                    self.systemd.reset_failed(&id.unit_name()).await?;
                    self.job(Action::Start, id).await?;
                }
            }
            Ok::<_, Error>(())
        };
        // A start that hangs (an image pull with no network) must not hold connections for
        // the unit's own 5 minutes.
        let result = match tokio::time::timeout_at(deadline, start).await {
            Ok(Ok(())) => self.ready(&name, ports, deadline).await,
            Ok(Err(e)) => Err(e),
            Err(_) => {
                Err(anyhow::anyhow!("ctr-{id}.service did not start within {timeout:?}").into())
            }
        };
        match result {
            Ok(woken) => {
                unmark(&self.paths, id)?;
                self.release_retired(id)?;
                Ok(woken)
            }
            Err(e) => {
                // Down, and still idle: a start still running would bring it up behind our back.
                if let Err(e) = self.systemd.run_job(Action::Stop, &id.unit_name()).await {
                    log::warn!("stopping ctr-{id}.service after its failed wake: {e:#}");
                }
                self.unwant_at_boot(id)?;
                Err(e)
            }
        }
    }

    /// After a wake: the container's rules become those of a running container.
    pub async fn after_wake(&self, lock: &Lock) -> Result<(), Error> {
        let spec = self.spec(lock.id())?;
        Ok(sync_one(&self.firewall, lock.id(), &running_rules(&spec)).await?)
    }

    /// Before a start or restart: a frozen container is thawed, so that the job finds it
    /// running. Returns how it was idled, if it was.
    pub(crate) async fn thaw_if_frozen(&self, id: &ContainerId) -> Result<Option<IdleMode>, Error> {
        let mode = marked(&self.paths, id)?;
        if mode == Some(IdleMode::Freeze) {
            self.thaw(id).await?;
        }
        Ok(mode)
    }

    /// After a start or restart of an idle container: it is idle no more.
    pub(crate) async fn end_idle(&self, id: &ContainerId) -> Result<(), Error> {
        unmark(&self.paths, id)?;
        let spec = self.spec(id)?;
        if let Err(e) = sync_one(&self.firewall, id, &running_rules(&spec)).await {
            // The mark is gone: the idler's next look puts the rules right.
            log::warn!("changing the idle rules of {id}: {e:#}; gear-idler fixes them later");
        }
        Ok(())
    }

    /// Before a stop or delete: the container is no longer idle and loses every rule, so no
    /// connection wakes it. Costs nothing for a container that never had an idle policy.
    pub(crate) async fn forget_idle(&self, id: &ContainerId) -> Result<(), Error> {
        let had = unmark(&self.paths, id)?;
        // A half-installed or deleted container has no spec; its rules go all the same.
        let policy = ContainerSpec::load(&self.paths, id)
            .ok()
            .and_then(|s| s.idle);
        if had == Some(IdleMode::Freeze) {
            self.thaw(id).await?;
        }
        if had.is_some() || policy.is_some() {
            // A firewall that fails here must not stop a `gear stop`: the mark is gone, so
            // the idler's next look removes whatever is left.
            if let Err(e) = sync_one(&self.firewall, id, &[]).await {
                log::warn!("removing the idle rules of {id}: {e:#}; gear-idler removes them later");
            }
        }
        Ok(())
    }

    /// `docker stop` and `docker start` want a thawed container.
    async fn thaw(&self, id: &ContainerId) -> anyhow::Result<()> {
        if let Some(c) = self.docker.inspect(&docker_name(id)).await?
            && c.paused
        {
            self.docker.unpause(&docker_name(id)).await?;
        }
        Ok(())
    }

    /// Waits until each internal port of `ports` accepts a connection at the container's
    /// bridge address. That, not the published port, is the check that means something:
    /// docker-proxy accepts on the published port before the program in the container
    /// listens.
    pub(super) async fn ready(
        &self,
        name: &str,
        ports: &[PortPair],
        deadline: tokio::time::Instant,
    ) -> Result<Woken, Error> {
        let mut ip: Option<IpAddr> = None;
        for p in ports {
            loop {
                if ip.is_none() {
                    ip = self.docker.inspect(name).await?.and_then(|c| c.ip);
                }
                if let Some(ip) = ip {
                    let addr = SocketAddr::new(ip, p.internal.get());
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let attempt = tokio::time::timeout(
                        left.min(Duration::from_millis(500)),
                        tokio::net::TcpStream::connect(addr),
                    );
                    if let Ok(Ok(_)) = attempt.await {
                        break;
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    log::warn!("{name}: port {} did not accept in time", p.internal);
                    return Ok(Woken::NotReady);
                }
                // Refusals come back at once; a short pause keeps this from spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(Woken::Ready)
    }
}

#[cfg(test)]
mod tests;
