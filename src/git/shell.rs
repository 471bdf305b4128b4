//! `gear-git-shell`: the forced command of every repository key. sshd runs it as the
//! repository's user `git-ID` with what the client asked for in `SSH_ORIGINAL_COMMAND`;
//! it runs `git upload-pack` or `git upload-archive` (read), or `git receive-pack` (write
//! keys only), on that user's own repository, and refuses anything else with a message on
//! stderr. stdin and stdout are git's protocol and are handed to git as they are.
//!
//! The repository comes from the caller's uid, never from the command: a key of
//! repository A reaches only A, whatever path the client names.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::id::RepoId;
pub use crate::keys::repos::Access;
use crate::paths::Paths;

/// The git programs a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `git-upload-pack`: clone and fetch.
    UploadPack,
    /// `git-upload-archive`: `git archive --remote`.
    UploadArchive,
    /// `git-receive-pack`: push.
    ReceivePack,
}

impl Service {
    /// The `git` subcommand.
    pub fn subcommand(self) -> &'static str {
        match self {
            Service::UploadPack => "upload-pack",
            Service::UploadArchive => "upload-archive",
            Service::ReceivePack => "receive-pack",
        }
    }
}

/// Why a command is refused; each message says what would have worked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No command: an interactive login.
    #[error("this key reaches Git repository {0} only, no shell: git clone git-{0}@HOST:~")]
    NoCommand(RepoId),
    /// Something other than the three git programs.
    #[error(
        "'{0}' is not allowed: only git-upload-pack, git-upload-archive and git-receive-pack run here"
    )]
    NotGit(String),
    /// A push with a read-only key.
    #[error("this key may only read repository {0}: pushing needs a key added with --write")]
    ReadOnly(RepoId),
    /// Another path than the user's own repository.
    #[error("'{path}' is not repository {id}: this key reaches only git-{id}@HOST:~")]
    OtherPath {
        /// The path the client named.
        path: String,
        /// The user's repository.
        id: RepoId,
    },
}

/// What to run: the git program, on the repository at this path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCommand {
    /// The program.
    pub service: Service,
    /// The repository (always the caller's own).
    pub repo: PathBuf,
}

/// Decides what `SSH_ORIGINAL_COMMAND` may run for the user of repository `id`, whose key
/// has `access`.
pub fn decide(
    paths: &Paths,
    id: &RepoId,
    access: Access,
    command: Option<&str>,
) -> Result<GitCommand, Refusal> {
    let command = command.map(str::trim).unwrap_or_default();
    if command.is_empty() {
        return Err(Refusal::NoCommand(id.clone()));
    }
    let not_git = || Refusal::NotGit(crate::keys::shorten(command));
    let (verb, rest) = split_verb(command).ok_or_else(not_git)?;
    let service = match verb {
        "git-upload-pack" | "git upload-pack" => Service::UploadPack,
        "git-upload-archive" | "git upload-archive" => Service::UploadArchive,
        "git-receive-pack" | "git receive-pack" => Service::ReceivePack,
        _ => return Err(not_git()),
    };
    let path = unquote(rest).ok_or_else(not_git)?;
    let repo = paths.repository(id);
    if !names_repo(&path, id, &repo) {
        return Err(Refusal::OtherPath {
            path: crate::keys::shorten(&path),
            id: id.clone(),
        });
    }
    if service == Service::ReceivePack && access == Access::Read {
        return Err(Refusal::ReadOnly(id.clone()));
    }
    Ok(GitCommand { service, repo })
}

/// `git-upload-pack 'path'` or `git upload-pack 'path'` → (verb, rest).
fn split_verb(command: &str) -> Option<(&str, &str)> {
    let (first, rest) = command.split_once(' ')?;
    if first == "git" {
        let (sub, rest) = rest.trim_start().split_once(' ')?;
        let verb = &command[..command.len() - rest.len() - 1];
        // Normalise "git  sub" spacing away: only one blank is git's form.
        return (verb == format!("git {sub}")).then_some((verb, rest.trim()));
    }
    Some((first, rest.trim()))
}

