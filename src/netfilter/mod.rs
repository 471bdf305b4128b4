//! The seam between gear and the kernel's firewall: read a table with `iptables-save`,
//! change it with `iptables-restore --noflush`, in the host's network namespace (the idler's
//! rules) or in a container's (its links). [`Iptables`] runs the programs, through one spawn
//! helper that always waits for the xtables lock; [`fake::FakeFirewall`] keeps tables in
//! memory for unit tests.
//!
//! `iptables` rather than `nft`: the NFQUEUE target works through iptables' compatibility
//! layer on every kernel gear runs on, while nft's own `queue` statement needs
//! `CONFIG_NFT_QUEUE`, which some kernels lack; and restore scripts apply all or nothing.

#[cfg(test)]
pub mod fake;
mod iptables;

use std::fmt;
use std::future::Future;

pub use iptables::Iptables;

/// Which network namespace a firewall call works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// The host's own (where Docker publishes ports, and the idler holds SYNs).
    Host,
    /// The namespace of this process: a container's main process.
    Of(u32),
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Host => f.write_str("the host's network namespace"),
            Namespace::Of(pid) => write!(f, "the network namespace of process {pid}"),
        }
    }
}

/// The firewall calls gear makes.
pub trait Firewall: Send + Sync + 'static {
    /// `iptables-save -t TABLE -c` in `ns`.
    fn save(
        &self,
        ns: Namespace,
        table: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;

    /// `iptables-restore --noflush` with `script` in `ns`: all of it applies, or none.
    fn restore(
        &self,
        ns: Namespace,
        script: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Lets `ns` route packets to 127.0.0.0/8 after DNAT (`route_localnet`), which links
    /// from a loopback address need.
    fn allow_route_localnet(
        &self,
        ns: Namespace,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}
