//! The safer defaults every container gets from Docker, and what an install may relax:
//! no privilege gain through setuid programs (`--security-opt no-new-privileges`), no raw
//! sockets (`--cap-drop NET_RAW`: no ping, no packet forging), a bound on its processes
//! (`--pids-limit`), and no host port below 1024 unless asked for. docs/containers.md.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use super::ports::PortRequest;
use super::spec::InvalidField;
use crate::serde_str::serde_via_str;

/// The processes (and threads) a container may have at once, unless its install says
/// otherwise: far above what a service needs, far below what a fork bomb wants.
pub const DEFAULT_PIDS_LIMIT: u32 = 4096;

/// The lowest host port an install may publish without [`Relax::PrivilegedPorts`].
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// One default a container may do without (`--relax WHAT`, `"Relax": ["WHAT"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Relax {
    /// `new-privileges`: setuid programs in the image (sudo, su, ping of old images) work.
    NewPrivileges,
    /// `net-raw`: raw and packet sockets (ping, traceroute, DHCP clients).
    NetRaw,
    /// `pids-limit`: no bound on its processes.
    PidsLimit,
    /// `privileged-ports`: host ports below 1024 may be published.
    PrivilegedPorts,
}

impl Relax {
    /// Every relaxation, in the order `--help` lists them.
    pub const ALL: [Relax; 4] = [
        Relax::NewPrivileges,
        Relax::NetRaw,
        Relax::PidsLimit,
        Relax::PrivilegedPorts,
    ];

    /// The name in flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Relax::NewPrivileges => "new-privileges",
            Relax::NetRaw => "net-raw",
            Relax::PidsLimit => "pids-limit",
            Relax::PrivilegedPorts => "privileged-ports",
        }
    }
}

impl FromStr for Relax {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Relax::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidField::Relax(s.to_string()))
    }
}

impl fmt::Display for Relax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
serde_via_str!(Relax);

/// Refuses explicit host ports below 1024 unless `relax` allows them: such a port is a
/// system service's (ssh, http, dns), and taking one should never be an accident.
pub fn check_ports(ports: &[PortRequest], relax: &[Relax]) -> Result<(), InvalidField> {
    if relax.contains(&Relax::PrivilegedPorts) {
        return Ok(());
    }
    match ports
        .iter()
        .find(|p| p.external != 0 && p.external < FIRST_UNPRIVILEGED_PORT)
    {
        Some(p) => Err(InvalidField::PrivilegedPort(p.external)),
        None => Ok(()),
    }
}

/// The `docker run` options of these defaults, less what `relax` takes away.
pub fn docker_args(relax: &[Relax], pids_limit: Option<NonZeroU32>) -> Vec<String> {
    let mut argv = vec![];
    if !relax.contains(&Relax::NewPrivileges) {
        argv.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    if !relax.contains(&Relax::NetRaw) {
        argv.extend(["--cap-drop".into(), "NET_RAW".into()]);
    }
    if !relax.contains(&Relax::PidsLimit) {
        let limit = pids_limit.map_or(DEFAULT_PIDS_LIMIT, NonZeroU32::get);
        argv.extend(["--pids-limit".into(), limit.to_string()]);
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(external: u16) -> PortRequest {
        PortRequest {
            internal: "80".parse().unwrap(),
            external,
        }
    }

    #[test]
    fn every_default_is_on_unless_relaxed() {
        assert_eq!(
            docker_args(&[], None).join(" "),
            "--security-opt no-new-privileges --cap-drop NET_RAW --pids-limit 4096"
        );
        assert_eq!(
            docker_args(&[], NonZeroU32::new(50)).join(" "),
            "--security-opt no-new-privileges --cap-drop NET_RAW --pids-limit 50"
        );
        assert_eq!(
            docker_args(&[Relax::NetRaw, Relax::PidsLimit], None).join(" "),
            "--security-opt no-new-privileges"
        );
        assert!(docker_args(&Relax::ALL, None).is_empty());
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for r in Relax::ALL {
            assert_eq!(r.as_str().parse::<Relax>().unwrap(), r);
        }
        let err = "net_raw".parse::<Relax>().unwrap_err().to_string();
        assert!(
            err.contains("new-privileges, net-raw, pids-limit, privileged-ports"),
            "{err}"
        );
    }

    #[test]
    fn host_ports_below_1024_need_asking_for() {
        assert!(check_ports(&[port(0), port(1024), port(8080)], &[]).is_ok());
        let err = check_ports(&[port(4000), port(80)], &[]).unwrap_err();
        assert_eq!(err, InvalidField::PrivilegedPort(80));
        assert!(
            err.to_string().contains("--relax privileged-ports"),
            "{err}"
        );
        assert!(check_ports(&[port(80)], &[Relax::PrivilegedPorts]).is_ok());
    }
}
