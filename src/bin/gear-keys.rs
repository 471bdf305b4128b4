//! gear-keys: sshd's `AuthorizedKeysCommand` (units/sshd_config.d/40-gear-keys.conf).
//! `gear-keys USER` prints the authorized keys of login `ctr-ID` and nothing else: stdout
//! is sshd's protocol, reasons go to stderr. Runs as the unprivileged user `gear-keys`.

use std::process::ExitCode;

use clap::Parser;
use gear::paths::Paths;

/// Print the SSH keys that may log in as USER (a container's login, ctr-ID), each
/// restricted to entering that container.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// The user sshd is authenticating (sshd's %u).
    user: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    // An unknown user or a broken key file is not a failure: sshd gets the keys there
    // are (none, for a user that is not a container's). Only a broken pipe to sshd is.
    match gear::keys::authorized::print_for(&Paths::system(), &cli.user, &mut out, &mut err) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing keys for {}: {e}", cli.user);
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
