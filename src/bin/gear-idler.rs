//! gear-idler: idles containers that have had no traffic for their `--idle-after`, and wakes
//! idle ones on the first connection to a published port. Runs as `gear-idler.service`;
//! `docs/idling.md` explains how.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gear::container::host::{Host, System};
use gear::container::ports::PortRange;
use gear::docker::DockerApi;
use gear::idle::wakes::WakeLimits;
use gear::idle::{queue::NfQueue, rules::QUEUE};
use gear::idler::{Options, run};
use gear::netfilter::Iptables;
use gear::paths::Paths;
use gear::systemd::dbus::Dbus;

/// Idle quiet containers; wake idle ones when a connection comes.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// How often traffic is measured and firewall rules reconciled.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = gear::duration::parse)]
    tick: Duration,
    /// How long a wake may take before held connections are let go anyway.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = gear::duration::parse)]
    wake_timeout: Duration,
    /// After a failed wake, refuse connections at once for this long before trying again.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = gear::duration::parse)]
    retry_after: Duration,
    /// Wakes one client (an IPv4 address, an IPv6 /64) may cause per --wake-window; past
    /// it, its connections to idle containers are refused instead.
    #[arg(long, value_name = "N", default_value_t = WakeLimits::default().per_source)]
    wakes_per_source: u32,
    /// Wakes all clients together may cause per --wake-window.
    #[arg(long, value_name = "N", default_value_t = WakeLimits::default().overall)]
    wakes: u32,
    /// The window of --wakes-per-source and --wakes.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = gear::duration::parse)]
    wake_window: Duration,
    /// More logging on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gear::logging::init(cli.verbose.max(1));
    match run_idler(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_idler(cli: Cli) -> anyhow::Result<()> {
    let queue = NfQueue::open(QUEUE)?;
    let opts = Options {
        tick: cli.tick.max(Duration::from_millis(100)),
        wake_timeout: cli.wake_timeout,
        retry_after: cli.retry_after,
        wakes: WakeLimits {
            per_source: cli.wakes_per_source,
            overall: cli.wakes,
            window: cli.wake_window,
        },
    };
    // The port range is the agent's business: the idler allocates no port.
    let host: Host<System> = Host::new(
        Paths::system(),
        Dbus::new(),
        DockerApi::default(),
        Iptables,
        PortRange::default(),
    );
    let runtime = gear::runtime::current_thread()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        run(Arc::new(host), queue, opts, shutdown).await
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
