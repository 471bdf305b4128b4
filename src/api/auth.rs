//! Who may talk to the agent: root (or the socket's group) over the Unix socket, anyone on
//! the host over loopback TCP (as with geard; unless `--loopback-needs-token`), and others
//! only with a bearer token listed in `/etc/gear/tokens` (`Paths::tokens_file`).
//!
//! The tokens file holds one token per line (`#` starts a comment). It must be readable by
//! root only: a file others can read is not trusted, and every remote request is refused
//! with a message saying why.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::error::Error;
use super::listener::{Peer, process_in_group};

/// Tokens shorter than this are ignored: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Checks requests against the tokens file.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens_file: PathBuf,
    loopback_needs_token: bool,
    unix_group: Option<u32>,
}

impl Auth {
    /// Checks against `tokens_file`; loopback TCP needs no token.
    pub fn new(tokens_file: PathBuf) -> Auth {
        Auth {
            tokens_file,
            loopback_needs_token: false,
            unix_group: None,
        }
    }

    /// The same, asking loopback TCP clients for a token too: anything that can connect
    /// from this host (a local user, a proxy, an SSRF) is then no longer root through us.
    pub fn loopback_needs_token(mut self, yes: bool) -> Auth {
        self.loopback_needs_token = yes;
        self
    }

    /// The same, letting members of group `gid` (the Unix socket's group) in over the Unix
    /// socket, besides root.
    pub fn unix_group(mut self, gid: Option<u32>) -> Auth {
        self.unix_group = gid;
        self
    }

    /// Lets a request from `peer` with this `Authorization` header through, or says why not.
    pub fn check(&self, peer: &Peer, authorization: Option<&str>) -> Result<(), Error> {
        match *peer {
            // The socket file's mode already let only root and its group connect; the
            // kernel's word on who connected guards against a loosened mode.
            Peer::Unix { uid, pid } => {
                let in_group = |gid| pid.is_some_and(|pid| process_in_group(pid, gid));
                if uid == 0 || self.unix_group.is_some_and(in_group) {
                    return Ok(());
                }
                return Err(Error::Unauthorized(format!(
                    "uid {uid} is neither root nor in the group of the agent's socket"
                )));
            }
            // On a dual-stack socket an IPv4 client shows as `::ffff:a.b.c.d`: unmap it.
            Peer::Tcp(addr) if addr.ip().to_canonical().is_loopback() => {
                if !self.loopback_needs_token {
                    return Ok(());
                }
            }
            Peer::Tcp(_) => {}
        }
        let Some(token) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Err(Error::Unauthorized(
                match peer {
                    Peer::Tcp(a) if a.ip().to_canonical().is_loopback() => {
                        "this agent needs Authorization: Bearer <token> over TCP, even on \
                         loopback; or use its Unix socket"
                    }
                    _ => "a request from another host needs Authorization: Bearer <token>",
                }
                .into(),
            ));
        };
        let tokens = self.tokens()?;
        // Compare every byte of every token, so timing does not tell how much matched.
        let known = tokens.iter().fold(false, |found, t| {
            found | constant_time_eq(t.as_bytes(), token.as_bytes())
        });
        if !known {
            return Err(Error::Unauthorized(
                "the token is not one of this agent's tokens".into(),
            ));
        }
        Ok(())
    }

    /// The tokens in the file; none when it is missing.
    fn tokens(&self) -> Result<Vec<String>, Error> {
        let meta = match std::fs::metadata(&self.tokens_file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Unauthorized(format!(
                    "this agent has no tokens ({} does not exist; `gear new-token` makes one)",
                    self.tokens_file.display()
                )));
            }
            Err(e) => {
                return Err(Error::Host(anyhow::anyhow!(
                    "reading {}: {e}",
                    self.tokens_file.display()
                )));
            }
        };
        if meta.mode() & 0o077 != 0 || meta.uid() != 0 {
            log::warn!(
                "{} is not root's alone (mode {:o}); refusing remote requests",
                self.tokens_file.display(),
                meta.mode() & 0o777
            );
            return Err(Error::Unauthorized(format!(
                "{} must belong to root with mode 0600 before the agent trusts it",
                self.tokens_file.display()
            )));
        }
        let text = std::fs::read_to_string(&self.tokens_file).map_err(|e| {
            Error::Host(anyhow::anyhow!(
                "reading {}: {e}",
                self.tokens_file.display()
            ))
        })?;
        Ok(parse(&text))
    }
}

