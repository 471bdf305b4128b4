//! The agent's sockets: TCP (`127.0.0.1:43273`, or network addresses for other hosts) and
//! the local Unix socket `/run/gear/api.sock`, whose callers the kernel names
//! (`SO_PEERCRED`), so they need no token.

use std::fmt;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// One listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix stream socket.
    Unix(UnixListener),
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A TCP client at this address.
    Tcp(SocketAddr),
    /// A local process, as the kernel saw it when it connected.
    Unix {
        /// Its user.
        uid: u32,
        /// Its process, when the kernel says.
        pid: Option<i32>,
    },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix {
                uid,
                pid: Some(pid),
            } => write!(f, "uid {uid} (pid {pid})"),
            Peer::Unix { uid, pid: None } => write!(f, "uid {uid}"),
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Conn {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over the Unix socket.
    Unix(UnixStream),
}

impl Listener {
    /// Takes over a socket from systemd or `--listen`; it must be non-blocking.
    pub fn from_std(l: crate::systemd::activation::Listener) -> std::io::Result<Listener> {
        use crate::systemd::activation::Listener as Std;
        match l {
            Std::Tcp(l) => TcpListener::from_std(l).map(Listener::Tcp),
            Std::Unix(l) => UnixListener::from_std(l).map(Listener::Unix),
        }
    }

    /// The filesystem path of a Unix socket.
    pub fn unix_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Listener::Tcp(_) => None,
            Listener::Unix(l) => l.local_addr().ok()?.as_pathname().map(Into::into),
        }
    }

    /// Whether other hosts can connect: a TCP socket on an address other than loopback
    /// (the wildcard address included).
    pub fn faces_other_hosts(&self) -> bool {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .is_ok_and(|a| !a.ip().to_canonical().is_loopback()),
            Listener::Unix(_) => false,
        }
    }

    async fn accept(&self) -> std::io::Result<(Conn, Peer)> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Conn::Tcp(s), Peer::Tcp(addr)))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let cred = s.peer_cred()?;
                let peer = Peer::Unix {
                    uid: cred.uid(),
                    pid: cred.pid(),
                };
                Ok((Conn::Unix(s), peer))
            }
        }
    }
}

/// Accepts the next connection on whichever listener has one.
pub async fn accept_any(listeners: &[Listener]) -> std::io::Result<(Conn, Peer)> {
    let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
    futures_util::future::select_all(accepts).await.0
}

/// Whether process `pid` has group `gid` (primary or supplementary), from
/// `/proc/<pid>/status`; false when that cannot be read.
pub fn process_in_group(pid: i32, gid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status.lines().any(|line| {
        let ids = match (line.strip_prefix("Gid:"), line.strip_prefix("Groups:")) {
            // Gid: real, effective, saved, filesystem; the effective one counts.
            (Some(rest), _) => rest
                .split_whitespace()
                .nth(1)
                .into_iter()
                .collect::<Vec<_>>(),
            (_, Some(rest)) => rest.split_whitespace().collect(),
            _ => Vec::new(),
        };
        ids.iter().any(|id| id.parse() == Ok(gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_in_its_own_group_only() {
        let me = std::process::id() as i32;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let gid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Gid:"))
            .and_then(|r| r.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert!(process_in_group(me, gid));
        assert!(!process_in_group(me, 4_000_000_123));
        assert!(!process_in_group(-1, gid));
    }

    #[tokio::test]
    async fn unix_peers_are_named_by_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let l = Listener::Unix(UnixListener::bind(&path).unwrap());
        assert_eq!(l.unix_path().unwrap(), path);
        let _client = UnixStream::connect(&path).await.unwrap();
        let (_conn, peer) = accept_any(std::slice::from_ref(&l)).await.unwrap();
        let Peer::Unix { uid, pid } = peer else {
            panic!("{peer}")
        };
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let my_uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
        assert_eq!(my_uid.split_whitespace().nth(1).unwrap(), uid.to_string());
        assert_eq!(pid, Some(std::process::id() as i32));
    }
}
