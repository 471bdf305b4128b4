//! Host port reservations: which container publishes which host port.
//!
//! A reservation is a symlink `ports/<external>` whose target text is `<id>:<internal>`. It
//! points at nothing and is only ever read with readlink(2). symlink(2) creates the name
//! atomically and fails with `EEXIST` when it is taken, so two installs (threads or separate
//! processes) can never reserve the same host port. That needs no lock file, and there is no
//! in-memory state to lose on restart; after a crash each entry is either there or not.
//!
//! Unlike geard (`port/reservation.go`), a conflict is an error that undoes only what the
//! failing call created, and release removes only entries that name the releasing container.
//! Calls for one container id are expected to be serialized by the caller (its install lock);
//! calls for different ids may run concurrently from anywhere.

use std::fmt;
use std::str::FromStr;

mod store;

pub use store::Ports;
pub(in crate::container) use store::{numbered, read_target};

use crate::port::parse_u16;
pub use crate::port::{InvalidPort, PortNumber};

/// One published port: container port → host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortPair {
    /// The port inside the container.
    pub internal: PortNumber,
    /// The host port it is published on.
    pub external: PortNumber,
}

impl fmt::Display for PortPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.internal, self.external)
    }
}

/// What an install asks for: geard's JSON `{"Internal": 8080, "External": 0}`; External 0
/// or absent = allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortRequest {
    /// The port inside the container.
    pub internal: PortNumber,
    /// The host port wanted, or 0 for any free one (geard omits it then, and so do we).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub external: u16,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl PortRequest {
    /// The host port asked for, or `None` when any free one will do.
    pub fn requested_external(&self) -> Option<PortNumber> {
        PortNumber::try_from(self.external).ok()
    }
}

/// Parses the CLI form "INTERNAL:EXTERNAL" (EXTERNAL 0 = allocate), e.g. "8080:0".
impl FromStr for PortRequest {
    type Err = InvalidPort;

    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        let (internal, external) = s
            .split_once(':')
            .ok_or_else(|| InvalidPort::Mapping(s.to_string()))?;
        Ok(PortRequest {
            internal: internal.parse()?,
            external: parse_u16(external)?,
        })
    }
}

/// The host ports handed out to requests that leave the host port to us. Explicit host
/// ports may lie outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The lowest port handed out.
    pub first: u16,
    /// The highest port handed out (inclusive).
    pub last: u16,
}

impl Default for PortRange {
    /// 4000–60000: geard's range, above the well-known and common service ports.
    fn default() -> Self {
        PortRange {
            first: 4000,
            last: 60000,
        }
    }
}

impl FromStr for PortRange {
    type Err = InvalidPort;

    /// `FIRST-LAST`, e.g. `4000-60000`; both ends are ports and FIRST <= LAST.
    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        let bad = || InvalidPort::Range(s.to_string());
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first: PortNumber = first.parse().map_err(|_| bad())?;
        let last: PortNumber = last.parse().map_err(|_| bad())?;
        if first > last {
            return Err(bad());
        }
        Ok(PortRange {
            first: first.get(),
            last: last.get(),
        })
    }
}

impl PortRange {
    fn len(self) -> u32 {
        if self.first <= self.last {
            u32::from(self.last) - u32::from(self.first) + 1
        } else {
            0
        }
    }

    /// The `offset`th port of the range (`None` for port 0 of a range starting at 0).
    fn nth(self, offset: u32) -> Option<PortNumber> {
        let n = u16::try_from(u32::from(self.first) + offset).ok()?;
        PortNumber::try_from(n).ok()
    }

    /// The part of `avoid` inside this range, if any.
    fn overlap(self, avoid: Option<PortRange>) -> Option<PortRange> {
        let a = avoid?;
        let (first, last) = (a.first.max(self.first), a.last.min(self.last));
        (first <= last).then_some(PortRange { first, last })
    }

    /// How many of its ports `avoid` leaves.
    pub fn len_without(self, avoid: Option<PortRange>) -> u32 {
        self.len() - self.overlap(avoid).map_or(0, PortRange::len)
    }

    /// The `offset`th of the ports `avoid` leaves.
    fn nth_without(self, offset: u32, avoid: Option<PortRange>) -> Option<PortNumber> {
        match self.overlap(avoid) {
            Some(gap) if offset >= u32::from(gap.first - self.first) => {
                self.nth(offset + gap.len())
            }
            _ => self.nth(offset),
        }
    }

    /// The ports the kernel hands out as the local ends of outgoing connections
    /// (`net.ipv4.ip_local_port_range`, which also holds for IPv6): a container publishing
    /// one of them fails to start whenever some client's connection holds it ("address
    /// already in use"), so allocations avoid them. `None` if it cannot be read.
    pub fn ephemeral() -> Option<PortRange> {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut ends = text.split_whitespace().map(|n| n.parse::<u16>().ok());
        let (first, last) = (ends.next()??, ends.next()??);
        (first <= last).then_some(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a reservation failed. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// One container port is asked for twice.
    #[error("internal port {0} is published more than once")]
    DuplicateInternal(PortNumber),
    /// One host port is asked for twice.
    #[error("host port {0} is requested for more than one internal port")]
    DuplicateExternal(PortNumber),
    /// Another container holds the host port asked for.
    #[error("host port {port} is already reserved by {owner}")]
    InUse {
        /// The port asked for.
        port: PortNumber,
        /// The id its entry names (or the entry's raw target when it names no container).
        owner: String,
    },
    /// Every port of the range is reserved.
    #[error("no free host port left in {range}")]
    Exhausted {
        /// The range that was searched.
        range: PortRange,
    },
    /// The ports directory could not be read or changed.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

#[cfg(test)]
mod tests;
