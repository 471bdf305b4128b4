//! Readiness checks run from the host: a TCP connect, or an HTTP GET that must answer 2xx
//! or 3xx, against the container's address on Docker's bridge. Nothing runs inside the
//! image, so a `FROM scratch` or distroless image can have one.
//!
//! `gear-step started` ([`super::step::started`]) waits with [`wait_ready`] before it
//! returns, so a unit with a probe is `active` only once its container serves.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use super::ports::PortNumber;
use crate::serde_str::serde_via_str;

/// How long a container may take to become ready when no timeout is given.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest readiness timeout: the unit's own start timeout (5 min) must stay longer,
/// so that the probe, not systemd, says why a start failed.
pub const MAX_READY_TIMEOUT: Duration = Duration::from_secs(240);

/// How long one attempt may take (a connect that nobody answers, a slow HTTP answer).
const ATTEMPT: Duration = Duration::from_secs(2);

/// How long to wait between attempts: refusals come back at once, and a listener that
/// appears is found within this much.
const PAUSE: Duration = Duration::from_millis(50);

/// An HTTP path to GET: starts with `/`, printable ASCII without spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPath(String);

impl HttpPath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HttpPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') || s.len() > 1024 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "'{s}' is not an HTTP path: expected /PATH, printable characters without spaces"
            ));
        }
        Ok(HttpPath(s.into()))
    }
}

impl fmt::Display for HttpPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(HttpPath);

/// A duration written as on the command line (`30s`, `500ms`, `2m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl FromStr for Wait {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::duration::parse(s).map(Wait)
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.subsec_millis(), self.0.as_secs()) {
            (0, s) if s % 60 == 0 && s > 0 => write!(f, "{}m", s / 60),
            (0, s) => write!(f, "{s}s"),
            _ => write!(f, "{}ms", self.0.as_millis()),
        }
    }
}
serde_via_str!(Wait);

/// A readiness probe, as the install body and the spec carry it:
/// `{"Port": 8080}` (TCP) or `{"Http": "/ready", "Port": 8080, "Timeout": "30s"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ReadyProbe {
    /// GET this path, which must answer 2xx or 3xx; absent, a TCP connect is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpPath>,
    /// The container's port. Absent in an install: its first published internal port
    /// (the spec always names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortNumber>,
    /// How long the container may take (default 60s, at most 4m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Wait>,
}

/// Why a probe cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProbe {
    /// No port was named and none is published.
    #[error("the readiness probe names no port and the container publishes none: name one")]
    NoPort,
    /// The timeout is out of range.
    #[error("readiness timeout {0} is out of range: 1s to 4m")]
    Timeout(Wait),
    /// A health check's interval is out of range.
    #[error("health check interval {0} is out of range: 1s to 1h")]
    Interval(Wait),
    /// A health check's failures in a row are out of range.
    #[error("health check failures {0} is out of range: 1 to 100")]
    Failures(u32),
}

impl ReadyProbe {
    /// A TCP probe of `port`.
    pub fn tcp(port: PortNumber) -> ReadyProbe {
        ReadyProbe {
            http: None,
            port: Some(port),
            timeout: None,
        }
    }

    /// Parses `PATH[:PORT]` (`--ready-http`).
    pub fn parse_http(s: &str) -> Result<ReadyProbe, String> {
        let (path, port) = match s.rsplit_once(':') {
            Some((path, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => (
                path,
                Some(port.parse::<PortNumber>().map_err(|e| e.to_string())?),
            ),
            _ => (s, None),
        };
        Ok(ReadyProbe {
            http: Some(path.parse()?),
            port,
            timeout: None,
        })
    }

    /// The probe as stored in a spec: its port named (`published`, the container's
    /// published internal ports, gives the default) and its timeout checked.
    pub fn resolve(
        mut self,
        published: impl IntoIterator<Item = PortNumber>,
    ) -> Result<ReadyProbe, InvalidProbe> {
        if self.port.is_none() {
            self.port = Some(published.into_iter().next().ok_or(InvalidProbe::NoPort)?);
        }
        if let Some(t) = self.timeout
            && (t.0 < Duration::from_secs(1) || t.0 > MAX_READY_TIMEOUT)
        {
            return Err(InvalidProbe::Timeout(t));
        }
        Ok(self)
    }

    /// How long the container may take.
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_READY_TIMEOUT, |t| t.0)
    }
}

impl fmt::Display for ReadyProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        match &self.http {
            Some(path) => write!(f, "http {path}{port}"),
            None => write!(f, "tcp{port}"),
        }
    }
}

/// Checks once: `Ok` when the container at `ip` answers as `probe` asks, else why not.
pub async fn check(ip: IpAddr, probe: &ReadyProbe) -> Result<(), String> {
    let port = probe.port.map_or(80, PortNumber::get);
    let addr = SocketAddr::new(ip, port);
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let Some(path) = &probe.http else {
            return Ok(());
        };
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: gear-probe\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending GET {path} to {addr}: {e}"))?;
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the answer of {addr}: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        match status_code(&head) {
            Some(code) if (200..400).contains(&code) => Ok(()),
            Some(code) => Err(format!("GET {path} on {addr} answered {code}")),
            None => Err(format!("GET {path} on {addr}: no HTTP answer")),
        }
    };
    match tokio::time::timeout(ATTEMPT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("{addr} did not answer within {ATTEMPT:?}")),
    }
}

/// The status code of an HTTP answer's first line (`HTTP/1.1 200 OK`).
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// Checks until the container answers (`Ok` with how long it took) or until its timeout
/// (`Err` with the last reason); gives up at once when `alive()` says the container ended.
pub async fn wait_ready(
    ip: IpAddr,
    probe: &ReadyProbe,
    alive: impl Fn() -> bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    let deadline = started + probe.timeout();
    loop {
        let reason = match check(ip, probe).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(reason) => reason,
        };
        if !alive() {
            return Err(format!(
                "the container ended before it was ready ({reason})"
            ));
        }
        if Instant::now() + PAUSE >= deadline {
            return Err(format!(
                "not ready within {}: {reason}",
                Wait(probe.timeout())
            ));
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests;
