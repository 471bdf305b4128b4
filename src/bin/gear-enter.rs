//! gear-enter: the forced command of container keys (see gear-keys). Runs as the login
//! `ctr-ID`, with no privilege; asks gear-enterd (gear-enter.socket) to run the session's
//! command, `SSH_ORIGINAL_COMMAND`, or a login shell in that container, and exits with
//! the command's status.

use std::process::ExitCode;

use clap::Parser;
use gear::enter::Hello;
use gear::paths::Paths;

/// Run the SSH session's command (or a shell) in the container of this login.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    let hello = Hello {
        command: std::env::var("SSH_ORIGINAL_COMMAND").ok(),
        term: std::env::var("TERM").ok(),
    };
    let result = gear::runtime::current_thread()
        .and_then(|rt| rt.block_on(gear::enter::client::run(&Paths::system(), &hello)));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("gear-enter: {e:#}");
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
