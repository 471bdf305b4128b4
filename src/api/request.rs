//! The route table: `(method, path, query, body)` → [`Request`], and back.
//!
//! The agent parses with [`Request::parse`]; the CLI builds the same values and turns them
//! into HTTP with [`Request::method`], [`Request::path_and_query`] and [`Request::body`],
//! so both sides share one definition of every route.

use hyper::Method;

use super::error::Error;
use crate::container::spec::InstallRequest;
use crate::id::ContainerId;

/// One API operation, fully parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `GET /containers[?all=1]`: the containers systemd has loaded; with `all`, also the
    /// installed ones it has not.
    ListContainers {
        /// Include installed containers that systemd has not loaded.
        all: bool,
    },
    /// `PUT /container/:id`: install or update a container (body: [`InstallRequest`]).
    Install {
        /// The container.
        id: ContainerId,
        /// What to install.
        body: InstallRequest,
    },
    /// `DELETE /container/:id`: stop and remove a container and everything it owns.
    Delete(ContainerId),
    /// `GET /container/:id/status`: the container's systemd state and spec.
    Status(ContainerId),
    /// `GET /container/:id/ports`: the container's published ports.
    Ports(ContainerId),
    /// `PUT /container/:id/started`: start a container (and at every boot).
    Start(ContainerId),
    /// `PUT /container/:id/stopped`: stop a container (and keep it stopped at boot).
    Stop(ContainerId),
    /// `POST /container/:id/restart`: restart a container.
    Restart(ContainerId),
}

impl Request {
    /// Parses one HTTP request. Unknown paths are [`Error::NoRoute`]; known paths with
    /// another method are [`Error::MethodNotAllowed`].
    pub fn parse(
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Request, Error> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let not_allowed = || Error::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
        };
        match segments.as_slice() {
            ["containers"] => match *method {
                Method::GET => Ok(Request::ListContainers {
                    all: query_flag(query, "all")?,
                }),
                _ => Err(not_allowed()),
            },
            ["container", id] => {
                let id: ContainerId = id.parse()?;
                match *method {
                    Method::PUT => Ok(Request::Install {
                        id,
                        body: json_body(body)?,
                    }),
                    Method::DELETE => Ok(Request::Delete(id)),
                    _ => Err(not_allowed()),
                }
            }
            ["container", id, action] => {
                let id: ContainerId = id.parse()?;
                match (action, method.clone()) {
                    (&"status", Method::GET) => Ok(Request::Status(id)),
                    (&"ports", Method::GET) => Ok(Request::Ports(id)),
                    (&"started", Method::PUT) => Ok(Request::Start(id)),
                    (&"stopped", Method::PUT) => Ok(Request::Stop(id)),
                    (&"restart", Method::POST) => Ok(Request::Restart(id)),
                    (&("status" | "ports" | "started" | "stopped" | "restart"), _) => {
                        Err(not_allowed())
                    }
                    _ => Err(Error::NoRoute(path.to_string())),
                }
            }
            _ => Err(Error::NoRoute(path.to_string())),
        }
    }

    /// The HTTP method of this request.
    pub fn method(&self) -> Method {
        match self {
            Request::ListContainers { .. } | Request::Status(_) | Request::Ports(_) => Method::GET,
            Request::Install { .. } | Request::Start(_) | Request::Stop(_) => Method::PUT,
            Request::Restart(_) => Method::POST,
            Request::Delete(_) => Method::DELETE,
        }
    }

    /// The path and query string of this request.
    pub fn path_and_query(&self) -> String {
        match self {
            Request::ListContainers { all: false } => "/containers".into(),
            Request::ListContainers { all: true } => "/containers?all=1".into(),
            Request::Install { id, .. } | Request::Delete(id) => format!("/container/{id}"),
            Request::Status(id) => format!("/container/{id}/status"),
            Request::Ports(id) => format!("/container/{id}/ports"),
            Request::Start(id) => format!("/container/{id}/started"),
            Request::Stop(id) => format!("/container/{id}/stopped"),
            Request::Restart(id) => format!("/container/{id}/restart"),
        }
    }

    /// The JSON body of this request, if it has one.
    pub fn body(&self) -> Option<Vec<u8>> {
        match self {
            Request::Install { body, .. } => serde_json::to_vec(body).ok(),
            Request::ListContainers { .. }
            | Request::Delete(_)
            | Request::Status(_)
            | Request::Ports(_)
            | Request::Start(_)
            | Request::Stop(_)
            | Request::Restart(_) => None,
        }
    }
}

/// Decodes a JSON body; a malformed one is a 400 that says where it is wrong.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("the request needs a JSON body".into()));
    }
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads a boolean query parameter: absent, `0`/`false` is false; present bare, `1`/`true`
/// is true; anything else is refused rather than guessed.
fn query_flag(query: Option<&str>, name: &str) -> Result<bool, Error> {
    let Some(query) = query else { return Ok(false) };
    let mut value = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, v) = pair.split_once('=').unwrap_or((pair, "1"));
        if key != name {
            continue;
        }
        value = match v {
            "1" | "true" | "" => true,
            "0" | "false" => false,
            other => {
                return Err(Error::BadRequest(format!(
                    "query parameter {name}={other}: expected 1 or 0"
                )));
            }
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, target: &str) -> Result<Request, Error> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Request::parse(&method, path, query, b"")
    }

    #[test]
    fn every_request_round_trips_through_http() {
        let id: ContainerId = "my_app.1".parse().unwrap();
        let body: InstallRequest = serde_json::from_str(
            r#"{"Image":"gear-test/httpd","Started":true,"Ports":[{"Internal":8080}]}"#,
        )
        .unwrap();
        for req in [
            Request::ListContainers { all: false },
            Request::ListContainers { all: true },
            Request::Install {
                id: id.clone(),
                body,
            },
            Request::Delete(id.clone()),
            Request::Status(id.clone()),
            Request::Ports(id.clone()),
            Request::Start(id.clone()),
            Request::Stop(id.clone()),
            Request::Restart(id),
        ] {
            let (path, query) = match req.path_and_query().split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (req.path_and_query(), None),
            };
            let body = req.body().unwrap_or_default();
            let back = Request::parse(&req.method(), &path, query.as_deref(), &body).unwrap();
            assert_eq!(back, req);
        }
    }

    #[test]
    fn list_containers_query() {
        assert_eq!(
            parse(Method::GET, "/containers?all=true").unwrap(),
            Request::ListContainers { all: true }
        );
        assert_eq!(
            parse(Method::GET, "/containers/").unwrap(),
            Request::ListContainers { all: false }
        );
        assert!(matches!(
            parse(Method::GET, "/containers?all=maybe"),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn container_routes_validate_ids_and_bodies() {
        assert!(matches!(
            parse(Method::GET, "/container/ab/status"),
            Err(Error::InvalidId(_))
        ));
        assert!(matches!(
            parse(Method::PUT, "/container/web-1"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            Request::parse(
                &Method::PUT,
                "/container/web-1",
                None,
                br#"{"Image":"a b"}"#
            ),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            parse(Method::GET, "/container/web-1/started"),
            Err(Error::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            parse(Method::GET, "/container/web-1/nope"),
            Err(Error::NoRoute(_))
        ));
    }

    #[test]
    fn unknown_routes_and_methods() {
        assert!(matches!(
            parse(Method::GET, "/nope"),
            Err(Error::NoRoute(_))
        ));
        assert!(matches!(
            parse(Method::POST, "/containers"),
            Err(Error::MethodNotAllowed { .. })
        ));
    }
}
