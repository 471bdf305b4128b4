//! gear-step: the steps a container unit runs around `docker run` (`ExecStart`,
//! `ExecStartPost`, `ExecStopPost` of `ctr-<id>.service`), each a few calls to
//! the Engine API on Docker's socket. A failure fails the step; the reason goes to the
//! unit's journal.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gear::container::step;
use gear::docker::DockerApi;
use gear::id::ContainerId;
use gear::netfilter::Iptables;
use gear::paths::Paths;

/// Where dockerd writes its process id (its default `--pidfile`).
const DOCKER_PID_FILE: &str = "/run/docker.pid";

/// Run one step of a container unit.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    step: Step,
    /// More logging on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// The unit's `ExecStart`: prepare (as `prepare`), then become COMMAND (`docker run
    /// ...`) in the same process.
    Run {
        /// The container.
        id: ContainerId,
        /// The command to become, with its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Before `docker run`: remove a container a crash left behind, mark the start (the
    /// `ExecStartPre` of units written before `run` did this).
    Prepare {
        /// The container.
        id: ContainerId,
    },
    /// After `docker run` is started: wait until the container runs (failing when
    /// `docker run`, `$MAINPID`, ends first), then apply its network links.
    Started {
        /// The container.
        id: ContainerId,
        /// The main process is `gear-step run`: first wait until it has prepared (it may
        /// still be removing a leftover container when this starts).
        #[arg(long)]
        after_run: bool,
    },
    /// After the unit stopped: remove the container and the start mark (only the mark when
    /// systemd's $EXIT_CODE and $EXIT_STATUS say `docker run --rm` ended by itself).
    Remove {
        /// The container.
        id: ContainerId,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gear::logging::init(cli.verbose.max(1));
    let result = gear::runtime::current_thread().and_then(|runtime| {
        let (paths, docker) = (Paths::system(), DockerApi::default());
        runtime.block_on(async {
            match &cli.step {
                Step::Run { id, .. } => {
                    step::prepare(&paths, &docker, id, Some(std::process::id())).await
                }
                Step::Prepare { id } => step::prepare(&paths, &docker, id, None).await,
                Step::Started { id, after_run } => {
                    // systemd sets MAINPID for start-post commands; without it, only the
                    // container's own end can fail the wait.
                    let main = std::env::var("MAINPID").ok().and_then(|p| p.parse().ok());
                    let alive = move || main.is_none_or(step::process_alive);
                    if let (true, Some(pid)) = (*after_run, main) {
                        step::wait_prepared(&paths, id, pid, alive).await?;
                    }
                    step::started(&paths, &docker, &Iptables, id, alive).await
                }
                Step::Remove { id } => {
                    let up = step::engine_running(std::path::Path::new(DOCKER_PID_FILE));
                    let var = |name| std::env::var(name).ok();
                    let end = step::MainEnd::from_systemd(
                        var("EXIT_CODE").as_deref(),
                        var("EXIT_STATUS").as_deref(),
                    );
                    step::remove(&paths, &docker, id, up, end).await
                }
            }
        })
    });
    let result = match (result, &cli.step) {
        (Ok(()), Step::Run { command, .. }) => Err(step::become_command(command)),
        (result, _) => result,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match cli.step {
                // As `docker run` fails on its own errors: the stop step then asks Docker
                // what is left instead of taking the container for removed.
                Step::Run { .. } => ExitCode::from(step::RUN_FAILED),
                _ => ExitCode::FAILURE,
            }
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
