//! `GET /builds/:id/log` and `PUT|DELETE /repository/:id/on-push`: the build routes that
//! are more than one call into the host.

use std::sync::Arc;

use serde_json::json;

use super::Reply;
use crate::api::error::Error;
use crate::build::hook::{self, OnPush};
use crate::build::record::{BuildId, log_file};
use crate::build::run::{self, BuildError};
use crate::container::host::{Host, Parts};
use crate::id::RepoId;

/// A build's log: the text so far, or (`follow`) JSON lines until it ends.
pub(super) fn log<P: Parts>(
    host: &Arc<Host<P>>,
    id: &BuildId,
    follow: bool,
) -> Result<Reply, Error> {
    let rec = host.build_record(id)?;
    if follow {
        return Ok(Reply::Stream(
            "application/x-ndjson",
            run::follow(host.clone(), &rec),
        ));
    }
    let file = log_file(&host.paths, id);
    let bytes = std::fs::read(&file).unwrap_or_default();
    Ok(Reply::Text(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Writes (or, with `None`, removes) the push-to-deploy hook of repository `repo`.
pub(super) fn on_push<P: Parts>(
    host: &Arc<Host<P>>,
    repo: &RepoId,
    on: Option<&OnPush>,
) -> Result<Reply, Error> {
    if !host.paths.repository(repo).join("hooks").is_dir() {
        return Err(BuildError::NoRepository(repo.to_string()).into());
    }
    let file = hook::hook_file(&host.paths, repo);
    match on {
        Some(on) => {
            hook::install(&host.paths, repo, on).map_err(Error::Host)?;
            Reply::ok(&json!({"Repository": repo, "Hook": file, "Tag": on.tag}))
        }
        None => {
            let removed = hook::remove(&host.paths, repo).map_err(Error::Host)?;
            Reply::ok(&json!({"Repository": repo, "Hook": file, "Removed": removed}))
        }
    }
}
