//! `PUT|DELETE /repository/:id`, `GET /repositories`, `GET /repository/:id/archive/:ref`:
//! Git repositories, carried out by [`crate::git`].
//!
//! A create is not detached like an install: if the client goes away (Ctrl-C on a long
//! clone), the clone stops and leaves nothing, which is what a person who interrupts it
//! expects.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Reply;
use crate::api::error::Error;
use crate::container::host::{Host, Parts};
use crate::git::refname::{ArchiveFormat, GitRef};
use crate::git::repo::{self, CreateOptions, RepoInfo};
use crate::git::{archive, source::SourceUrl};
use crate::id::RepoId;

/// Production runs git as the repository's own user.
const AS_OWNER: CreateOptions = CreateOptions { as_owner: true };

/// The answer of `GET /repositories`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoList {
    /// The repositories, by id.
    pub repositories: Vec<RepoInfo>,
}

/// The answer of `DELETE /repository/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoDeleted {
    /// The repository.
    pub id: RepoId,
    /// Always true.
    pub deleted: bool,
}

/// One line of the answer of `PUT /repository/:id?progress=1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RepoLine {
    /// One of git's progress lines (`Receiving objects:  42% (420/1000)`).
    Progress {
        /// The text.
        #[serde(rename = "Progress")]
        progress: String,
    },
    /// It is created.
    Created {
        /// The repository.
        #[serde(rename = "Created")]
        created: RepoInfo,
    },
    /// It failed (and nothing was left), with the status a plain answer would have had.
    Failed {
        /// Why.
        #[serde(rename = "Message")]
        message: String,
        /// The HTTP status.
        #[serde(rename = "Status")]
        status: u16,
    },
    /// Nothing new (sent every [`KEEPALIVE`] while git is quiet): writing it is how the
    /// agent notices a client that went away.
    Alive {},
}

/// How often a quiet create says it is alive.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) async fn create<P: Parts>(
    host: &Host<P>,
    id: RepoId,
    source: Option<SourceUrl>,
) -> Result<Reply, Error> {
    let info = repo::create(
        &host.paths,
        &host.accounts,
        &id,
        source.as_ref(),
        None,
        AS_OWNER,
    )
    .await?;
    Reply::ok(&info)
}

/// Creates in a task that the answer's stream owns: when the client goes away, the
/// stream is dropped, the task aborted, and the create's clean-up runs.
pub(super) fn create_with_progress<P: Parts>(
    host: Arc<Host<P>>,
    id: RepoId,
    source: Option<SourceUrl>,
) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        repo::create(
            &host.paths,
            &host.accounts,
            &id,
            source.as_ref(),
            Some(&tx),
            AS_OWNER,
        )
        .await
    });
    let abort = AbortOnDrop(task.abort_handle());
    let state = Some(Lines { rx, task, abort });
    Reply::Stream(
        "application/x-ndjson",
        Box::pin(futures_util::stream::unfold(state, next_line)),
    )
}

/// The answer of a create with progress while it runs.
struct Lines {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<Result<RepoInfo, repo::RepoError>>,
    abort: AbortOnDrop,
}

/// The next line: git's progress, `Alive` after a quiet second, and the result once the
/// task has ended (its sender is gone, so every progress line came first).
async fn next_line(state: Option<Lines>) -> Option<(std::io::Result<Bytes>, Option<Lines>)> {
    let mut s = state?;
    let line = |l: RepoLine| {
        let text = serde_json::to_string(&l).unwrap_or_else(|e| format!("{{\"Message\":\"{e}\"}}"));
        Ok(Bytes::from(text + "\n"))
    };
    tokio::select! {
        biased;
        progress = s.rx.recv() => match progress {
            Some(progress) => Some((line(RepoLine::Progress { progress }), Some(s))),
            None => {
                let result = match (&mut s.task).await {
                    Ok(Ok(created)) => RepoLine::Created { created },
                    Ok(Err(e)) => {
                        let e = Error::from(e);
                        RepoLine::Failed {
                            message: e.to_string(),
                            status: e.status().as_u16(),
                        }
                    }
                    Err(e) => RepoLine::Failed {
                        message: format!("the create task failed: {e}"),
                        status: 500,
                    },
                };
                drop(s.abort);
                Some((line(result), None))
            }
        },
        _ = tokio::time::sleep(KEEPALIVE) => Some((line(RepoLine::Alive {}), Some(s))),
    }
}

/// Aborts a task when dropped (its future is dropped, and with it what it holds).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) async fn delete<P: Parts>(host: &Host<P>, id: RepoId) -> Result<Reply, Error> {
    repo::delete(&host.paths, &host.accounts, &id).await?;
    Reply::ok(&RepoDeleted { id, deleted: true })
}

pub(super) fn list<P: Parts>(host: &Host<P>) -> Result<Reply, Error> {
    Reply::ok(&RepoList {
        repositories: repo::list(&host.paths).map_err(Error::Host)?,
    })
}

pub(super) async fn archive<P: Parts>(
    host: &Host<P>,
    id: RepoId,
    git_ref: GitRef,
    format: ArchiveFormat,
) -> Result<Reply, Error> {
    let commit = archive::resolve(&host.paths, &id, &git_ref).await?;
    let stream = archive::stream(&host.paths, &id, &git_ref, &commit, format)?;
    Ok(Reply::Stream(format.content_type(), stream))
}
