//! `gear-enter`: the forced command of container keys. Hands the session's descriptors to
//! `gear-enterd` and exits with the status of the command run in the container.

use std::io::{IoSlice, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;

use anyhow::Context as _;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::signal::unix::{SignalKind, signal};

use super::{Hello, WINDOW_CHANGED, parse_answer};
use crate::paths::Paths;

/// Runs one session; returns the command's exit status.
pub async fn run(paths: &Paths, hello: &Hello) -> anyhow::Result<i32> {
    let socket = paths.enter_socket();
    let mut conn = UnixStream::connect(&socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let line = serde_json::to_string(hello)? + "\n";
    anyhow::ensure!(line.len() <= super::MAX_HELLO, "the command is too long");
    // stdin, stdout, stderr: the session itself, handed over whole (a pty stays a pty).
    let fds = [0, 1, 2];
    let sent = sendmsg::<()>(
        conn.as_raw_fd(),
        &[IoSlice::new(line.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("handing the session to gear-enterd")?;
    conn.write_all(&line.as_bytes()[sent..])?;

    conn.set_nonblocking(true)?;
    let conn = tokio::net::UnixStream::from_std(conn)?;
    let (read, mut write) = conn.into_split();
    let mut answer = BufReader::new(read).lines();
    let mut winch = signal(SignalKind::window_change())?;
    loop {
        tokio::select! {
            _ = winch.recv() => {
                // The pty is the same on both sides; docker exec reads the new size itself.
                write.write_all(&[WINDOW_CHANGED]).await.ok();
            }
            line = answer.next_line() => {
                return match line.context("reading gear-enterd's answer")? {
                    Some(line) => parse_answer(&line),
                    None => Err(anyhow::anyhow!("gear-enterd ended the session without an answer")),
                };
            }
        }
    }
}
