//! The listening socket handed over by systemd (`gear-api.socket`), per sd_listen_fds(3).

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

use anyhow::Context as _;

/// Takes the stream sockets systemd passed in `LISTEN_FDS` (one per `ListenStream=`),
/// none when not socket-activated. Call it before any thread starts, as
/// sd_listen_fds(3) requires.
pub fn listeners_from_env() -> anyhow::Result<Vec<TcpListener>> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .context("reading LISTEN_FDS")?
        .collect();
    Ok(fds.into_iter().map(adopt).collect())
}

#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> TcpListener {
    // SAFETY: sd_notify::listen_fds() returned this fd because LISTEN_PID names this
    // process, so systemd opened it for us and nothing else in the process owns it; it is
    // taken exactly once, here.
    unsafe { TcpListener::from_raw_fd(fd) }
}
