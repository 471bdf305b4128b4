//! gear: the command line. Sends requests to gear agents (`gear-api`) on one or many
//! hosts, named by locators `HOST[:PORT]/ID` (`localhost` is this machine's agent).
//! The commands are defined and carried out in `gear::cli::command`.

use std::process::ExitCode;

use clap::Parser;
use gear::cli::command::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    gear::logging::init(cli.verbose);
    let runtime = match gear::runtime::current_thread() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e:#}");
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

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        gear::cli::command::Cli::command().debug_assert();
    }
}
