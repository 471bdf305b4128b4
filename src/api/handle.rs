//! Carries out a parsed [`Request`] against the host: one call into the container core per
//! request, and a typed answer from [`super::reply`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use hyper::StatusCode;
use serde::Serialize;

use super::error::Error;
use super::reply::{self, InstallLine};
use super::request::Request;
use crate::container::environment::Environment;
use crate::container::host::{Host, Parts};
use crate::container::lifecycle::{self, LinksSet};
use crate::container::logs::{self, LogStream};
use crate::container::spec::{ContainerSpec, InstallRequest};
use crate::container::volumes;
use crate::container::{self, ContainerState};
use crate::id::ContainerId;
use crate::systemd::Systemd;

/// How long `gear unidle` waits for the ports to answer.
const UNIDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A successful answer, before it is turned into HTTP.
pub enum Reply {
    /// A JSON document with this status.
    Json(StatusCode, serde_json::Value),
    /// A read's JSON document (200), written straight from its type: a list of a thousand
    /// containers built as a [`serde_json::Value`] first cost more than the rest of its
    /// answer. Reads are never kept for replay, so nothing needs it as a value.
    Document(Vec<u8>),
    /// Plain text (an environment file).
    Text(String),
    /// Bytes sent as they are produced, with their content type (a log, install progress).
    Stream(&'static str, LogStream),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json(status, value) => f.debug_tuple("Json").field(status).field(value).finish(),
            Reply::Document(body) => f
                .debug_tuple("Document")
                .field(&String::from_utf8_lossy(body))
                .finish(),
            Reply::Text(text) => f.debug_tuple("Text").field(text).finish(),
            Reply::Stream(kind, _) => write!(f, "Stream({kind}, ..)"),
        }
    }
}

impl Reply {
    fn ok(value: &impl Serialize) -> Result<Reply, Error> {
        let json = serde_json::to_value(value).map_err(|e| Error::Host(e.into()))?;
        Ok(Reply::Json(StatusCode::OK, json))
    }

    /// `value` as a document; `size`, what it is likely to take, saves growing it bit by
    /// bit.
    fn document(value: &impl Serialize, size: usize) -> Result<Reply, Error> {
        let mut body = Vec::with_capacity(size);
        serde_json::to_writer(&mut body, value).map_err(|e| Error::Host(e.into()))?;
        Ok(Reply::Document(body))
    }
}

