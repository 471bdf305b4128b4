//! gear-enterd: serves one SSH session, as root, on the connection gear-enter.socket
//! accepted (`Accept=yes`: the connection is stdin). The caller's uid, from the kernel,
//! chooses the container; see gear::enter.

use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use clap::Parser;
use gear::paths::Paths;

/// Serve one session into a container on the socket connection on stdin.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// More logging on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gear::logging::init(cli.verbose.max(1));
    let conn = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(e) => {
            eprintln!("error: stdin is not the connection: {e}");
            return ExitCode::FAILURE;
        }
    };
    gear::enter::server::serve(&Paths::system(), &conn);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
