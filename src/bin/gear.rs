//! gear: the command line. Sends requests to gear agents (`gear-api`) on one or many
//! hosts, named by locators `HOST[:PORT]/ID` (`localhost` is this machine's agent).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gear::cli::{self, Remote};
use gear::locator::HostAddr;

/// Install Docker images as containers supervised by systemd, on this host or many.
///
/// Every command talks to the gear agent (gear-api) on the hosts it names, in parallel.
/// A host is HOST or HOST:PORT (default port 43273); a container is HOST[:PORT]/ID.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// How long one agent may take to answer.
    #[arg(long, global = true, default_value = "60s", value_parser = gear::duration::parse)]
    timeout: Duration,
    /// More logging on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the containers on one or more hosts.
    ListUnits {
        /// Hosts to ask (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
        /// Include installed containers that systemd has not loaded.
        #[arg(short, long)]
        all: bool,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gear::logging::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` when some host or container failed (already reported).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let remote = Remote {
        timeout: cli.timeout,
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match cli.command {
        Command::ListUnits {
            mut hosts,
            all,
            json,
        } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            cli::list::list_units(&remote, &hosts, all, json, &mut out, &mut err).await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
