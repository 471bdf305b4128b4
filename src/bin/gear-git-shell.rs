//! gear-git-shell: the forced command of every repository key (`gear-keys` prints
//! `command="/usr/libexec/gear/gear-git-shell read|write"`). sshd runs it as the
//! repository's user `git-ID`; it runs git's upload-pack, upload-archive or (write keys)
//! receive-pack on that user's own repository and refuses anything else on stderr.
//! stdin and stdout are git's protocol.

use std::process::ExitCode;

use clap::Parser;
use gear::git::shell::{self, Access};
use gear::paths::Paths;

/// Run the git command the SSH client asked for (SSH_ORIGINAL_COMMAND) on the caller's
/// own repository, if the key's access allows it.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// What the key may do: read (clone, fetch, archive) or write (push too).
    access: Access,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    // Returns only on refusal: git replaces the process otherwise.
    let code = shell::run(
        &Paths::system(),
        cli.access,
        command.as_deref(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
