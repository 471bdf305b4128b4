//! gear-linker: applies a container's network links inside its network namespace. Run by
//! each container unit (`ExecStartPost=/usr/libexec/gear/gear-linker ID`) once the
//! container runs; a failure fails the start, and the reason is in the unit's journal.

use std::process::ExitCode;

use clap::Parser;
use gear::container::linker::apply_at_start;
use gear::docker::DockerApi;
use gear::id::ContainerId;
use gear::netfilter::Iptables;
use gear::paths::Paths;

/// Apply the network links of a running container (inside it, LOCALIP:LOCALPORT leads
/// to the linked host and port).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The container.
    id: ContainerId,
    /// More logging on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gear::logging::init(cli.verbose.max(1));
    let runtime = match gear::runtime::current_thread() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let paths = Paths::system();
    match runtime.block_on(apply_at_start(
        &paths,
        &DockerApi::default(),
        &Iptables,
        &cli.id,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: links of {}: {e:#}", cli.id);
            ExitCode::FAILURE
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
