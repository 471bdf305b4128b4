//! `GET /repository/:id/archive/:ref`: `git archive` of a branch, tag or commit, streamed
//! as git writes it. The ref is resolved to a commit first (an unknown one is a 404 before
//! anything is sent), and git is then given the commit's id, never the client's words.

use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::AsyncReadExt as _;

use super::refname::{ArchiveFormat, GitRef};
use super::repo::RepoError;
use super::{RunAs, git};
use crate::container::logs::LogStream;
use crate::id::RepoId;
use crate::paths::Paths;

/// Git runs as the owner of the repository (its user `git-ID`): root never runs git in a
/// repository someone else can write to.
fn owner(repo: &Path) -> anyhow::Result<RunAs> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(repo).with_context(|| format!("reading {}", repo.display()))?;
    Ok(RunAs {
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// The commit `git_ref` names in repository `id` (a branch, a tag, or a commit id).
pub async fn resolve(paths: &Paths, id: &RepoId, git_ref: &GitRef) -> Result<String, RepoError> {
    let repo = paths.repository(id);
    if !repo.is_dir() {
        return Err(RepoError::NotFound(id.clone()));
    }
    let mut cmd = git(&repo, Some(owner(&repo)?));
    cmd.args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{git_ref}^{{commit}}"))
        .current_dir(&repo);
    let out = tokio::process::Command::from(cmd)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running git rev-parse")?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let is_id = commit.len() >= 40 && commit.chars().all(|c| c.is_ascii_hexdigit());
    if !out.status.success() || !is_id {
        return Err(RepoError::UnknownRef {
            id: id.clone(),
            git_ref: git_ref.to_string(),
        });
    }
    Ok(commit)
}

/// Streams `git archive` of `commit` (from [`resolve`]); files are under `ID-REF/`. If git
/// fails midway, the stream ends with an error, so the client sees a cut answer rather
/// than a short archive.
pub fn stream(
    paths: &Paths,
    id: &RepoId,
    git_ref: &GitRef,
    commit: &str,
    format: ArchiveFormat,
) -> Result<LogStream, RepoError> {
    let repo = paths.repository(id);
    let mut cmd = git(&repo, Some(owner(&repo)?));
    cmd.arg("archive")
        .arg(format!("--format={}", format.as_str()))
        .arg(format!("--prefix={id}-{}/", git_ref.file_stem()))
        .arg(commit)
        .current_dir(&repo);
    let mut child = tokio::process::Command::from(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The client went away: git stops.
        .kill_on_drop(true)
        .spawn()
        .context("running git archive")?;
    let stdout = child.stdout.take().context("git's stdout")?;
    let state = Some((child, stdout));
    let chunks = futures_util::stream::unfold(state, |state| async move {
        let (mut child, mut stdout) = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match stdout.read(&mut buf).await {
            Ok(0) => {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err).await;
                }
                match child.wait().await {
                    Ok(status) if status.success() => None,
                    Ok(status) => Some((
                        Err(std::io::Error::other(format!(
                            "git archive failed ({status}): {}",
                            err.trim()
                        ))),
                        None,
                    )),
                    Err(e) => Some((Err(e), None)),
                }
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((child, stdout))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Box::pin(chunks))
}
