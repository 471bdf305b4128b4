//! Creating a repository, whole or not at all: it is made in a hidden directory beside
//! its place (`.new-ID-...`), as its own user, and renamed into place only once `git
//! init` or `git clone` has finished. If the client goes away, the agent dies, or git
//! fails, what was made goes (the hidden directory and the user), at once or at the next
//! create of the same id.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc::UnboundedSender;

use super::repo::{LOCK_WAIT, RepoError, RepoInfo, lock};
use super::source::{PROTOCOLS, SourceUrl};
use super::{RunAs, git};
use crate::accounts::Accounts;
use crate::id::RepoId;
use crate::paths::Paths;

/// How [`create`] runs.
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// Run git as the repository's new user (always, except in unit tests, which cannot
    /// change their uid).
    pub as_owner: bool,
}

/// Creates repository `id`: empty with `main` as its default branch, or a bare clone of
/// `source`. git's progress goes to `progress` line by line. Dropping the future (the
/// client went away) stops git and removes what it made.
pub async fn create<A: Accounts>(
    paths: &Paths,
    accounts: &A,
    id: &RepoId,
    source: Option<&SourceUrl>,
    progress: Option<&UnboundedSender<String>>,
    opts: CreateOptions,
) -> Result<RepoInfo, RepoError> {
    let _lock = lock(paths, id, LOCK_WAIT).await?;
    let target = paths.repository(id);
    if target.exists() {
        return Err(RepoError::Exists(id.clone()));
    }
    let base = paths.repositories();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&base)
        .with_context(|| format!("creating {}", base.display()))?;
    // A leftover of a create that was cut short (the agent was killed) marks the user as
    // gear's; without one, a user of that name is someone else's.
    let leftovers = remove_leftovers(&base, id)?;
    let login = id.login();
    if !leftovers && user_exists(&login)? {
        return Err(RepoError::ForeignUser(login));
    }
    let tmp = base.join(format!(
        ".new-{id}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let mut undo = Undo {
        tmp: Some(tmp.clone()),
        config: None,
        user: None,
        git_group: None,
        remove_user: &|name: &str| accounts.remove(name),
    };
    // The home is the repositories' directory, which belongs to root: sshd finds no
    // ~/.ssh/authorized_keys of the user's own there.
    let user = accounts.ensure(&login, &base).map_err(RepoError::Host)?;
    undo.user = Some(login.clone());
    let run_as = opts.as_owner.then_some(RunAs {
        uid: user.uid,
        gid: user.gid,
    });
    if let Some(who) = run_as {
        std::os::unix::fs::chown(&tmp, Some(who.uid), Some(who.gid))
            .with_context(|| format!("giving {} to {login}", tmp.display()))?;
    }
    match source {
        None => init(&tmp, run_as).await?,
        Some(url) => {
            let config = PathBuf::from(format!("{}.gitconfig", tmp.display()));
            std::fs::write(&config, "[safe]\n\tdirectory = *\n")
                .with_context(|| format!("writing {}", config.display()))?;
            undo.config = Some(config.clone());
            let cloned = clone(
                &tmp,
                Some(&config),
                url,
                run_as,
                progress,
                &mut undo.git_group,
            )
            .await;
            let _ = std::fs::remove_file(&config);
            undo.config = None;
            cloned?
        }
    }
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    undo.tmp = None;
    undo.user = None;
    std::fs::File::open(&base)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", base.display()))?;
    Ok(RepoInfo::of(paths, id))
}

