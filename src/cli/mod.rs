//! What the `gear` commands do once their arguments are parsed; the binary only parses
//! flags and calls in here, so the behaviour is testable without a terminal.

pub mod build;
pub mod command;
pub mod container;
pub mod deploy;
pub mod images;
pub mod job;
pub mod keys;
pub mod list;
pub mod releases;
pub mod repos;
pub mod status;
pub mod table;
pub mod volumes;

use std::future::Future;

use futures_util::future::join_all;

pub use crate::api::reach::Reach as Remote;
use crate::locator::HostAddr;

/// The token for remote agents: `$GEAR_TOKEN`, else the first line of
/// `~/.config/gear/token`, else none.
pub fn token() -> anyhow::Result<Option<String>> {
    if let Some(t) = std::env::var("GEAR_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(t.trim().to_string()));
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(None);
    };
    let path = std::path::Path::new(&home).join(".config/gear/token");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .next()
            .map(|l| l.trim().to_string())
            .filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

/// Runs `f` for every host at once and returns the results in the order of `hosts`, so
/// that one slow or dead agent delays only its own line.
pub async fn fan_out<T, F, Fut>(hosts: &[HostAddr], f: F) -> Vec<(HostAddr, anyhow::Result<T>)>
where
    F: Fn(HostAddr) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let results = join_all(hosts.iter().cloned().map(&f)).await;
    hosts.iter().cloned().zip(results).collect()
}
