//! Network links: inside a container, `FROM_IP:FROM_PORT` leads to `TO_HOST:TO_PORT`
//! elsewhere, through a DNAT rule in the container's own network namespace, so the target
//! can move without the container knowing.
//!
//! This module holds the model, its parsing, and the rule rendering (pure); `linker`
//! applies the rules.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::port::PortNumber;

/// Why a link is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLink {
    /// The text is not `[FROM_IP:]FROM_PORT:TO_HOST:TO_PORT`.
    #[error(
        "link '{0}' must be [LOCALIP:]LOCALPORT:REMOTEHOST:REMOTEPORT, e.g. 127.0.0.2:8081:10.0.0.5:8080"
    )]
    Form(String),
    /// The local address is not an IPv4 address.
    #[error("link '{0}': the local address must be an IPv4 address such as 127.0.0.2")]
    FromHost(String),
    /// A port is not 1-65535.
    #[error("link '{0}': ports must be numbers from 1 to 65535")]
    Port(String),
    /// The target host is not a host name or an IPv4 address.
    #[error("link '{0}': '{1}' is not a host name or IPv4 address")]
    ToHost(String, String),
}

/// A host a link points at: an IPv4 address or a DNS name (resolved when applied).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkHost(String);

impl LinkHost {
    /// The host as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this names the container's own host (geard's `localhost`/`127.x` targets).
    pub fn is_local(&self) -> bool {
        self.0 == "localhost" || self.0.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for LinkHost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if s.len() > 253 || !s.split('.').all(label_ok) {
            return Err(s.to_string());
        }
        Ok(LinkHost(s.to_string()))
    }
}

impl fmt::Display for LinkHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for LinkHost {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LinkHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|bad| {
            serde::de::Error::custom(format!("'{bad}' is not a host name or IPv4 address"))
        })
    }
}

/// One link (geard's JSON: `{"FromHost": "127.0.0.2", "FromPort": 8081, "ToHost": "9.8.23.14", "ToPort": 8080}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkLink {
    /// The address the container connects to (default 127.0.0.1).
    #[serde(default = "loopback")]
    pub from_host: Ipv4Addr,
    /// The port the container connects to.
    pub from_port: PortNumber,
    /// Where the connection really goes: a host name or address; `localhost` means the
    /// container's host.
    pub to_host: LinkHost,
    /// The port there (a published port of the target container).
    pub to_port: PortNumber,
}

fn loopback() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

impl FromStr for NetworkLink {
    type Err = InvalidLink;

    /// `[FROM_IP:]FROM_PORT:TO_HOST:TO_PORT`, as geard's `-n`.
    fn from_str(s: &str) -> Result<Self, InvalidLink> {
        let fields: Vec<&str> = s.split(':').collect();
        let (from_host, rest) = match fields.as_slice() {
            [port, host, to] => ("127.0.0.1", [*port, *host, *to]),
            [ip, port, host, to] => (*ip, [*port, *host, *to]),
            _ => return Err(InvalidLink::Form(s.to_string())),
        };
        let port = |p: &str| {
            p.parse::<PortNumber>()
                .map_err(|_| InvalidLink::Port(s.to_string()))
        };
        Ok(NetworkLink {
            from_host: from_host
                .parse()
                .map_err(|_| InvalidLink::FromHost(s.to_string()))?,
            from_port: port(rest[0])?,
            to_host: rest[1]
                .parse()
                .map_err(|h| InvalidLink::ToHost(s.to_string(), h))?,
            to_port: port(rest[2])?,
        })
    }
}

impl fmt::Display for NetworkLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.from_host, self.from_port, self.to_host, self.to_port
        )
    }
}

/// The chain in the container's `nat` table that holds the link DNAT rules.
pub const CHAIN: &str = "GEAR-LINKS";
/// The chain that gives linked connections a source address the target can answer.
pub const SNAT_CHAIN: &str = "GEAR-LINKS-SNAT";

/// A link with its target resolved to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLink {
    /// The link.
    pub link: NetworkLink,
    /// Its target address.
    pub to: Ipv4Addr,
}

/// The built-in `nat` chains that jump to gear's link chains: (hook, chain).
pub const JUMPS: [(&str, &str); 2] = [("OUTPUT", CHAIN), ("POSTROUTING", SNAT_CHAIN)];

/// The jumps of [`JUMPS`] that `saved` (`iptables-save -t nat` of the container's namespace)
/// lacks.
pub fn missing_jumps(saved: &str) -> Vec<(&'static str, &'static str)> {
    JUMPS
        .into_iter()
        .filter(|(hook, chain)| {
            !saved.lines().any(|line| {
                // With -c, a line starts with its counters: `[0:0] -A OUTPUT -j GEAR-LINKS`.
                let rule = line.split_once("] ").map_or(line, |(_, r)| r);
                rule.split_whitespace().eq(["-A", hook, "-j", chain])
            })
        })
        .collect()
}

