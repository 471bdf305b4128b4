//! A TCP port number: the leaf type that ports, links and idling rules share.

use std::fmt;
use std::str::FromStr;

/// Why a text or number is not a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPort {
    /// Not a number from 1 to 65535.
    #[error("'{0}' is not a port number from 1 to 65535")]
    Number(String),
    /// A port range that is not `FIRST-LAST` with FIRST <= LAST.
    #[error("port range '{0}' must be FIRST-LAST, e.g. 4000-60000")]
    Range(String),
    /// A port mapping without its `:`.
    #[error("port mapping '{0}' must be INTERNAL:EXTERNAL, e.g. 8080:0 (0 = any free host port)")]
    Mapping(String),
}

/// A TCP port number, 1–65535 (0 is not a port).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u16", into = "u16")]
pub struct PortNumber(u16);

impl PortNumber {
    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for PortNumber {
    type Error = InvalidPort;

    fn try_from(n: u16) -> Result<Self, InvalidPort> {
        match n {
            0 => Err(InvalidPort::Number("0".into())),
            n => Ok(PortNumber(n)),
        }
    }
}

impl From<PortNumber> for u16 {
    fn from(port: PortNumber) -> u16 {
        port.0
    }
}

impl FromStr for PortNumber {
    type Err = InvalidPort;

    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        parse_u16(s)?.try_into()
    }
}

impl fmt::Display for PortNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Digits only: `u16::from_str` would also accept "+80".
pub(crate) fn parse_u16(s: &str) -> Result<u16, InvalidPort> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidPort::Number(s.to_string()));
    }
    s.parse().map_err(|_| InvalidPort::Number(s.to_string()))
}
