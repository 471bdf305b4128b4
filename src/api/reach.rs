//! How `gear` reaches each agent: its token, how its certificate is checked, and whether
//! plain HTTP to another host is allowed (`--insecure`), from the flags and the hosts
//! file `~/.config/gear/hosts`.
//!
//! The hosts file has one agent per line, `HOST[:PORT]` (or `*` for every host without a
//! line of its own) then `KEY=VALUE` fields; `#` starts a comment:
//!
//! ```text
//! # agent                 fields
//! web1.example.com        fingerprint=SHA256:3A:..:9F  token=0123...
//! 10.0.0.7:43273          ca=/etc/pki/gear-ca.pem
//! *                       ca=/etc/pki/gear-ca.pem
//! ```
//!
//! `fingerprint=` pins the agent's certificate (what `gear init-tls` printed on it),
//! `ca=` names a PEM file of CAs that issue agents' certificates for their names, and
//! `token=` is the agent's bearer token. A file holding tokens must be the user's alone
//! (mode 0600), as ssh wants of its keys.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::Client;
use super::client::Slots;
use crate::locator::HostAddr;
use crate::tls::Fingerprint;
use crate::tls::client::Trust;

/// What the CLI knows about reaching agents.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The longest one agent may take to answer one request.
    pub timeout: Duration,
    /// The token for agents whose line names none (`$GEAR_TOKEN`, `~/.config/gear/token`).
    pub token: Option<String>,
    /// The hosts file.
    pub hosts: Arc<HostsFile>,
    /// A CA file for agents whose line names no trust of its own (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Allow plain HTTP, token included, to agents on other hosts without a trust.
    pub insecure: bool,
    /// The requests open at once, over every client made here (`--parallel`).
    pub slots: Slots,
}

impl Reach {
    /// A client for `host` that may take the usual time.
    pub fn client(&self, host: &HostAddr) -> Client {
        self.client_for(host, self.timeout)
    }

    /// A client for `host` that may take `timeout` per request.
    pub fn client_for(&self, host: &HostAddr, timeout: Duration) -> Client {
        let (own, any) = self.hosts.lines_for(host);
        let trust = own
            .and_then(|l| l.trust.clone())
            .or_else(|| self.ca_file.clone().map(Trust::Ca))
            .or_else(|| any.and_then(|l| l.trust.clone()));
        let token = own
            .and_then(|l| l.token.clone())
            .or_else(|| self.token.clone());
        Client::new(host.clone(), timeout)
            .with_token(token)
            .with_trust(trust)
            .insecure(self.insecure)
            .with_slots(self.slots.clone())
    }
}

/// Which agents a hosts-file line is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Host(HostAddr),
}

/// One line of the hosts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Line {
    trust: Option<Trust>,
    token: Option<String>,
}

/// The parsed hosts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    lines: Vec<(Pattern, Line)>,
}

