//! The route table: `(method, path, query, body)` → [`Request`], and back.
//!
//! The agent parses with [`Request::parse`]; the CLI builds the same values and turns them
//! into HTTP with [`Request::method`], [`Request::path_and_query`] and [`Request::body`],
//! so both sides share one definition of every route.

use hyper::Method;

use super::error::Error;

/// One API operation, fully parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /containers[?all=1]`: the containers systemd has loaded; with `all`, also the
    /// installed ones it has not.
    ListContainers {
        /// Include installed containers that systemd has not loaded.
        all: bool,
    },
}

impl Request {
    /// Parses one HTTP request. Unknown paths are [`Error::NoRoute`]; known paths with
    /// another method are [`Error::MethodNotAllowed`].
    pub fn parse(
        method: &Method,
        path: &str,
        query: Option<&str>,
        _body: &[u8],
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
            _ => Err(Error::NoRoute(path.to_string())),
        }
    }

    /// The HTTP method of this request.
    pub fn method(&self) -> Method {
        match self {
            Request::ListContainers { .. } => Method::GET,
        }
    }

    /// The path and query string of this request.
    pub fn path_and_query(&self) -> String {
        match self {
            Request::ListContainers { all: false } => "/containers".into(),
            Request::ListContainers { all: true } => "/containers?all=1".into(),
        }
    }

    /// The JSON body of this request, if it has one.
    pub fn body(&self) -> Option<Vec<u8>> {
        match self {
            Request::ListContainers { .. } => None,
        }
    }
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
        for req in [
            Request::ListContainers { all: false },
            Request::ListContainers { all: true },
        ] {
            let back = parse(req.method(), &req.path_and_query()).unwrap();
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
