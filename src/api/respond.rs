//! One request of `gear-api`, from HTTP in to HTTP out: the browser and token checks, the
//! body's limits, `X-Request-Id`, log followers, and errors as JSON answers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::auth::Auth;
use super::browser::{self, HostNames};
use super::error::{Error, ErrorBody};
use super::handle::{Reply, execute};
use super::idempotency::{self, Lookup, Replays};
use super::limits::{Deadline, Followers, Following};
use super::listener::Peer;
use super::request::Request;
use super::server::MAX_BODY;
use crate::container::host::{Host, Parts};
use crate::container::logs::LogStream;

/// What every request of one agent shares.
#[derive(Debug)]
pub(super) struct Shared<P: Parts> {
    pub(super) host: Arc<Host<P>>,
    pub(super) replays: Replays,
    pub(super) auth: Auth,
    pub(super) followers: Followers,
    pub(super) body_timeout: Duration,
    pub(super) header_timeout: Duration,
    pub(super) host_names: HostNames,
}

/// The body of every answer: whole (JSON, text) or streamed (logs).
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Turns one HTTP request into a response; never fails, errors become JSON answers.
pub(super) async fn respond<P: Parts>(
    shared: &Shared<P>,
    deadline: &Arc<Deadline>,
    peer: &Peer,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    let (ctx, replays, auth) = (&shared.host, &shared.replays, &shared.auth);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let streamed_text = wants_stream(req.headers());
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let result = async {
        browser::check_headers(req.headers(), &shared.host_names)?;
        auth.check(peer, authorization.as_deref())?;
        let query = req.uri().query().map(str::to_string);
        let headers = req.headers().clone();
        let body = tokio::time::timeout(shared.body_timeout, read_body(req.into_body()))
            .await
            .map_err(|_| Error::SlowBody(shared.body_timeout))??;
        browser::check_body(&headers, &body)?;
        let request = Request::parse(&method, &path, query.as_deref(), &body)?;
        if let Request::Log { opts, .. } = &request {
            let following = Following::start(&shared.followers, deadline, opts.timeout)?;
            return match execute(ctx, request).await? {
                Reply::Stream(kind, stream) => Ok(Reply::Stream(kind, holding(following, stream))),
                other => Ok(other),
            };
        }
        // Reads are answered afresh: replaying one would answer stale state.
        let Some(rid) = request_id.filter(|_| idempotency::applies_to(&method)) else {
            return execute(ctx, request).await;
        };
        let target = format!("{path}?{}", query.unwrap_or_default());
        let fingerprint: [&[u8]; 3] = [method.as_str().as_bytes(), target.as_bytes(), &body];
        match replays.lookup(&rid, &fingerprint).await? {
            (Lookup::Replay(kept), _) => {
                let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
                Ok(Reply::Json(status, kept.body))
            }
            (Lookup::Fresh(_guard), fp) => {
                let reply = execute(ctx, request).await?;
                if let Reply::Json(status, value) = &reply {
                    replays.keep(&rid, fp, *status, value);
                }
                Ok(reply)
            }
        }
    }
    .await;
    match result {
        Ok(reply) => {
            let resp = reply_response(reply, streamed_text);
            log::info!("{method} {path} -> {}", resp.status().as_u16());
            resp
        }
        Err(e) => {
            let status = e.status();
            log::info!("{method} {path} -> {}: {e}", status.as_u16());
            json_response(
                status,
                &ErrorBody {
                    message: e.to_string(),
                },
            )
        }
    }
}

/// `stream`, keeping `following` until it is dropped.
fn holding(following: Following, stream: LogStream) -> LogStream {
    Box::pin(stream.map(move |chunk| {
        let _ = &following;
        chunk
    }))
}

/// Whether the client asked for streamed output as geard's clients do (`Accept:
/// application/json;stream=true` or `text/plain;stream=true`, also as `X-Accept`). geard
/// answered text with 202 then, and its Go client insists on it: any other 2xx answer must
/// be JSON.
fn wants_stream(headers: &hyper::HeaderMap) -> bool {
    let accept = headers
        .get("x-accept")
        .or_else(|| headers.get(hyper::header::ACCEPT))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.split(',').any(|media| {
        let mut parts = media.split(';').map(str::trim);
        let kind = parts.next().unwrap_or_default();
        matches!(kind, "application/json" | "text/plain")
            && parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("stream=true"))
    })
}

/// An answer as HTTP: JSON with its status; text and streams with 200, or 202 for a client
/// that asked for streamed output the way geard's did.
fn reply_response(reply: Reply, streamed_text: bool) -> Response<Body> {
    let text_status = match streamed_text {
        true => StatusCode::ACCEPTED,
        false => StatusCode::OK,
    };
    match reply {
        Reply::Json(status, value) => json_response(status, &value),
        Reply::Document(mut body) => {
            body.push(b'\n');
            with_type(StatusCode::OK, "application/json", full(body))
        }
        Reply::Text(text) => with_type(
            text_status,
            "text/plain; charset=utf-8",
            full(text.into_bytes()),
        ),
        Reply::Stream(content_type, stream) => {
            let frames = stream.map(|chunk| chunk.map(Frame::data));
            let mut resp = with_type(
                text_status,
                content_type,
                BodyExt::boxed_unsync(StreamBody::new(frames)),
            );
            // A log's deadline bounds its connection (limits::Following): end the
            // connection with the answer so no later request inherits it.
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn read_body(body: Incoming) -> Result<Bytes, Error> {
    // Refuse on Content-Length before reading: hyper then never sends `100 Continue`, so a
    // client uploading a huge body gets the 413 instead of a reset.
    if hyper::body::Body::size_hint(&body).lower() > MAX_BODY as u64 {
        return Err(Error::BodyTooLarge { limit: MAX_BODY });
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::BodyTooLarge { limit: MAX_BODY }),
        Err(e) => Err(Error::BadRequest(format!("reading the request body: {e}"))),
    }
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    with_type(status, "application/json", full(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geards_accept_header_asks_for_a_stream() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = hyper::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(wants_stream(&headers(&[(
            "accept",
            "application/json;stream=true"
        )])));
        assert!(wants_stream(&headers(&[(
            "accept",
            "text/html, text/plain; stream=true"
        )])));
        assert!(wants_stream(&headers(&[
            ("accept", "*/*"),
            ("x-accept", "application/json;stream=true")
        ])));
        assert!(!wants_stream(&headers(&[("accept", "application/json")])));
        assert!(!wants_stream(&headers(&[(
            "accept",
            "text/html;stream=true"
        )])));
        assert!(!wants_stream(&headers(&[])));
    }
}
