//! Carries out a parsed [`Request`] against the host.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use hyper::StatusCode;
use serde::Serialize;

use super::error::Error;
use super::idling;
use super::reply;
use super::request::Request;
use crate::container::environment::Environment;
use crate::container::lifecycle::Host;
use crate::container::logs::{self, LogStream};
use crate::container::spec::InstallRequest;
use crate::container::{self, ContainerState};
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::systemd::Systemd;

/// A successful answer, before it is turned into HTTP.
pub enum Reply {
    /// A JSON document with this status.
    Json(StatusCode, serde_json::Value),
    /// Plain text (an environment file).
    Text(String),
    /// Bytes sent as they are produced, with their content type (a log, install progress).
    Stream(&'static str, LogStream),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json(status, value) => f.debug_tuple("Json").field(status).field(value).finish(),
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
}

/// `GET /container/:id/ports`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PortsReply {
    ports: Vec<container::ports::PortPair>,
}

/// Executes one request. The `match` is exhaustive: a new [`Request`] variant does not
/// compile until it is handled here.
pub async fn execute<S: Systemd, D: Docker>(
    host: &Arc<Host<S, D>>,
    req: Request,
) -> Result<Reply, Error> {
    match req {
        Request::ListContainers { all } => {
            let list = container::list::list(&host.paths, &host.systemd, all)
                .await
                .map_err(Error::Host)?;
            Reply::ok(&list)
        }
        Request::Install {
            id,
            body,
            progress: false,
        } => {
            if body.started {
                idling::before_start(host, &id).await?;
            }
            Reply::ok(&host.install(&id, body, None).await?)
        }
        Request::Install {
            id,
            body,
            progress: true,
        } => {
            if body.started {
                idling::before_start(host, &id).await?;
            }
            Ok(install_with_progress(host.clone(), id, body))
        }
        Request::SetLinks(entries) => {
            // Every container is tried; the answer names each one that failed.
            let mut failed = Vec::new();
            for entry in &entries {
                if let Err(e) = host.set_links(&entry.id, entry.network_links.clone()).await {
                    failed.push(format!("{}: {e}", entry.id));
                }
            }
            if !failed.is_empty() {
                return Err(Error::Links(failed.join("; ")));
            }
            Reply::ok(&reply::Linked {
                linked: entries.into_iter().map(|e| e.id).collect(),
            })
        }
        Request::StopAll => {
            // Purge stops everything for good: no idle container may wake.
            for id in container::list::installed(&host.paths).map_err(Error::Host)? {
                idling::before_stop(host, &id).await?;
            }
            Reply::ok(&reply::Stopped {
                stopped: host.stop_all().await?,
            })
        }
        Request::Delete(id) => {
            let _lock = idling::before_stop(host, &id).await?;
            host.delete(&id).await?;
            Reply::ok(&serde_json::json!({ "Id": id, "Deleted": true }))
        }
        Request::Status(id) => status(host, &id).await,
        Request::Ports(id) => Reply::ok(&PortsReply {
            ports: host.spec(&id)?.ports,
        }),
        Request::Start(id) => {
            let _lock = idling::before_start(host, &id).await?;
            host.start(&id).await?;
            status(host, &id).await
        }
        Request::Stop(id) => {
            let _lock = idling::before_stop(host, &id).await?;
            host.stop(&id).await?;
            status(host, &id).await
        }
        Request::Restart(id) => {
            let _lock = idling::before_start(host, &id).await?;
            host.restart(&id).await?;
            status(host, &id).await
        }
        Request::Log { id, opts } => {
            if !host.is_installed(&id) {
                return Err(container::lifecycle::Error::NotInstalled(id).into());
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
            idling::idle(host, &id, mode).await?;
            status(host, &id).await
        }
        Request::Unidle(id) => {
            idling::unidle(host, &id).await?;
            status(host, &id).await
        }
        Request::SetIdlePolicy { id, policy } => {
            host.set_idle_policy(&id, policy).await?;
            status(host, &id).await
        }
    }
}

/// Runs an install in its own task (it completes even if the client hangs up) and answers
/// with JSON lines: `{"Progress": "..."}` while it runs, then `{"Installed": {...}}` or
/// `{"Message": "...", "Status": 422}`.
fn install_with_progress<S: Systemd, D: Docker>(
    host: Arc<Host<S, D>>,
    id: ContainerId,
    body: InstallRequest,
) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let done = tokio::spawn(async move { host.install(&id, body, Some(&tx)).await });
    let line = |value: serde_json::Value| Ok(Bytes::from(format!("{value}\n")));
    let progress = tokio_stream_from(rx).map(move |p| line(serde_json::json!({ "Progress": p })));
    let result = futures_util::stream::once(async move {
        let value = match done.await {
            Ok(Ok(installed)) => serde_json::json!({ "Installed": installed }),
            Ok(Err(e)) => {
                let e = Error::from(e);
                serde_json::json!({ "Message": e.to_string(), "Status": e.status().as_u16() })
            }
            Err(e) => {
                serde_json::json!({ "Message": format!("the install task failed: {e}"), "Status": 500 })
            }
        };
        line(value)
    });
    Reply::Stream("application/x-ndjson", Box::pin(progress.chain(result)))
}

/// The receiver as a stream that ends when every sender is gone.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> impl futures_util::Stream<Item = String> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn status<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
) -> Result<Reply, Error> {
    let spec = host.spec(id)?;
    let unit = host.state(id).await?;
    Reply::ok(&reply::Status {
        state: ContainerState {
            id: id.clone(),
            active_state: unit.active_state,
            sub_state: unit.sub_state,
            load_state: unit.load_state,
            job_type: None,
        },
        spec,
        idle: crate::idle::marked(&host.paths, id).map_err(Error::Host)?,
    })
}