/// Removes hidden directories a cut-short create or delete of `id` left; whether any was
/// there.
fn remove_leftovers(base: &Path, id: &RepoId) -> anyhow::Result<bool> {
    let mut found = false;
    for entry in std::fs::read_dir(base).with_context(|| format!("reading {}", base.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = [".new-", ".del-"].iter().any(|p| {
            name.strip_prefix(p)
                .and_then(|rest| rest.strip_prefix(id.as_str()))
                .is_some_and(|rest| rest.starts_with('-'))
        });
        if ours {
            found = true;
            log::info!(
                "removing {name}, left by an operation on repository {id} that was cut short"
            );
            let path = entry.path();
            match entry.file_type()?.is_dir() {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            }
            .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(found)
}

fn user_exists(name: &str) -> anyhow::Result<bool> {
    Ok(nix::unistd::User::from_name(name)
        .with_context(|| format!("looking up {name}"))?
        .is_some())
}

/// What a create takes back unless it completes: git's processes, the hidden directory,
/// the user. Runs on drop, so also when the client goes away mid-clone.
struct Undo<'a> {
    tmp: Option<PathBuf>,
    config: Option<PathBuf>,
    user: Option<String>,
    git_group: Option<i32>,
    remove_user: &'a (dyn Fn(&str) -> anyhow::Result<()> + Sync),
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(pgid) = self.git_group.take() {
            // git clone runs helpers (index-pack, remote-https) that would write on into
            // the directory: end the whole process group.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(config) = self.config.take() {
            let _ = std::fs::remove_file(config);
        }
        if let Some(tmp) = self.tmp.take() {
            // A helper may still be dying: try a few times.
            for attempt in 0..20 {
                match std::fs::remove_dir_all(&tmp) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if attempt == 19 => log::warn!("removing {}: {e}", tmp.display()),
                    Err(_) => std::thread::sleep(Duration::from_millis(25)),
                }
            }
        }
        if let Some(user) = self.user.take()
            && let Err(e) = (self.remove_user)(&user)
        {
            log::warn!("removing user {user}: {e:#}");
        }
    }
}

/// `git init --bare` with `main` as the default branch.
async fn init(dir: &Path, run_as: Option<RunAs>) -> anyhow::Result<()> {
    let mut cmd = git(dir, run_as);
    cmd.args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(dir)
        .current_dir(dir);
    let out = tokio::process::Command::from(cmd)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running git init")?;
    anyhow::ensure!(
        out.status.success(),
        "git init failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `git clone --bare` of `url` into `dir`, its progress lines sent as they come.
async fn clone(
    dir: &Path,
    config: Option<&Path>,
    url: &SourceUrl,
    run_as: Option<RunAs>,
    progress: Option<&UnboundedSender<String>>,
    group: &mut Option<i32>,
) -> Result<(), RepoError> {
    let mut cmd = git(dir, run_as);
    // --no-hardlinks: a local source's objects are copied, never shared with a repository
    // that another user owns.
    cmd.args(["clone", "--bare", "--progress", "--no-hardlinks", "--"])
        .arg(url.as_str())
        .arg(dir)
        .current_dir(dir)
        .env("GIT_ALLOW_PROTOCOL", PROTOCOLS)
        // No prompt for a password or a host key: an answer nobody can give.
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    if let Some(config) = config {
        // A local source belongs to another user (root, or another repository's): git
        // refuses that as "dubious ownership" unless its global configuration says
        // otherwise (`-c` does not reach the upload-pack of a local clone). Only the
        // repository's own user runs this clone, and it owns nothing but the new
        // repository.
        cmd.env("GIT_CONFIG_GLOBAL", config);
    }
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = tokio::process::Command::from(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running git clone")?;
    *group = child.id().map(|pid| pid as i32);
    let mut stderr = child.stderr.take().context("git's stderr")?;
    let mut last_lines: Vec<String> = Vec::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stderr
            .read(&mut buf)
            .await
            .context("reading git's progress")?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        // git rewrites a progress line with '\r'; each version is one line for the client.
        while let Some(end) = pending.iter().position(|b| *b == b'\r' || *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            if line.is_empty() {
                continue;
            }
            if let Some(tx) = progress {
                let _ = tx.send(line.clone());
            }
            if !line.contains('%') {
                last_lines.push(line);
                if last_lines.len() > 5 {
                    last_lines.remove(0);
                }
            }
        }
    }
    let status = child.wait().await.context("waiting for git clone")?;
    *group = None;
    if !status.success() {
        return Err(RepoError::Clone {
            source_url: url.clone(),
            message: match last_lines.is_empty() {
                true => status.to_string(),
                false => last_lines.join("; "),
            },
        });
    }
    Ok(())
}