/// Makes a new random token, adds it to the tokens file (created root-only if missing),
/// and returns it.
pub fn new_token(tokens_file: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("reading /dev/urandom: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut text = match std::fs::read_to_string(tokens_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Bearer tokens for gear-api; one per line.\n".into()
        }
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", tokens_file.display())),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&token);
    text.push('\n');
    crate::atomic_file::write(tokens_file, text.as_bytes(), 0o600)?;
    Ok(token)
}

/// The tokens of a tokens file: trimmed lines, without comments, blank or short lines.
pub fn parse(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| l.len() >= MIN_TOKEN_LEN)
        .map(str::to_string)
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn auth_with(text: &str, mode: u32) -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, Auth::new(file))
    }

    fn tcp(ip: &str) -> Peer {
        Peer::Tcp(std::net::SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn loopback_needs_no_token_and_others_need_a_listed_one() {
        let (_dir, auth) = auth_with(&format!("# agents' tokens\n{TOKEN}\nshort\n"), 0o600);
        let remote = &tcp("10.0.0.2");
        assert!(auth.check(&tcp("127.0.0.1"), None).is_ok());
        assert!(auth.check(&tcp("::1"), None).is_ok());
        assert!(auth.check(&tcp("::ffff:127.0.0.1"), None).is_ok());
        assert!(auth.check(&tcp("::ffff:10.0.0.2"), None).is_err());
        assert!(matches!(
            auth.check(remote, None),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(
            auth.check(remote, Some("Bearer nope")),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(
            auth.check(remote, Some("Bearer short")),
            Err(Error::Unauthorized(_))
        ));
        assert!(auth.check(remote, Some(&format!("Bearer {TOKEN}"))).is_ok());
    }

    #[test]
    fn new_tokens_are_added_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etc/gear/tokens");
        let a = new_token(&file).unwrap();
        let b = new_token(&file).unwrap();
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert_eq!(parse(&std::fs::read_to_string(&file).unwrap()), [a, b]);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_file_others_can_read_or_no_file_refuses_every_remote_request() {
        let remote = &tcp("10.0.0.2");
        let (_dir, auth) = auth_with(TOKEN, 0o644);
        let err = auth
            .check(remote, Some(&format!("Bearer {TOKEN}")))
            .unwrap_err();
        assert!(err.to_string().contains("mode 0600"), "{err}");
        let auth = Auth::new("/nonexistent/tokens".into());
        let err = auth
            .check(remote, Some(&format!("Bearer {TOKEN}")))
            .unwrap_err();
        assert!(err.to_string().contains("gear new-token"), "{err}");
    }

    #[test]
    fn loopback_can_be_made_to_need_a_token() {
        let (_dir, auth) = auth_with(TOKEN, 0o600);
        let auth = auth.loopback_needs_token(true);
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let err = auth.check(&tcp(ip), None).unwrap_err();
            assert!(err.to_string().contains("even on loopback"), "{ip}: {err}");
            assert!(
                auth.check(&tcp(ip), Some(&format!("Bearer {TOKEN}")))
                    .is_ok()
            );
        }
    }

    #[test]
    fn the_unix_socket_lets_in_root_and_its_group_only() {
        let auth = Auth::new("/nonexistent/tokens".into());
        let me = std::process::id() as i32;
        let root = Peer::Unix { uid: 0, pid: None };
        let user = Peer::Unix {
            uid: 1000,
            pid: Some(me),
        };
        assert!(auth.check(&root, None).is_ok());
        let err = auth.check(&user, None).unwrap_err();
        assert!(
            err.to_string().contains("uid 1000 is neither root"),
            "{err}"
        );
        // A token does not stand in for the socket's group.
        assert!(auth.check(&user, Some(&format!("Bearer {TOKEN}"))).is_err());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let my_gid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Gid:"))
            .and_then(|r| r.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            auth.clone()
                .unix_group(Some(my_gid))
                .check(&user, None)
                .is_ok()
        );
        assert!(
            auth.unix_group(Some(4_000_000_123))
                .check(&user, None)
                .is_err()
        );
    }
}
