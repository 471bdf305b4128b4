//! Where a command goes: `HOST[:PORT]` names an agent, `HOST[:PORT]/ID` a container on it.

use std::fmt;
use std::str::FromStr;

use crate::id::{ContainerId, InvalidId};

/// The port the agent listens on by default (geard's).
pub const DEFAULT_PORT: u16 = 43273;

/// Why a locator or host could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLocator {
    /// The host part is empty or malformed.
    #[error("'{0}' is not a host: expected HOST or HOST:PORT (IPv6 as [ADDR]:PORT)")]
    Host(String),
    /// The port is not a number from 1 to 65535.
    #[error("'{0}' is not a port: expected a number from 1 to 65535")]
    Port(String),
    /// The id part is not a valid container id.
    #[error("{0}")]
    Id(#[from] InvalidId),
}

/// The address of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAddr {
    host: String,
    port: u16,
}

impl HostAddr {
    /// The agent on this machine, on the default port.
    pub fn localhost() -> HostAddr {
        HostAddr {
            host: "localhost".into(),
            port: DEFAULT_PORT,
        }
    }

    /// The host part, without the port.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `host:port` as `TcpStream::connect` and the `Host:` header want it.
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostAddr {
    type Err = InvalidLocator;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad_host = || InvalidLocator::Host(s.to_string());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad_host)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad_host)?)),
            }
        } else {
            match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if host.is_empty()
            || !host.chars().all(valid_char)
            || (host.contains(':') && !s.starts_with('['))
        {
            return Err(bad_host());
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(InvalidLocator::Port(p.to_string())),
            },
        };
        Ok(HostAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == DEFAULT_PORT && !self.host.contains(':') {
            f.write_str(&self.host)
        } else {
            f.write_str(&self.socket_addr())
        }
    }
}

/// A container on an agent: `HOST[:PORT]/ID`, or a bare `ID` for the local agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locator {
    /// The agent.
    pub host: HostAddr,
    /// The container.
    pub id: ContainerId,
}

impl FromStr for Locator {
    type Err = InvalidLocator;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, id) = match s.rsplit_once('/') {
            Some((host, id)) => (host.parse()?, id),
            None => (HostAddr::localhost(), s),
        };
        Ok(Locator {
            host,
            id: id.parse()?,
        })
    }
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h: HostAddr = "localhost".parse().unwrap();
        assert_eq!(h.socket_addr(), "localhost:43273");
        assert_eq!(h.to_string(), "localhost");
        let h: HostAddr = "10.0.0.5:8000".parse().unwrap();
        assert_eq!(h.socket_addr(), "10.0.0.5:8000");
        assert_eq!(h.to_string(), "10.0.0.5:8000");
        let h: HostAddr = "[::1]:9".parse().unwrap();
        assert_eq!(h.socket_addr(), "[::1]:9");
        let h: HostAddr = "[fe80::1]".parse().unwrap();
        assert_eq!(h.socket_addr(), "[fe80::1]:43273");
        for bad in [
            "",
            ":80",
            "a b",
            "host:0",
            "host:70000",
            "host:x",
            "::1",
            "[::1",
            "a/b",
        ] {
            assert!(bad.parse::<HostAddr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn locators() {
        let l: Locator = "localhost/web-1".parse().unwrap();
        assert_eq!(l.host, HostAddr::localhost());
        assert_eq!(l.id.as_str(), "web-1");
        let l: Locator = "10.0.0.5:4000/my.app_1".parse().unwrap();
        assert_eq!(l.to_string(), "10.0.0.5:4000/my.app_1");
        let l: Locator = "web-1".parse().unwrap();
        assert_eq!(l.host, HostAddr::localhost());
        assert!(matches!(
            "localhost/ab".parse::<Locator>(),
            Err(InvalidLocator::Id(_))
        ));
        assert!(matches!(
            "/web-1".parse::<Locator>(),
            Err(InvalidLocator::Host(_))
        ));
    }
}
