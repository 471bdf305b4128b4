//! Carries out a parsed [`Request`] against the host.

use hyper::StatusCode;
use serde::Serialize;

use super::error::Error;
use super::request::Request;
use crate::container::environment::Environment;
use crate::container::lifecycle::Host;
use crate::container::logs::{self, LogStream};
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
    /// Plain text sent as it is produced (a log).
    Stream(LogStream),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json(status, value) => f.debug_tuple("Json").field(status).field(value).finish(),
            Reply::Text(text) => f.debug_tuple("Text").field(text).finish(),
            Reply::Stream(_) => f.write_str("Stream(..)"),
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

/// `GET /container/:id/status`: systemd's view and what the container was installed with.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatusReply {
    #[serde(flatten)]
    state: ContainerState,
    spec: container::spec::ContainerSpec,
}

/// Executes one request. The `match` is exhaustive: a new [`Request`] variant does not
/// compile until it is handled here.
pub async fn execute<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    req: Request,
) -> Result<Reply, Error> {
    match req {
        Request::ListContainers { all } => {
            let list = container::list::list(&host.paths, &host.systemd, all)
                .await
                .map_err(Error::Host)?;
            Reply::ok(&list)
        }
        Request::Install { id, body } => Reply::ok(&host.install(&id, body).await?),
        Request::Delete(id) => {
            host.delete(&id).await?;
            Reply::ok(&serde_json::json!({ "Id": id, "Deleted": true }))
        }
        Request::Status(id) => status(host, &id).await,
        Request::Ports(id) => Reply::ok(&PortsReply {
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
        Request::Log { id, opts } => {
            if !host.is_installed(&id) {
                return Err(container::lifecycle::Error::NotInstalled(id).into());
            }
            Ok(Reply::Stream(logs::stream(&id, opts).map_err(Error::Host)?))
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
    }
}

async fn status<S: Systemd, D: Docker>(
    host: &Host<S, D>,
    id: &ContainerId,
) -> Result<Reply, Error> {
    let spec = host.spec(id)?;
    let unit = host.state(id).await?;
    Reply::ok(&StatusReply {
        state: ContainerState {
            id: id.clone(),
            active_state: unit.active_state,
            sub_state: unit.sub_state,
            load_state: unit.load_state,
            job_type: None,
        },
        spec,
    })
}
