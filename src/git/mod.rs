//! Git repositories on the host: bare repositories under
//! [`crate::paths::Paths::repositories`], each owned by its own Unix user `git-ID`, reached
//! over the host's sshd with keys that `gear-keys` prints (docs/git.md).
//!
//! - [`refname`]: the refs an archive may name, and its formats;
//! - [`source`]: the URLs a repository may be cloned from;
//! - [`shell`]: `gear-git-shell`, the forced command of repository keys;
//! - [`repo`]: repositories, their lock, delete, list;
//! - [`create`]: create, empty or cloned with progress, whole or not at all;
//! - [`archive`]: `git archive` of any branch, tag or commit, streamed.

pub mod archive;
pub mod create;
pub mod refname;
pub mod repo;
pub mod shell;
pub mod source;

use std::path::Path;
use std::process::Command;

/// The `PATH` git runs with: sshd's and the agent's own may differ.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Who git runs as: the repository's user (so every file it writes is that user's, and a
/// repository or URL can never make root run anything), or the caller in unit tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// The uid.
    pub uid: u32,
    /// The gid.
    pub gid: u32,
}

/// A `git` command for `repo` with a clean environment: no inherited `GIT_*` variable can
/// point it elsewhere, `HOME` is the repository (no user configuration applies), hooks
/// are the repository's own `hooks/` whatever the system configuration says, and it never
/// prompts.
pub fn git(repo: &Path, run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", PATH)
        .env("HOME", repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C")
        .arg("-c")
        .arg(format!("core.hooksPath={}", repo.join("hooks").display()));
    if let Some(who) = run_as {
        use std::os::unix::process::CommandExt as _;
        // std drops root's supplementary groups when it changes the uid.
        cmd.uid(who.uid).gid(who.gid);
    }
    cmd
}
