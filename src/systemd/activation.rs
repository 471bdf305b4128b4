//! The listening socket handed over by systemd (`gear-api.socket`), per sd_listen_fds(3).

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

use anyhow::{Context as _, bail};

/// Takes the one stream socket systemd passed in `LISTEN_FDS`, or `None` when not
/// socket-activated. Call it before any thread starts, as sd_listen_fds(3) requires.
pub fn listener_from_env() -> anyhow::Result<Option<TcpListener>> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .context("reading LISTEN_FDS")?
        .collect();
    match fds.as_slice() {
        [] => Ok(None),
        [fd] => Ok(Some(adopt(*fd))),
        more => bail!(
            "systemd passed {} sockets; gear-api.socket must have exactly one ListenStream=",
            more.len()
        ),
    }
}

#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> TcpListener {
    // SAFETY: sd_notify::listen_fds() returned this fd because LISTEN_PID names this
    // process, so systemd opened it for us and nothing else in the process owns it; it is
    // taken exactly once, here.
    unsafe { TcpListener::from_raw_fd(fd) }
}
