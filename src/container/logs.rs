//! A container's log: its unit's journal, read through `journalctl`, followed for a
//! bounded time so an HTTP answer always ends.

use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use crate::id::ContainerId;

/// The journal reader; `GEAR_JOURNALCTL` replaces it (tests use a stand-in).
fn journalctl() -> String {
    std::env::var("GEAR_JOURNALCTL").unwrap_or_else(|_| "/usr/bin/journalctl".into())
}

/// How much of the log to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// How many past lines to start with.
    pub lines: u32,
    /// Keep sending new lines until `timeout`.
    pub follow: bool,
    /// When a followed log ends (geard's 30 s by default).
    pub timeout: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            lines: 100,
            follow: true,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A stream of log bytes.
pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Streams the journal of `id`'s unit. The stream ends when journalctl does, or at the
/// timeout; dropping it (a client that hangs up) kills journalctl.
pub fn stream(id: &ContainerId, opts: LogOptions) -> anyhow::Result<LogStream> {
    let mut cmd = Command::new(journalctl());
    cmd.args([
        "--unit",
        &id.unit_name(),
        "--no-pager",
        "--quiet",
        "--output",
        "short-iso",
    ])
    .arg(format!("--lines={}", opts.lines))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .kill_on_drop(true);
    if opts.follow {
        cmd.arg("--follow");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", journalctl()))?;
    let stdout = child.stdout.take().context("journalctl has no stdout")?;
    let chunks = futures_util::stream::unfold((stdout, child), |(mut out, child)| async move {
        let mut buf = vec![0u8; 16 * 1024];
        match out.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (out, child)))
            }
            Err(e) => Some((Err(e), (out, child))),
        }
    });
    Ok(Box::pin(
        chunks.take_until(tokio::time::sleep(opts.timeout)),
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn ends_at_the_timeout_and_passes_the_unit() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("journalctl");
        // Prints its arguments, then "follows" forever.
        std::fs::write(&fake, "#!/bin/sh\necho \"$@\"\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        unsafe_set_env(&fake);
        let id: ContainerId = "web-1".parse().unwrap();
        let opts = LogOptions {
            lines: 5,
            follow: true,
            timeout: Duration::from_millis(300),
        };
        let started = std::time::Instant::now();
        let all: Vec<Bytes> = stream(&id, opts)
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = String::from_utf8(all.concat()).unwrap();
        assert_eq!(
            text,
            "--unit ctr-web-1.service --no-pager --quiet --output short-iso --lines=5 --follow\n"
        );
    }

    #[allow(unsafe_code)]
    fn unsafe_set_env(path: &std::path::Path) {
        // SAFETY: set before the stream spawns its child; no other test touches this
        // variable, and the Rust test harness does not read it.
        unsafe { std::env::set_var("GEAR_JOURNALCTL", path) };
    }
}
