//! gear-builder: runs one build in its transient unit `gear-build-<tag>.service`, which
//! the agent starts (docs/builds.md). `run` builds and records the result; `finish` is
//! the unit's stop step.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gear::build::builder;
use gear::build::record::BuildId;
use gear::paths::Paths;

/// Run one gear build (started by gear-api as a transient unit, not by hand).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Carry out build ID: fetch the source, build the image, record the result.
    Run(Target),
    /// The unit's stop step: remove the build's containers, record a killed build.
    Finish(Target),
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The root the state directory is under.
    #[arg(long, default_value = "/")]
    root: std::path::PathBuf,
    /// The build's number.
    id: BuildId,
}

fn main() -> ExitCode {
    gear::logging::init(0);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(t) => builder::run_recorded(&Paths::new(t.root), &t.id),
        Command::Finish(t) => builder::finish(&Paths::new(t.root), &t.id).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gear-builder: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
