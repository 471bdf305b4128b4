//! SSH sessions into containers without setuid: `gear-enter` (the forced command of every
//! container key, running as the login `ctr-ID`) asks the root helper `gear-enterd`
//! (started per connection by `gear-enter.socket`, `Accept=yes`) for a session.
//!
//! The protocol on the Unix socket (`docs/ssh.md` has the picture):
//! 1. `gear-enter` sends one JSON line, [`Hello`], and with it, as `SCM_RIGHTS`, its
//!    stdin, stdout and stderr (the SSH session's pipes or pty);
//! 2. `gear-enterd` reads the caller's uid with `SO_PEERCRED` (the kernel's word, not the
//!    caller's), maps it to the one container whose user has that uid, and runs
//!    `docker exec` in it as that uid, on the received descriptors;
//! 3. while it runs, each `W` byte from `gear-enter` means "the window changed" (the
//!    session's SIGWINCH), passed on to `docker exec`, which resizes the container's pty;
//!    if `gear-enter` goes away (the SSH connection dropped), the session is ended;
//! 4. `gear-enterd` answers one line, `exit N` (the command's status) or `error MESSAGE`.
//!
//! Nothing the caller sends names a container: which one is decided by its uid alone.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

/// What `gear-enter` asks for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Hello {
    /// The command to run (`SSH_ORIGINAL_COMMAND`); none for a login shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The terminal type (`TERM`), for sessions with a pty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
}

/// The longest [`Hello`] line accepted (a command line of 32 KiB, and then some).
pub const MAX_HELLO: usize = 40 * 1024;

/// The byte that means "the window size changed".
pub const WINDOW_CHANGED: u8 = b'W';

/// The answer line for a session that ended with `code`, or failed.
pub fn answer(result: &anyhow::Result<i32>) -> String {
    match result {
        Ok(code) => format!("exit {code}\n"),
        Err(e) => format!("error {}\n", format!("{e:#}").replace('\n', " ")),
    }
}

/// Reads an answer line back.
pub fn parse_answer(line: &str) -> anyhow::Result<i32> {
    let line = line.trim_end();
    if let Some(code) = line.strip_prefix("exit ") {
        return code
            .parse()
            .map_err(|_| anyhow::anyhow!("bad exit status from gear-enterd: {line}"));
    }
    match line.strip_prefix("error ") {
        Some(message) => Err(anyhow::anyhow!("{message}")),
        None => Err(anyhow::anyhow!(
            "unexpected answer from gear-enterd: {line}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip() {
        assert_eq!(parse_answer(&answer(&Ok(3))).unwrap(), 3);
        let e = parse_answer(&answer(&Err(anyhow::anyhow!("no\ncontainer")))).unwrap_err();
        assert_eq!(e.to_string(), "no container");
        assert!(parse_answer("exit x").is_err());
        assert!(parse_answer("hello").is_err());
    }
}