/// The `iptables-restore --noflush` input that makes the container's link chains hold
/// exactly `links` (declaring a chain flushes it, so stale rules go; other chains stay), and
/// adds the `jumps` to them that are missing.
pub fn render_rules(links: &[ResolvedLink], jumps: &[(&str, &str)]) -> String {
    let mut out = format!("*nat\n:{CHAIN} - [0:0]\n:{SNAT_CHAIN} - [0:0]\n");
    for (hook, chain) in jumps {
        out.push_str(&format!("-I {hook} 1 -j {chain}\n"));
    }
    for r in links {
        out.push_str(&format!(
            "-A {CHAIN} -d {}/32 -p tcp -m tcp --dport {} -j DNAT --to-destination {}:{}\n",
            r.link.from_host, r.link.from_port, r.to, r.link.to_port
        ));
    }
    // A connection to 127.x would otherwise leave with source 127.0.0.1, which the target
    // cannot answer; take the container's own address on the way out instead.
    let mut targets: Vec<(Ipv4Addr, PortNumber)> =
        links.iter().map(|r| (r.to, r.link.to_port)).collect();
    targets.sort();
    targets.dedup();
    for (to, port) in targets {
        out.push_str(&format!(
            "-A {SNAT_CHAIN} -d {to}/32 -p tcp -m tcp --dport {port} -j MASQUERADE\n"
        ));
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_geard_link_specs() {
        let l: NetworkLink = "127.0.0.2:8081:9.8.23.14:8080".parse().unwrap();
        assert_eq!(l.from_host, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!((l.from_port.get(), l.to_port.get()), (8081, 8080));
        assert_eq!(l.to_host.as_str(), "9.8.23.14");
        let l: NetworkLink = "6379:db-host.example:50000".parse().unwrap();
        assert_eq!(l.from_host, Ipv4Addr::LOCALHOST);
        assert_eq!(l.to_string(), "127.0.0.1:6379:db-host.example:50000");
        for bad in [
            "8080",
            "a:1:b:2",
            "1:2:3:4:5",
            "127.0.0.1:0:h:1",
            "1:h:70000",
            "1:-h:2",
            "1:h h:2",
            "1:h\n:2",
        ] {
            assert!(bad.parse::<NetworkLink>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn json_is_geards() {
        let l: NetworkLink = serde_json::from_str(
            r#"{"FromHost":"127.0.0.2","FromPort":8081,"ToHost":"localhost","ToPort":4000}"#,
        )
        .unwrap();
        assert!(l.to_host.is_local());
        let l: NetworkLink =
            serde_json::from_str(r#"{"FromPort":1,"ToHost":"h","ToPort":2}"#).unwrap();
        assert_eq!(l.from_host, Ipv4Addr::LOCALHOST);
        assert!(
            serde_json::from_str::<NetworkLink>(r#"{"FromPort":1,"ToHost":"a;b","ToPort":2}"#)
                .is_err()
        );
    }

    #[test]
    fn rules_replace_the_chains_exactly() {
        let link = |s: &str, to: [u8; 4]| ResolvedLink {
            link: s.parse().unwrap(),
            to: to.into(),
        };
        let rules = render_rules(
            &[
                link("127.0.0.2:8081:web-2:4001", [10, 0, 0, 5]),
                link("127.0.0.3:8081:localhost:4001", [10, 0, 0, 5]),
            ],
            &[],
        );
        assert_eq!(
            rules,
            "*nat\n:GEAR-LINKS - [0:0]\n:GEAR-LINKS-SNAT - [0:0]\n\
             -A GEAR-LINKS -d 127.0.0.2/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.0.0.5:4001\n\
             -A GEAR-LINKS -d 127.0.0.3/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.0.0.5:4001\n\
             -A GEAR-LINKS-SNAT -d 10.0.0.5/32 -p tcp -m tcp --dport 4001 -j MASQUERADE\n\
             COMMIT\n"
        );
        assert_eq!(
            render_rules(&[], &JUMPS),
            "*nat\n:GEAR-LINKS - [0:0]\n:GEAR-LINKS-SNAT - [0:0]\n\
             -I OUTPUT 1 -j GEAR-LINKS\n-I POSTROUTING 1 -j GEAR-LINKS-SNAT\nCOMMIT\n"
        );
    }

    #[test]
    fn only_missing_jumps_are_added() {
        assert_eq!(missing_jumps("*nat\nCOMMIT\n"), JUMPS.to_vec());
        let saved = "*nat\n:OUTPUT ACCEPT [0:0]\n[3:180] -A OUTPUT -j GEAR-LINKS\n\
                     -A POSTROUTING -j GEAR-LINKS-SNATX\nCOMMIT\n";
        assert_eq!(missing_jumps(saved), [("POSTROUTING", SNAT_CHAIN)]);
    }
}
