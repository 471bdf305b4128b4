//! Carries out a parsed [`Request`] against the host.

use hyper::StatusCode;
use serde::Serialize;

use super::error::Error;
use super::request::Request;
use crate::container;
use crate::paths::Paths;
use crate::systemd::Systemd;

/// What the agent works with: where its files are and how it reaches systemd.
#[derive(Debug)]
pub struct Context<S> {
    /// Every on-disk location.
    pub paths: Paths,
    /// The service manager.
    pub systemd: S,
}

/// A successful answer, before it is turned into HTTP.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON document with this status.
    Json(StatusCode, serde_json::Value),
}

impl Reply {
    fn ok(value: &impl Serialize) -> Result<Reply, Error> {
        let json = serde_json::to_value(value).map_err(|e| Error::Host(e.into()))?;
        Ok(Reply::Json(StatusCode::OK, json))
    }
}

/// Executes one request. The `match` is exhaustive: a new [`Request`] variant does not
/// compile until it is handled here.
pub async fn execute<S: Systemd>(ctx: &Context<S>, req: Request) -> Result<Reply, Error> {
    match req {
        Request::ListContainers { all } => {
            let list = container::list::list(&ctx.paths, &ctx.systemd, all)
                .await
                .map_err(Error::Host)?;
            Reply::ok(&list)
        }
    }
}
