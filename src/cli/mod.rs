//! What the `gear` commands do once their arguments are parsed; the binary only parses
//! flags and calls in here, so the behaviour is testable without a terminal.

pub mod container;
pub mod list;
pub mod table;

use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;

use crate::api::Client;
use crate::locator::HostAddr;

/// Options every remote command shares.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The longest one agent may take to answer one request.
    pub timeout: Duration,
}

impl Remote {
    /// A client for `host` with these options.
    pub fn client(&self, host: &HostAddr) -> Client {
        Client::new(host.clone(), self.timeout)
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
