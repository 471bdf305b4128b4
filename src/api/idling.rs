//! The agent's side of idling: `gear idle` / `gear unidle`, and what `start`, `stop`,
//! `restart`, `delete` and purge must do to an idle container so that idling never fights
//! the user. Each takes the container's lock, shared with `gear-idler`.

use std::time::Duration;

use super::error::Error;
use crate::container::lifecycle::Host;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::idle::firewall::Iptables;
use crate::idle::ops::{self, Woken};
use crate::idle::{IdleMode, Locked};
use crate::systemd::Systemd;

/// How long `gear unidle` waits for the ports to answer.
const UNIDLE_TIMEOUT: Duration = Duration::from_secs(60);

async fn lock<S: Systemd, D: Docker>(host: &Host<S, D>, id: &ContainerId) -> Result<Locked, Error> {
    Locked::acquire(&host.paths, id).await.map_err(Error::Host)
}

/// Before a start or restart: an idle container stops being idle (and is thawed).
/// Returns the lock, to be held until the start is done.
pub async fn before_start<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
) -> Result<Locked, Error> {
    let lock = lock(host, id).await?;
    ops::clear_for_start(host, &Iptables, &lock).await?;
    Ok(lock)
}

/// Before a stop or delete: stopped means stopped, so no connection may wake it: its idle
/// mark and every rule go. Returns the lock, to be held until the stop is done.
pub async fn before_stop<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
) -> Result<Locked, Error> {
    let lock = lock(host, id).await?;
    ops::forget(host, &Iptables, &lock).await?;
    Ok(lock)
}

/// `gear idle`: idles `id` now, by `mode`, else its policy's mode, else stopping.
pub async fn idle<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
    mode: Option<IdleMode>,
) -> Result<(), Error> {
    let lock = lock(host, id).await?;
    let mode = match mode {
        Some(mode) => mode,
        None => host.spec(id)?.idle.map(|p| p.mode).unwrap_or_default(),
    };
    Ok(ops::idle(host, &Iptables, &lock, mode).await?)
}

/// `gear unidle`: wakes `id` now and waits until its published ports answer.
pub async fn unidle<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
) -> Result<(), Error> {
    let lock = lock(host, id).await?;
    let ports = host.spec(id)?.ports;
    match ops::wake(host, &lock, &ports, UNIDLE_TIMEOUT).await? {
        Woken::WasAwake => Ok(()),
        Woken::Ready | Woken::NotReady => Ok(ops::after_wake(host, &Iptables, &lock).await?),
    }
}
