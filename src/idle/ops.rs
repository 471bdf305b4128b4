//! Idling, waking and forgetting one container: the steps both `gear-api` (`gear idle`,
//! `gear unidle`, `gear stop`, ...) and `gear-idler` (quiet containers, first SYNs) take.
//!
//! Every function takes the container's [`Locked`] guard, so the two processes never
//! interleave on one container. The order of the steps is what keeps a crash harmless:
//! idling marks first, then holds, then stops, so a crash leaves an idle container that
//! wakes; waking links the boot mark and clears the idle mark before starting, so a crash
//! leaves a running container.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::firewall::{Firewall, sync_one};
use super::rules::{Kind, Rule};
use super::{IdleMode, Locked, mark, marked, unmark};
use crate::atomic_file;
use crate::container::lifecycle::{self, Host};
use crate::container::ports::PortPair;
use crate::container::spec::ContainerSpec;
use crate::container::unit::docker_name;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::systemd::{Action, Systemd};

/// Why idling or waking failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container publishes no port, so no connection could ever wake it.
    #[error("container {0} publishes no port: nothing could wake it, so it is not idled")]
    NoPorts(ContainerId),
    /// The container, its unit, systemd, Docker or the disk failed.
    #[error(transparent)]
    Container(#[from] lifecycle::Error),
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        Error::Container(lifecycle::Error::Host(e))
    }
}

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
    rules_of(spec, Kind::Hold)
}

/// The rules a running container gets: counting rules when it has an idle policy.
pub fn running_rules(spec: &ContainerSpec) -> Vec<Rule> {
    match spec.idle {
        Some(_) => rules_of(spec, Kind::Count),
        None => vec![],
    }
}

fn rules_of(spec: &ContainerSpec, kind: Kind) -> Vec<Rule> {
    spec.ports
        .iter()
        .map(|p| Rule {
            kind,
            id: spec.id.clone(),
            port: p.external,
        })
        .collect()
}

/// Idles the container: marks it, takes it out of the boot target, holds its ports, then
/// stops (or freezes) it. Idling an idle or stopped container just makes it idle.
pub async fn idle<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    fw: &impl Firewall,
    lock: &Locked,
    mode: IdleMode,
) -> Result<(), Error> {
    let id = lock.id();
    let spec = host.spec(id)?;
    if spec.ports.is_empty() {
        return Err(Error::NoPorts(id.clone()));
    }
    mark(&host.paths, id, mode)?;
    atomic_file::remove(&host.paths.active_wants_dir().join(id.unit_name()))?;
    // Held before the stop: a connection that comes while it stops wakes it again.
    sync_one(fw, id, &hold_rules(&spec)).await?;
    match mode {
        IdleMode::Stop => host.job(Action::Stop, id).await?,
        IdleMode::Freeze => match host.docker.inspect(&docker_name(id)).await? {
            Some(c) if c.running && !c.paused => host.docker.pause(&docker_name(id)).await?,
            _ => {}
        },
    }
    Ok(())
}

/// Wakes the container if it is idle: marks it to run (and start at boot), starts or thaws
/// it, and waits until each of `ports` accepts connections (at most `timeout`). On failure
/// it is idle again, with its SYNs still held. Rules are left to [`after_wake`], so that
/// the caller can let held packets go first.
pub async fn wake<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    lock: &Locked,
    ports: &[PortPair],
    timeout: Duration,
) -> Result<Woken, Error> {
    let id = lock.id();
    let Some(mode) = marked(&host.paths, id)? else {
        return Ok(Woken::WasAwake);
    };
    host.spec(id)?;
    host.link(&host.paths.active_wants_dir(), id)?;
    unmark(&host.paths, id)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let name = docker_name(id);
    let start = async {
        match host.docker.inspect(&name).await? {
            Some(c) if c.paused => host.docker.unpause(&name).await?,
            _ => {
                host.systemd.reset_failed(&id.unit_name()).await?;
                host.job(Action::Start, id).await?;
            }
        }
        Ok::<_, Error>(())
    };
    // A start that hangs (an image pull with no network) must not hold connections for
    // the unit's own 5 minutes.
    let result = match tokio::time::timeout_at(deadline, start).await {
        Ok(Ok(())) => ready(host, &name, ports, deadline).await,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(anyhow::anyhow!("ctr-{id}.service did not start within {timeout:?}").into()),
    };
    if result.is_err() {
        // Idle again, and down: a start still running would bring it up behind our back.
        if let Err(e) = host.systemd.run_job(Action::Stop, &id.unit_name()).await {
            log::warn!("stopping ctr-{id}.service after its failed wake: {e:#}");
        }
        mark(&host.paths, id, mode)?;
        atomic_file::remove(&host.paths.active_wants_dir().join(id.unit_name()))?;
    }
    result
}

/// After a wake: the container's rules become those of a running container.
pub async fn after_wake<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    fw: &impl Firewall,
    lock: &Locked,
) -> Result<(), Error> {
    let spec = host.spec(lock.id())?;
    Ok(sync_one(fw, lock.id(), &running_rules(&spec)).await?)
}

/// Before `gear start` or `restart`: an idle container is no longer idle (a frozen one is
/// thawed, so the start finds it running); its hold rules go.
pub async fn clear_for_start<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    fw: &impl Firewall,
    lock: &Locked,
) -> Result<(), Error> {
    let id = lock.id();
    if let Some(mode) = unmark(&host.paths, id)? {
        thaw(host, id, mode).await?;
        drop_rules(fw, id).await;
    }
    Ok(())
}

/// Before `gear stop` or `delete`: the container is no longer idle and loses every rule, so
/// no connection wakes it. Costs nothing for a container that never had an idle policy.
pub async fn forget<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    fw: &impl Firewall,
    lock: &Locked,
) -> Result<(), Error> {
    let id = lock.id();
    let had = unmark(&host.paths, id)?;
    // A half-installed or deleted container has no spec; its rules go all the same.
    let policy = host.spec(id).ok().and_then(|s| s.idle);
    if let Some(mode) = had {
        thaw(host, id, mode).await?;
    }
    if had.is_some() || policy.is_some() {
        drop_rules(fw, id).await;
    }
    Ok(())
}

/// Removes every rule of `id`. A firewall that fails here must not stop a `gear stop`: the
/// mark is gone, so the idler's next tick removes whatever is left.
async fn drop_rules(fw: &impl Firewall, id: &ContainerId) {
    if let Err(e) = sync_one(fw, id, &[]).await {
        log::warn!("removing the idle rules of {id}: {e:#}; gear-idler removes them later");
    }
}

/// `docker stop` and `docker start` want a thawed container.
async fn thaw<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
    mode: IdleMode,
) -> anyhow::Result<()> {
    if mode == IdleMode::Freeze
        && let Some(c) = host.docker.inspect(&docker_name(id)).await?
        && c.paused
    {
        host.docker.unpause(&docker_name(id)).await?;
    }
    Ok(())
}

/// Waits until each internal port of `ports` accepts a connection at the container's
/// bridge address. That, not the published port, is the check that means something:
/// docker-proxy accepts on the published port before the program in the container listens.
async fn ready<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    name: &str,
    ports: &[PortPair],
    deadline: tokio::time::Instant,
) -> Result<Woken, Error> {
    let mut ip: Option<IpAddr> = None;
    for p in ports {
        loop {
            if ip.is_none() {
                ip = host.docker.inspect(name).await?.and_then(|c| c.ip);
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

#[cfg(test)]
mod tests;
