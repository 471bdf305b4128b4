//! Errors an API request can end in, each with a deliberate HTTP status.

use hyper::StatusCode;

use crate::build::run::BuildError;
use crate::container::history::RollbackError;
use crate::container::lifecycle;
use crate::container::ports::PortError;
use crate::git::repo::RepoError;
use crate::id::{ContainerId, InvalidId};

/// Why a request failed. [`Error::status`] has no catch-all arm, so every new variant
/// needs a deliberate status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No route has this path.
    #[error("no such resource: {0}")]
    NoRoute(String),
    /// The path exists, but not with this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method the client used.
        method: String,
        /// The path it used it on.
        path: String,
    },
    /// An id in the path or body is malformed.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// The query string or body does not say what the route needs.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is larger than the agent accepts.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A request from another host without a valid token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// An `X-Request-Id` was used before for a different request.
    #[error("X-Request-Id {0} was already used for a different request")]
    RequestIdReused(String),
    /// Links could not be set on some containers; those are unchanged, the others are set.
    #[error("{failed}{}", links_set(set))]
    Links {
        /// The containers whose links were set.
        set: Vec<ContainerId>,
        /// Why the others were not, one reason each.
        failed: String,
    },
    /// There is no environment with this id.
    #[error("no environment {0}")]
    NoEnvironment(ContainerId),
    /// SSH keys were sent for a container that has no Unix user to log in as.
    #[error(
        "container {0} is not isolated: SSH logins need its own user (install it with Isolate)"
    )]
    NotIsolated(ContainerId),
    /// None of the keys to revoke was there.
    #[error("none of these keys is on these containers or repositories")]
    NoKeys,
    /// An operation on a container failed.
    #[error(transparent)]
    Container(#[from] lifecycle::Error),
    /// An operation on a Git repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A build could not start, or there is no such build.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// systemd, Docker or the disk failed while carrying out a valid request.
    #[error("{0:#}")]
    Host(#[source] anyhow::Error),
    /// The agent is serving as many of these requests as it allows at once.
    #[error("busy: {0}")]
    TooBusy(String),
    /// The body did not arrive in time after the request's head.
    #[error("the request body did not arrive within {0:?}")]
    SlowBody(std::time::Duration),
    /// A body that is not declared as JSON (one a web page could send without asking).
    #[error("unsupported Content-Type {0:?}: send the body as Content-Type: application/json")]
    NotJson(String),
    /// A request made by a web page of another site (its `Origin` is not the agent).
    #[error("refused: a request from the web page {0} (the agent does not serve web pages)")]
    ForeignOrigin(String),
    /// A `Host` that is not one of the agent's names (DNS rebinding, or a mistaken proxy).
    #[error("refused: Host {0:?} is not an address or name of this agent (see docs/security.md)")]
    UnknownHost(String),
}

fn links_set(set: &[ContainerId]) -> String {
    match set {
        [] => String::new(),
        set => {
            let ids: Vec<&str> = set.iter().map(ContainerId::as_str).collect();
            format!(" (links were set on {})", ids.join(", "))
        }
    }
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoRoute(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::InvalidId(_) => StatusCode::BAD_REQUEST,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::RequestIdReused(_) => StatusCode::CONFLICT,
            Error::NoEnvironment(_) => StatusCode::NOT_FOUND,
            Error::Links { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotIsolated(_) => StatusCode::CONFLICT,
            Error::NoKeys => StatusCode::NOT_FOUND,
            Error::Container(e) => match e {
                lifecycle::Error::NotInstalled(_) => StatusCode::NOT_FOUND,
                lifecycle::Error::ImageUnavailable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                lifecycle::Error::Ports(p) => match p {
                    PortError::InUse { .. } => StatusCode::CONFLICT,
                    PortError::DuplicateInternal(_) | PortError::DuplicateExternal(_) => {
                        StatusCode::BAD_REQUEST
                    }
                    PortError::Exhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    PortError::Io(e) => host_status(e),
                },
                lifecycle::Error::Job { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                lifecycle::Error::Busy(_) => StatusCode::CONFLICT,
                lifecycle::Error::NotIdleable(_) => StatusCode::CONFLICT,
                lifecycle::Error::Links { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                lifecycle::Error::Volume(_) => StatusCode::BAD_REQUEST,
                lifecycle::Error::RolledBack { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                lifecycle::Error::Rollback(r) => match r {
                    RollbackError::NoSuchVersion { .. } => StatusCode::NOT_FOUND,
                    RollbackError::NoEarlier(_) | RollbackError::ImageGone { .. } => {
                        StatusCode::CONFLICT
                    }
                },
                lifecycle::Error::Host(e) => host_status(e),
            },
            Error::Repo(e) => match e {
                RepoError::NotFound(_) | RepoError::UnknownRef { .. } => StatusCode::NOT_FOUND,
                RepoError::Exists(_) | RepoError::ForeignUser(_) | RepoError::Busy(_) => {
                    StatusCode::CONFLICT
                }
                RepoError::Clone { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                RepoError::Host(e) => host_status(e),
            },
            Error::Build(e) => match e {
                BuildError::Invalid(_) => StatusCode::BAD_REQUEST,
                BuildError::Running(..) => StatusCode::CONFLICT,
                BuildError::NoBuild(_) | BuildError::NoRepository(_) => StatusCode::NOT_FOUND,
                BuildError::Host(e) => host_status(e),
            },
            Error::Host(e) => host_status(e),
            Error::TooBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            Error::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::ForeignOrigin(_) => StatusCode::FORBIDDEN,
            Error::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
        }
    }
}

/// A failure of the host: `507 Insufficient Storage` when the disk (or a quota) is full,
/// so a client knows that freeing space, not retrying, is what helps; else `500`.
fn host_status(e: &anyhow::Error) -> StatusCode {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    let full = e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| code == ENOSPC || code == EDQUOT)
    });
    if full {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// The JSON body of every error answer: `{"Message": "..."}`, as geard's clients expect.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in one sentence a person understands.
    #[serde(rename = "Message")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_and_other_host_failures_500() {
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(28))
            .context("writing /var/lib/containers/specs/web-1.json");
        assert_eq!(Error::Host(full).status(), StatusCode::INSUFFICIENT_STORAGE);
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(5)).context("reading");
        assert_eq!(
            Error::Host(other).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
