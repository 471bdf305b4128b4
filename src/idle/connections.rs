//! Open connections to a container's ports, so that a quiet but open connection (a database
//! pool, a websocket) keeps the container from idling: idling would cut it.
//!
//! Packet counters cannot see such a connection, and the host's conntrack table is not
//! always readable (`/proc/net/nf_conntrack` needs `CONFIG_NF_CONNTRACK_PROCFS`, the
//! `conntrack` program is often not installed). The container's own socket table is always
//! there: `/proc/PID/net/tcp` and `tcp6` list the sockets of the network namespace of process
//! PID, the container's main process. Every client shows up there, whichever way it came:
//! through docker-proxy (from the bridge's gateway) or through Docker's DNAT (from the
//! client's own address), over IPv4 or IPv6.
//!
//! [`SocketTables`] is the seam (reading the tables); [`open_to`] the pure part (counting in
//! them).

use std::collections::BTreeSet;
use std::fmt;

use anyhow::Context as _;

/// Reads the TCP socket tables of a process's network namespace.
pub trait SocketTables: Send + Sync + fmt::Debug + 'static {
    /// The text of `/proc/PID/net/tcp` and of `/proc/PID/net/tcp6` (when the kernel has
    /// IPv6), for the network namespace of `pid`.
    fn tables(&self, pid: u32) -> anyhow::Result<Vec<String>>;
}

/// The kernel's tables under `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcNet;

impl SocketTables for ProcNet {
    fn tables(&self, pid: u32) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for name in ["tcp", "tcp6"] {
            let path = format!("/proc/{pid}/net/{name}");
            match std::fs::read_to_string(&path) {
                Ok(text) => out.push(text),
                // No IPv6 in this kernel: no tcp6.
                Err(e) if name == "tcp6" && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {path}")),
            }
        }
        Ok(out)
    }
}

/// `st` of an established connection in `/proc/net/tcp`.
const ESTABLISHED: &str = "01";

/// How many established connections in `tables` have one of `ports` as their local port:
/// connections *to* the container's services (its own connections out have other, ephemeral
/// local ports). Lines that do not parse are skipped.
pub fn open_to(tables: &[String], ports: &BTreeSet<u16>) -> usize {
    tables
        .iter()
        .flat_map(|t| t.lines())
        .filter(|line| {
            // `sl local_address rem_address st ...`, addresses as `HEXADDR:HEXPORT`.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(st)) = (fields.get(1), fields.get(3)) else {
                return false;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            *st == ESTABLISHED && port.is_some_and(|p| ports.contains(&p))
        })
        .count()
}

#[cfg(test)]
pub mod fake {
    //! Socket tables a test writes.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::SocketTables;

    /// Tables by pid; a pid without tables fails to read, like a process that is gone.
    #[derive(Debug, Default)]
    pub struct FakeTables {
        /// What `tables(pid)` returns.
        pub by_pid: Mutex<HashMap<u32, Vec<String>>>,
    }

    impl SocketTables for FakeTables {
        fn tables(&self, pid: u32) -> anyhow::Result<Vec<String>> {
            self.by_pid
                .lock()
                .unwrap()
                .get(&pid)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no process {pid}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the kernel prints them (trimmed after the inode): a listener on 8080 (0x1F90), a
    /// client through docker-proxy (from 10.213.0.1), one closing, and a connection of the
    /// container's own out to port 5432 from ephemeral port 40000 (0x9C40).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10001 1
   1: 0200D50A:1F90 0100D50A:B2C4 01 00000000:00000000 00:00000000 00000000     0        0 10002 1
   2: 0200D50A:1F90 0100D50A:B2C6 06 00000000:00000000 03:00000A8C 00000000     0        0 0 3
   3: 0200D50A:9C40 0500D50A:1538 01 00000000:00000000 00:00000000 00000000     0        0 10003 1
";

    /// A client over IPv6 to port 8081 (0x1F91).
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20001 1
   1: 0000000000000000FFFF00000200D50A:1F91 0000000000000000FFFF00000100D50A:C350 01 00000000:00000000 00:00000000 00000000     0        0 20002 1
";

    fn ports(p: &[u16]) -> BTreeSet<u16> {
        p.iter().copied().collect()
    }

    #[test]
    fn counts_established_connections_to_the_ports_only() {
        let tables = [TCP.to_string(), TCP6.to_string()];
        assert_eq!(open_to(&tables, &ports(&[8080])), 1);
        assert_eq!(open_to(&tables, &ports(&[8081])), 1);
        assert_eq!(open_to(&tables, &ports(&[8080, 8081])), 2);
        // Its own connection out (local port 40000) is not a client.
        assert_eq!(open_to(&tables, &ports(&[5432, 3000])), 0);
        assert_eq!(open_to(&[], &ports(&[8080])), 0);
        assert_eq!(open_to(&["garbage\n\n1: x".into()], &ports(&[8080])), 0);
    }
}