/// A line of the hosts file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HostsFileError {
    /// Its number, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl HostsFile {
    /// `~/.config/gear/hosts`, when `$HOME` is set.
    pub fn default_path() -> Option<PathBuf> {
        let home = std::env::var_os("HOME")?;
        Some(Path::new(&home).join(".config/gear/hosts"))
    }

    /// Reads the file at `path`; empty when it does not exist. A file with tokens that
    /// others can read is refused.
    pub fn load(path: &Path) -> anyhow::Result<HostsFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HostsFile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file = HostsFile::parse(&text).with_context(|| format!("in {}", path.display()))?;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        let has_tokens = file.lines.iter().any(|(_, l)| l.token.is_some());
        anyhow::ensure!(
            !has_tokens || mode & 0o077 == 0,
            "{} holds tokens and others can read it (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        );
        Ok(file)
    }

    /// Parses the text of a hosts file.
    pub fn parse(text: &str) -> Result<HostsFile, HostsFileError> {
        let mut lines = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let err = |message: String| HostsFileError {
                line: n + 1,
                message,
            };
            let mut words = raw.split('#').next().unwrap_or("").split_whitespace();
            let Some(first) = words.next() else { continue };
            let pattern = match first {
                "*" => Pattern::Any,
                host => Pattern::Host(host.parse().map_err(|e| err(format!("{e}")))?),
            };
            let mut line = Line::default();
            for word in words {
                let (key, value) = word
                    .split_once('=')
                    .ok_or_else(|| err(format!("'{word}' is not KEY=VALUE")))?;
                let trust = match key {
                    "fingerprint" => Trust::Pinned(
                        value
                            .parse::<Fingerprint>()
                            .map_err(|e| err(e.to_string()))?,
                    ),
                    "ca" if Path::new(value).is_absolute() => Trust::Ca(value.into()),
                    "ca" => return Err(err(format!("ca={value}: give an absolute path"))),
                    "token" if pattern == Pattern::Any => {
                        return Err(err(
                            "a token for every host goes in ~/.config/gear/token, not on `*`"
                                .into(),
                        ));
                    }
                    "token" if value.len() < crate::api::auth::MIN_TOKEN_LEN => {
                        return Err(err("the token is too short to be an agent's".into()));
                    }
                    "token" => {
                        line.token = Some(value.to_string());
                        continue;
                    }
                    _ => {
                        return Err(err(format!(
                            "unknown field '{key}': expected fingerprint=, ca= or token="
                        )));
                    }
                };
                if line.trust.replace(trust).is_some() {
                    return Err(err("give one fingerprint= or one ca=, not both".into()));
                }
            }
            if lines.iter().any(|(p, _)| *p == pattern) {
                return Err(err(format!("'{first}' has a line already")));
            }
            lines.push((pattern, line));
        }
        Ok(HostsFile { lines })
    }

    /// The line of `host`, and the `*` line.
    fn lines_for(&self, host: &HostAddr) -> (Option<&Line>, Option<&Line>) {
        let find = |want: &Pattern| self.lines.iter().find(|(p, _)| p == want).map(|(_, l)| l);
        (find(&Pattern::Host(host.clone())), find(&Pattern::Any))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    const TOKEN: &str = "0123456789abcdef0123";

    fn host(s: &str) -> HostAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_host_gets_its_own_line_then_the_flags_then_the_star_line() {
        let text = format!(
            "# agents\n\
             web1.example fingerprint={FP} token={TOKEN}  # pinned\n\
             10.0.0.7:4000 ca=/etc/pki/one.pem\n\
             \n\
             * ca=/etc/pki/all.pem\n"
        );
        let hosts = Arc::new(HostsFile::parse(&text).unwrap());
        let reach = Reach {
            token: Some("default-token-0000000".into()),
            hosts: hosts.clone(),
            ..Reach::default()
        };
        let web1 = reach.client(&host("web1.example"));
        assert_eq!(web1.trust(), Some(&Trust::Pinned(FP.parse().unwrap())));
        assert_eq!(web1.token(), Some(TOKEN));
        // The same name on another port is another agent.
        let other_port = reach.client(&host("web1.example:5000"));
        assert_eq!(
            other_port.trust(),
            Some(&Trust::Ca("/etc/pki/all.pem".into()))
        );
        assert_eq!(other_port.token(), Some("default-token-0000000"));
        let ten = reach.client(&host("10.0.0.7:4000"));
        assert_eq!(ten.trust(), Some(&Trust::Ca("/etc/pki/one.pem".into())));
        let flagged = Reach {
            ca_file: Some("/flag.pem".into()),
            ..reach.clone()
        };
        assert_eq!(
            flagged.client(&host("web2")).trust(),
            Some(&Trust::Ca("/flag.pem".into()))
        );
        assert_eq!(
            flagged.client(&host("web1.example")).trust(),
            Some(&Trust::Pinned(FP.parse().unwrap()))
        );
        let none = Reach::default();
        assert_eq!(none.client(&host("web1.example")).trust(), None);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        for (text, want) in [
            (
                "web1 fingerprint=SHA256:AB",
                "line 1: 'SHA256:AB' is not a SHA-256",
            ),
            ("web1\nweb1", "line 2: 'web1' has a line already"),
            ("web1 color=blue", "unknown field 'color'"),
            ("web1 ca", "'ca' is not KEY=VALUE"),
            ("web1 ca=rel.pem", "absolute path"),
            (&format!("web1 ca=/a.pem fingerprint={FP}"), "not both"),
            (&format!("* token={TOKEN}"), "~/.config/gear/token"),
            ("web1 token=short", "too short"),
            ("web:x", "not a port"),
            ("web/1", "not a host"),
        ] {
            let err = HostsFile::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_file_with_tokens_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        assert_eq!(HostsFile::load(&path).unwrap(), HostsFile::default());
        std::fs::write(&path, format!("web1 fingerprint={FP}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(HostsFile::load(&path).is_ok(), "pins are not secret");
        std::fs::write(&path, format!("web1 token={TOKEN}\n")).unwrap();
        let err = HostsFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(HostsFile::load(&path).is_ok());
    }
}
