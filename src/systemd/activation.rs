//! The listening sockets handed over by systemd (`gear-api.socket`), per sd_listen_fds(3).

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use anyhow::Context as _;

/// A listening socket from systemd: one per `ListenStream=`, TCP or Unix.
#[derive(Debug)]
pub enum Listener {
    /// `ListenStream=ADDRESS:PORT`.
    Tcp(TcpListener),
    /// `ListenStream=/PATH`.
    Unix(UnixListener),
}

impl Listener {
    /// Makes the socket non-blocking, as tokio needs.
    pub fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l) => l.set_nonblocking(true),
        }
    }
}

/// Takes the stream sockets systemd passed in `LISTEN_FDS` (one per `ListenStream=`),
/// none when not socket-activated. Call it before any thread starts, as
/// sd_listen_fds(3) requires.
pub fn listeners_from_env() -> anyhow::Result<Vec<Listener>> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .context("reading LISTEN_FDS")?
        .collect();
    Ok(fds.into_iter().map(|fd| classify(adopt(fd))).collect())
}

/// Tells a TCP socket from a Unix one: only an inet socket has an inet address.
fn classify(fd: OwnedFd) -> Listener {
    let tcp = TcpListener::from(fd);
    match tcp.local_addr() {
        Ok(_) => Listener::Tcp(tcp),
        Err(_) => Listener::Unix(UnixListener::from(OwnedFd::from(tcp))),
    }
}

#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: sd_notify::listen_fds() returned this fd because LISTEN_PID names this
    // process, so systemd opened it for us and nothing else in the process owns it; it is
    // taken exactly once, here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_sockets_are_told_apart() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(matches!(classify(OwnedFd::from(tcp)), Listener::Tcp(_)));
        let dir = tempfile::tempdir().unwrap();
        let unix = UnixListener::bind(dir.path().join("s")).unwrap();
        assert!(matches!(classify(OwnedFd::from(unix)), Listener::Unix(_)));
    }
}