/// git quotes the path as the shell would (`'a'\''b'`); a bare word without quotes or
/// blanks is taken as it is. Anything else (two words, `;`, `$(...)`) is refused.
fn unquote(arg: &str) -> Option<String> {
    if !arg.starts_with('\'') {
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '~' | '.' | '-' | '_'));
        return plain.then(|| arg.to_string());
    }
    let mut out = String::new();
    let mut rest = arg;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'')?;
            out.push_str(&quoted[..end]);
            rest = &quoted[end + 1..];
        } else if let Some(after) = rest.strip_prefix("\\'") {
            out.push('\'');
            rest = after;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether `path`, as a client names it, is repository `id`: `~` (geard's
/// `git-ID@host:~`), `ID`, `ID.git`, `/ID`, `/ID.git` or its full path, with or without a
/// trailing `/`.
fn names_repo(path: &str, id: &RepoId, repo: &Path) -> bool {
    let p = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let id = id.as_str();
    p == "~"
        || p == id
        || p.strip_suffix(".git") == Some(id)
        || p.strip_prefix('/') == Some(id)
        || p.strip_prefix('/').and_then(|p| p.strip_suffix(".git")) == Some(id)
        || Path::new(p) == repo
}

/// The process: `gear-git-shell ACCESS` as the user of a repository. Returns the exit
/// status on refusal; on success it does not return (git replaces the process).
pub fn run(paths: &Paths, access: Access, command: Option<&str>, err: &mut impl Write) -> u8 {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten();
    let Some(id) = user.as_ref().and_then(|u| RepoId::from_login(&u.name)) else {
        let _ = writeln!(
            err,
            "gear-git-shell: uid {uid} is not the user of a Git repository"
        );
        return 1;
    };
    let git = match decide(paths, &id, access, command) {
        Ok(git) => git,
        Err(refusal) => {
            let _ = writeln!(err, "gear-git-shell: {refusal}");
            return 1;
        }
    };
    if !git.repo.join("HEAD").exists() {
        let _ = writeln!(err, "gear-git-shell: repository {id} does not exist");
        return 1;
    }
    let mut cmd = super::git(&git.repo, None);
    cmd.arg(git.service.subcommand());
    if git.service == Service::UploadPack {
        // Only this directory, never <dir>/.git.
        cmd.arg("--strict");
    }
    cmd.arg(&git.repo);
    // Protocol v2, when the client sent it and sshd let it through (AcceptEnv).
    if let Ok(v) = std::env::var("GIT_PROTOCOL")
        && v.strip_prefix("version=")
            .is_some_and(|n| n.len() == 1 && n.chars().all(|c| c.is_ascii_digit()))
    {
        cmd.env("GIT_PROTOCOL", v);
    }
    use std::os::unix::process::CommandExt as _;
    let e = cmd.exec();
    let _ = writeln!(err, "gear-git-shell: running git: {e}");
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_for(cmd: Option<&str>, access: Access) -> Result<GitCommand, Refusal> {
        let paths = Paths::new("/");
        decide(&paths, &"app1".parse().unwrap(), access, cmd)
    }

    #[test]
    fn git_programs_on_the_own_repository() {
        let repo = PathBuf::from("/var/lib/containers/git/app1");
        for (cmd, service) in [
            ("git-upload-pack '~'", Service::UploadPack),
            ("git-upload-pack '~/'", Service::UploadPack),
            ("git upload-pack '/app1.git'", Service::UploadPack),
            ("git-upload-archive 'app1'", Service::UploadArchive),
            ("git-receive-pack '~'", Service::ReceivePack),
            (
                "git-receive-pack '/var/lib/containers/git/app1'",
                Service::ReceivePack,
            ),
            ("git-upload-pack app1.git", Service::UploadPack),
            ("git-upload-pack '~'\n", Service::UploadPack),
        ] {
            assert_eq!(
                decide_for(Some(cmd), Access::Write),
                Ok(GitCommand {
                    service,
                    repo: repo.clone()
                }),
                "{cmd:?}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let id: RepoId = "app1".parse().unwrap();
        assert_eq!(
            decide_for(None, Access::Write),
            Err(Refusal::NoCommand(id.clone()))
        );
        assert_eq!(
            decide_for(Some("  "), Access::Write),
            Err(Refusal::NoCommand(id.clone()))
        );
        for cmd in [
            "sh",
            "sh -c id",
            "bash -i",
            "git-upload-pack",
            "git-upload-pack '~'; id",
            "git-upload-pack '~' '~'",
            "git-upload-pack $(id)",
            "git-upload-pack '~",
            "git-shell -c 'git-upload-pack ~'",
            "git  upload-pack '~'",
            "git config core.hooksPath /tmp '~'",
            "scp -t /tmp",
            "git-upload-pack --upload-pack=id",
        ] {
            assert!(
                matches!(
                    decide_for(Some(cmd), Access::Write),
                    Err(Refusal::NotGit(_))
                ),
                "{cmd:?}: {:?}",
                decide_for(Some(cmd), Access::Write)
            );
        }
        for path in [
            "'/var/lib/containers/git/app2'",
            "'app2'",
            "'~/../app2'",
            "'/etc'",
            "'~git-app2'",
            "'../app1'",
            "'/var/lib/containers/git/app1/../app2'",
        ] {
            let cmd = format!("git-upload-pack {path}");
            assert!(
                matches!(
                    decide_for(Some(&cmd), Access::Write),
                    Err(Refusal::OtherPath { .. })
                ),
                "{cmd:?}"
            );
        }
        assert_eq!(
            decide_for(Some("git-receive-pack '~'"), Access::Read),
            Err(Refusal::ReadOnly(id))
        );
        assert!(decide_for(Some("git-upload-pack '~'"), Access::Read).is_ok());
        let msg = decide_for(Some("sh"), Access::Read)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("only git-upload-pack"), "{msg}");
    }

    #[test]
    fn quoting_as_git_does_it() {
        assert_eq!(unquote("'a'\\''b'").as_deref(), Some("a'b"));
        assert_eq!(unquote("'~'").as_deref(), Some("~"));
        assert_eq!(unquote("'a' 'b'"), None);
        assert_eq!(unquote("a;b"), None);
        assert_eq!("write".parse(), Ok(Access::Write));
        assert!("admin".parse::<Access>().is_err());
    }
}
