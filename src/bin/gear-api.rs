//! gear-api: the HTTP agent. Socket-activated by `gear-api.socket` (port 43273); answers
//! the routes of `docs/api.md`, reports READY to systemd, and may exit when idle.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gear::api::limits::Limits;
use gear::api::server::{ServeOptions, serve};
use gear::container::host::{Host, System};
use gear::container::ports::PortRange;
use gear::docker::DockerApi;
use gear::netfilter::Iptables;
use gear::paths::Paths;
use gear::systemd::activation::{self, Listener};
use gear::systemd::dbus::Dbus;

/// The gear agent: installs and controls containers on this host over HTTP.
///
/// Normally started by systemd through gear-api.socket, which passes the listening socket.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Listen on this address instead of a socket from systemd (for development only).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Also listen on a Unix socket at this path (for development only; systemd passes
    /// /run/gear/api.sock).
    #[arg(long, value_name = "PATH")]
    listen_unix: Option<std::path::PathBuf>,
    /// Ask clients on loopback TCP for a token too; root (and the socket's group) use the
    /// Unix socket without one.
    #[arg(long)]
    loopback_needs_token: bool,
    /// Exit after this long without any open connection (e.g. 120s); gear-api.socket
    /// starts the agent again on the next connection. Never, if not given.
    #[arg(long, value_name = "DURATION", value_parser = gear::duration::parse)]
    exit_idle_time: Option<Duration>,
    /// Close a connection whose request head has not arrived this long after the agent
    /// started waiting for it (new and kept-alive connections alike).
    #[arg(long, value_name = "DURATION", value_parser = gear::duration::parse, default_value = "30s")]
    header_timeout: Duration,
    /// Serve at most this many connections at once; more wait in the kernel's backlog.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Stream at most this many log answers at once; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_log_followers)]
    max_log_followers: usize,
    /// Also answer requests whose Host is this name (repeatable); IP addresses, localhost
    /// and this host's own name are always answered.
    #[arg(long = "host-name", value_name = "NAME")]
    host_names: Vec<String>,
    /// Host ports handed out when an install asks for port 0, less the kernel's ephemeral
    /// ports (net.ipv4.ip_local_port_range) when the range has others.
    #[arg(long, value_name = "FIRST-LAST", default_value = "4000-60000")]
    port_range: PortRange,
    /// Allow bind mounts of /, /etc, /var/lib/containers, the Docker socket, and of
    /// directories holding them (each hands a container the host).
    #[arg(long)]
    allow_system_mounts: bool,
    /// More logging on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    gear::runtime::keep_heap();
    let cli = Cli::parse();
    gear::logging::init(cli.verbose.max(1));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // LISTEN_FDS must be taken before any thread exists (sd_listen_fds(3)).
    let mut listeners = activation::listeners_from_env()?;
    if listeners.is_empty() {
        if let Some(addr) = cli.listen {
            let l = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            listeners.push(Listener::Tcp(l));
        }
        if let Some(path) = &cli.listen_unix {
            let l = std::os::unix::net::UnixListener::bind(path)
                .with_context(|| format!("binding {}", path.display()))?;
            listeners.push(Listener::Unix(l));
        }
    }
    anyhow::ensure!(
        !listeners.is_empty(),
        "no socket from systemd: start gear-api.socket, or pass --listen ADDR:PORT for development"
    );
    for l in &listeners {
        l.set_nonblocking()
            .context("making the listener non-blocking")?;
    }
    let runtime = gear::runtime::current_thread()?;
    runtime.block_on(async {
        let listeners = listeners
            .into_iter()
            .map(gear::api::listener::Listener::from_std)
            .collect::<Result<Vec<_>, _>>()?;
        let paths = Paths::system();
        let tls = gear::tls::server::ServerTls::load(&paths);
        let remote = listeners
            .iter()
            .any(gear::api::listener::Listener::faces_other_hosts);
        gear::tls::server::log_state(&tls, &paths, remote);
        let mut host: Host<System> = Host::new(
            paths,
            Dbus::new(),
            DockerApi::default(),
            Iptables,
            cli.port_range,
        );
        host.allow_system_mounts = cli.allow_system_mounts;
        host.avoid_ports =
            PortRange::ephemeral().filter(|e| cli.port_range.len_without(Some(*e)) > 0);
        host.selinux = gear::container::mcs::Selinux::probe();
        serve(
            listeners,
            Arc::new(host),
            ServeOptions {
                exit_idle: cli.exit_idle_time,
                limits: Limits {
                    header_timeout: cli.header_timeout,
                    max_connections: cli.max_connections,
                    max_log_followers: cli.max_log_followers,
                    ..Limits::default()
                },
                host_names: cli.host_names,
                loopback_needs_token: cli.loopback_needs_token,
                tls,
            },
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