/// Executes one request. The `match` is exhaustive: a new [`Request`] variant does not
/// compile until it is handled here.
pub async fn execute<P: Parts>(host: &Arc<Host<P>>, req: Request) -> Result<Reply, Error> {
    match req {
        Request::ListContainers { all: _ } => {
            let list = container::list::list(&host.paths, &host.systemd, &host.installed)
                .await
                .map_err(Error::Host)?;
            // About 90 bytes a container.
            Reply::document(&list, 128 * (list.containers.len() + 1))
        }
        Request::Install {
            id,
            body,
            progress: false,
        } => Reply::ok(&host.install(&id, body, None).await?),
        Request::Install {
            id,
            body,
            progress: true,
        } => Ok(install_with_progress(host.clone(), id, body)),
        Request::SetLinks(entries) => {
            // Every container is tried; each is changed entirely or not at all.
            let (mut linked, mut applied, mut failed) = (vec![], vec![], vec![]);
            for entry in entries {
                match host.set_links(&entry.id, entry.network_links).await {
                    Ok(how) => {
                        if how == LinksSet::Applied {
                            applied.push(entry.id.clone());
                        }
                        linked.push(entry.id);
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if !failed.is_empty() {
                return Err(Error::Links {
                    set: linked,
                    failed: failed.join("; "),
                });
            }
            Reply::ok(&reply::Linked { linked, applied })
        }
        Request::StopAll => Reply::ok(&reply::Stopped {
            stopped: host.stop_all().await?,
        }),
        Request::Delete { id, volumes } => {
            let left = host.delete(&id, volumes).await?;
            Reply::ok(&reply::Deleted {
                id,
                deleted: true,
                kept_volumes: left.kept,
                removed_volumes: left.removed,
            })
        }
        Request::Images => Reply::ok(&host.images().await?),
        Request::PruneImages => Reply::ok(&host.prune_images().await?),
        Request::PullImage(image) => Ok(images::pull_with_progress(host.clone(), image)),
        Request::RunJob(job) => {
            // Refusals (a mount, an image that cannot be pulled) are plain error answers.
            let prepared = host.prepare_job(&job).await?;
            Ok(Reply::Stream(
                "application/x-ndjson",
                crate::job::run::start(host.clone(), job, prepared),
            ))
        }
        Request::BuildImage(build) => {
            // Refusals (a running build of the tag) are plain error answers; once the unit
            // runs, the answer follows its log.
            let rec = host.start_build(build).await?;
            Ok(Reply::Stream(
                "application/x-ndjson",
                crate::build::run::follow(host.clone(), &rec),
            ))
        }
        Request::Builds => Reply::ok(&host.builds().await?),
        Request::BuildLog { id, follow } => builds::log(host, &id, follow),
        Request::OnPush { repo, on } => builds::on_push(host, &repo, on.as_ref()),
        Request::Volumes(only) => {
            let paths = host.paths.clone();
            let in_use = move |id: &ContainerId| {
                let spec = ContainerSpec::load(&paths, id).ok()?;
                paths.unit_file(id).exists().then(|| {
                    spec.volumes
                        .into_iter()
                        .filter(|v| v.source.is_none())
                        .map(|v| v.target)
                        .collect()
                })
            };
            let paths = host.paths.clone();
            // Sizes walk the directories: off the agent's one thread.
            let list = tokio::task::spawn_blocking(move || {
                volumes::store::list(&paths, only.as_ref(), in_use)
            })
            .await
            .map_err(|e| Error::Host(e.into()))?
            .map_err(Error::Host)?;
            Reply::ok(&list)
        }
        Request::Status(id) => status(host, &id).await,
        Request::Ports(id) => Reply::ok(&reply::Ports {
            ports: host.spec(&id)?.ports,
        }),
        Request::Start(id) => {
            host.start(&id).await?;
            status(host, &id).await
        }
        Request::Stop(id) => {
            host.stop(&id).await?;
            status(host, &id).await
        }
        Request::Restart(id) => {
            host.restart(&id).await?;
            status(host, &id).await
        }
        Request::History(id) => Reply::ok(&host.history(&id)?),
        Request::Rollback { id, to } => {
            host.rollback(&id, to).await?;
            status(host, &id).await
        }
        Request::Log { id, opts } => {
            if !host.is_installed(&id) {
                return Err(lifecycle::Error::NotInstalled(id).into());
            }
            Ok(Reply::Stream(
                "text/plain; charset=utf-8",
                logs::stream(&id, opts).map_err(Error::Host)?,
            ))
        }
        Request::GetEnvironment(id) => match host.environment(&id)? {
            Some(env) => Ok(Reply::Text(env.render())),
            None => Err(Error::NoEnvironment(id)),
        },
        Request::SetEnvironment { id, body, reset } => {
            let env = host
                .set_environment(&id, Environment::from(body), reset)
                .await?;
            Reply::ok(&container::environment::EnvironmentBody::from(env))
        }
        Request::Idle { id, mode } => {
            host.idle(&id, mode).await?;
            status(host, &id).await
        }
        Request::Unidle(id) => {
            host.unidle(&id, UNIDLE_TIMEOUT).await?;
            status(host, &id).await
        }
        Request::SetIdlePolicy { id, policy } => {
            host.set_idle_policy(&id, policy).await?;
            status(host, &id).await
        }
        Request::AddKeys(grant) => keys::add(host, grant).await,
        Request::RemoveKeys(revoke) => keys::remove(host, revoke).await,
        Request::ListKeys(id) => keys::list(host, id),
        Request::ListRepoKeys(id) => keys::list_repository(host, id),
        Request::CreateRepo {
            id,
            source,
            progress: false,
        } => repos::create(host, id, source).await,
        Request::CreateRepo {
            id,
            source,
            progress: true,
        } => Ok(repos::create_with_progress(host.clone(), id, source)),
        Request::DeleteRepo(id) => repos::delete(host, id).await,
        Request::ListRepos => repos::list(host),
        Request::Archive {
            id,
            git_ref,
            format,
        } => repos::archive(host, id, git_ref, format).await,
    }
}

/// Runs an install in its own task (it completes even if the client hangs up) and answers
/// with JSON lines ([`InstallLine`]): progress while it runs, then the result.
fn install_with_progress<P: Parts>(
    host: Arc<Host<P>>,
    id: ContainerId,
    body: InstallRequest,
) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let detached = Detached::new(&host.detached);
    let done = tokio::spawn(async move {
        let _detached = detached;
        host.install(&id, body, Some(&tx)).await
    });
    let line = |l: InstallLine| {
        let text = serde_json::to_string(&l).unwrap_or_else(|e| format!("{{\"Message\":\"{e}\"}}"));
        Ok(Bytes::from(text + "\n"))
    };
    let progress = tokio_stream_from(rx).map(move |p| line(InstallLine::Progress { progress: p }));
    let result = futures_util::stream::once(async move {
        line(match done.await {
            Ok(Ok(installed)) => InstallLine::Installed { installed },
            Ok(Err(e)) => {
                let e = Error::from(e);
                InstallLine::Failed {
                    message: e.to_string(),
                    status: e.status().as_u16(),
                }
            }
            Err(e) => InstallLine::Failed {
                message: format!("the install task failed: {e}"),
                status: 500,
            },
        })
    });
    Reply::Stream("application/x-ndjson", Box::pin(progress.chain(result)))
}

/// Counts one operation in [`Host::detached`] while it lives.
pub(crate) struct Detached(Arc<AtomicUsize>);

impl Detached {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Detached {
        count.fetch_add(1, Ordering::SeqCst);
        Detached(count.clone())
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The receiver as a stream that ends when every sender is gone.
pub(crate) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> impl futures_util::Stream<Item = String> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn status<P: Parts>(host: &Host<P>, id: &ContainerId) -> Result<Reply, Error> {
    let spec = host.spec(id)?;
    let unit = host.state(id).await?;
    let details = host
        .systemd
        .unit_details(&id.unit_name())
        .await
        .map_err(Error::Host)?;
    Reply::ok(&reply::Status {
        state: ContainerState {
            id: id.clone(),
            active_state: unit.active_state,
            sub_state: unit.sub_state,
            load_state: unit.load_state,
            job_type: None,
        },
        unit: id.unit_name(),
        spec,
        idle: crate::idle::marked(&host.paths, id).map_err(Error::Host)?,
        since_usec: details.since_usec,
        main_pid: details.main_pid,
        memory_bytes: details.memory_bytes,
        // systemd says only that `docker run` failed; the stop step knows when the kernel
        // killed the container for memory.
        result: crate::container::step::last_end(&host.paths, id).or(details.result),
        health: crate::container::health::HealthState::load(&host.paths, id),
    })
}

mod images;
pub use images::PullLine;
mod builds;
mod keys;
mod repos;
pub use repos::{RepoDeleted, RepoLine, RepoList};
#[cfg(test)]
mod tests;
