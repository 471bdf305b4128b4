//! Repositories: what they are ([`RepoInfo`]), why an operation fails ([`RepoError`]),
//! their lock, listing and deleting them; creating is [`super::create`].

use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use super::create::{CreateOptions, create};
use super::source::SourceUrl;
use crate::accounts::Accounts;
use crate::id::RepoId;
use crate::paths::Paths;

/// How long an operation waits for another one on the same repository.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Why an operation on a repository failed (each with its HTTP status in `api::error`).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// There is no such repository.
    #[error("no repository {0}")]
    NotFound(RepoId),
    /// It exists already.
    #[error("repository {0} exists already")]
    Exists(RepoId),
    /// A user `git-ID` exists that gear did not make.
    #[error(
        "a Unix user {0} exists already and is not a repository's: remove it or choose another id"
    )]
    ForeignUser(String),
    /// Another operation on it did not end in time.
    #[error("repository {0} is busy: another operation on it did not finish within 30s; try again")]
    Busy(RepoId),
    /// `git clone` failed (a URL that cannot be reached, a repository that does not exist).
    #[error("git clone {source_url} failed: {message}")]
    Clone {
        /// The source.
        source_url: SourceUrl,
        /// git's last words.
        message: String,
    },
    /// The ref names no commit in the repository.
    #[error("repository {id} has no branch, tag or commit '{git_ref}'")]
    UnknownRef {
        /// The repository.
        id: RepoId,
        /// The ref.
        git_ref: String,
    },
    /// The disk, git or the user database failed.
    #[error("{0:#}")]
    Host(#[from] anyhow::Error),
}

/// A repository, as `GET /repositories` lists it and `PUT /repository/:id` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoInfo {
    /// The id.
    pub id: RepoId,
    /// Its Unix user and SSH login, `git-ID`.
    pub login: String,
    /// The branch `HEAD` names (`main` for a new repository; the source's for a clone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

impl RepoInfo {
    pub(super) fn of(paths: &Paths, id: &RepoId) -> RepoInfo {
        RepoInfo {
            id: id.clone(),
            login: id.login(),
            head: head_branch(&paths.repository(id)),
        }
    }
}

/// The branch named by `HEAD` (read from the file: no git, no trust in the repository).
fn head_branch(repo: &Path) -> Option<String> {
    let text = std::fs::read_to_string(repo.join("HEAD")).ok()?;
    text.trim()
        .strip_prefix("ref: refs/heads/")
        .map(str::to_string)
}

/// The lock of one repository, held until dropped: an `flock(2)` the kernel releases
/// when its holder dies.
#[derive(Debug)]
pub struct RepoLock(#[allow(dead_code)] std::fs::File);

/// Takes the lock of `id`, waiting at most `wait`.
pub async fn lock(paths: &Paths, id: &RepoId, wait: Duration) -> Result<RepoLock, RepoError> {
    let path = paths.repository_lock(id);
    let dir = path.parent().expect("the lock is in a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RepoLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("locking repository {id}"))
                    .into());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RepoError::Busy(id.clone()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The repositories on the host, by id.
pub fn list(paths: &Paths) -> anyhow::Result<Vec<RepoInfo>> {
    let dir = paths.repositories();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut repos: Vec<RepoInfo> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str()?.parse::<RepoId>().ok())
        .map(|id| RepoInfo::of(paths, &id))
        .collect();
    repos.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(repos)
}

/// One repository, if it exists.
pub fn get(paths: &Paths, id: &RepoId) -> Result<RepoInfo, RepoError> {
    match paths.repository(id).is_dir() {
        true => Ok(RepoInfo::of(paths, id)),
        false => Err(RepoError::NotFound(id.clone())),
    }
}

/// Deletes repository `id`: its keys first (no new session can start), then its user
/// (`userdel` refuses while a session of the user runs: the repository then stays, and
/// the delete can be asked again), then its directory (renamed aside first, so it
/// disappears at once).
pub async fn delete<A: Accounts>(
    paths: &Paths,
    accounts: &A,
    id: &RepoId,
) -> Result<(), RepoError> {
    let _lock = lock(paths, id, LOCK_WAIT).await?;
    let target = paths.repository(id);
    if !target.is_dir() {
        return Err(RepoError::NotFound(id.clone()));
    }
    crate::keys::repos::remove_all(paths, id)?;
    accounts.remove(&id.login())?;
    let aside = paths
        .repositories()
        .join(format!(".del-{id}-{}", std::process::id()));
    std::fs::rename(&target, &aside)
        .with_context(|| format!("renaming {} aside", target.display()))?;
    std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
