//! The seam between gear and the kernel's firewall: read a table with `iptables-save`,
//! change it with `iptables-restore --noflush` (`ip6tables-save`/`ip6tables-restore` for
//! IPv6: one seam, the [`Family`] is an argument), in the host's network namespace (the
//! idler's rules, both families) or in a container's (its links, IPv4). [`Iptables`] runs the programs, through one spawn
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

/// Which address family a firewall call works on: `iptables` or `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4: `iptables-save`, `iptables-restore`.
    V4,
    /// IPv6: `ip6tables-save`, `ip6tables-restore`.
    V6,
}

impl Family {
    /// Both, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The program that prints a table.
    pub fn save_program(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    /// The program that applies a restore script.
    pub fn restore_program(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The firewall calls gear makes.
pub trait Firewall: Send + Sync + 'static {
    /// Whether the host has `family` at all (a kernel booted with `ipv6.disable=1` has no
    /// IPv6, and no `ip6tables` to call).
    fn has(&self, family: Family) -> bool;

    /// `iptables-save -t TABLE -c` (or `ip6tables-save`) in `ns`.
    fn save(
        &self,
        ns: Namespace,
        family: Family,
        table: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;

    /// `iptables-restore --noflush` (or `ip6tables-restore`) with `script` in `ns`: all of
    /// it applies, or none.
    fn restore(
        &self,
        ns: Namespace,
        family: Family,
        script: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Lets `ns` route packets to 127.0.0.0/8 after DNAT (`route_localnet`), which links
    /// from a loopback address need.
    fn allow_route_localnet(
        &self,
        ns: Namespace,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}
