//! The HTTP/1.1 server of `gear-api`: accept loop, body limits, idle exit, clean shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::auth::Auth;
use super::error::{Error, ErrorBody};
use super::handle::{Reply, execute};
use super::idempotency::{Lookup, Replays};
use super::request::Request;
use crate::container::host::{Host, Parts};
use crate::systemd::notify;

/// The largest request body the agent reads; larger ones are answered 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long in-flight requests may take to finish once the agent is told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the server runs.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Exit after this long with no open connection; the socket unit starts the agent
    /// again on the next one (as systemd-socket-proxyd's `--exit-idle-time`).
    pub exit_idle: Option<Duration>,
}

/// Serves requests on `listeners` (one per `ListenStream=` of the socket unit) until
/// SIGTERM/SIGINT, or until idle for [`ServeOptions::exit_idle`].
pub async fn serve<P: Parts>(
    listeners: Vec<TcpListener>,
    host: Arc<Host<P>>,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    anyhow::ensure!(!listeners.is_empty(), "no socket to serve on");
    let replays = Arc::new(Replays::new(host.paths.requests_dir()));
    let auth = Arc::new(Auth::new(host.paths.tokens_file()));
    let open = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    notify::ready("serving");
    let reason = loop {
        let idle = async {
            match opts.exit_idle {
                Some(d) if open.load(Ordering::SeqCst) == 0 => {
                    tokio::time::sleep(d).await;
                    // An install whose client hung up still runs: not idle yet.
                    while host.detached.load(Ordering::SeqCst) > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = accept_any(&listeners) => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    // A failed accept (EMFILE, a reset before accept) is one client's
                    // problem; keep serving the others.
                    Err(e) => { log::warn!("accept failed: {e}"); continue; }
                };
                let _ = stream.set_nodelay(true);
                open.fetch_add(1, Ordering::SeqCst);
                let (host, replays, auth) = (host.clone(), replays.clone(), auth.clone());
                let service = service_fn(move |req| {
                    let (host, replays, auth) = (host.clone(), replays.clone(), auth.clone());
                    async move {
                        Ok::<_, Infallible>(respond(&host, &replays, &auth, peer.ip(), req).await)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                let (open, closed) = (open.clone(), closed.clone());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        log::debug!("connection from {peer}: {e}");
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                    closed.notify_one();
                });
            }
            // Re-arm the idle timer whenever a connection closes.
            _ = closed.notified() => {}
            _ = idle => break "idle",
            _ = term.recv() => break "SIGTERM",
            _ = tokio::signal::ctrl_c() => break "SIGINT",
        }
    };
    log::info!("stopping ({reason})");
    notify::stopping(&format!("stopping ({reason})"));
    drop(listeners);
    let drained = async {
        graceful.shutdown().await;
        // Operations whose clients went away are finished too, within the same grace.
        while host.detached.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        log::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// Accepts the next connection on whichever listener has one.
async fn accept_any(
    listeners: &[TcpListener],
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
    futures_util::future::select_all(accepts).await.0
}

/// The body of every answer: whole (JSON, text) or streamed (logs).
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Turns one HTTP request into a response; never fails, errors become JSON answers.
async fn respond<P: Parts>(
    host: &Arc<Host<P>>,
    replays: &Replays,
    auth: &Auth,
    peer: std::net::IpAddr,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
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
        auth.check(peer, authorization.as_deref())?;
        let query = req.uri().query().map(str::to_string);
        let body = read_body(req.into_body()).await?;
        let request = Request::parse(&method, &path, query.as_deref(), &body)?;
        let Some(rid) = request_id else {
            return execute(host, request).await;
        };
        let target = format!("{path}?{}", query.unwrap_or_default());
        let fingerprint: [&[u8]; 3] = [method.as_str().as_bytes(), target.as_bytes(), &body];
        match replays.lookup(&rid, &fingerprint).await? {
            (Lookup::Replay(kept), _) => {
                let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
                Ok(Reply::Json(status, kept.body))
            }
            (Lookup::Fresh(_guard), fp) => {
                let reply = execute(host, request).await?;
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
        Reply::Text(text) => with_type(
            text_status,
            "text/plain; charset=utf-8",
            full(text.into_bytes()),
        ),
        Reply::Stream(content_type, stream) => {
            let frames = stream.map(|chunk| chunk.map(Frame::data));
            with_type(
                text_status,
                content_type,
                BodyExt::boxed_unsync(StreamBody::new(frames)),
            )
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
