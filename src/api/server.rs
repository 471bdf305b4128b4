//! The HTTP/1.1 server of `gear-api`: accept loop, body and time limits ([`super::limits`]),
//! idle exit, clean shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::Either;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{Notify, Semaphore};

use super::auth::Auth;
use super::browser::{self, HostNames};
use super::error::{Error, ErrorBody};
use super::handle::{Reply, execute};
use super::idempotency::{self, Lookup, Replays};
use super::limits::{AcceptBackoff, Deadline, Followers, Following, Limits};
use super::listener::{Conn, Listener, Peer, accept_any};
use super::request::Request;
use crate::container::lifecycle::Host;
use crate::container::logs::LogStream;
use crate::docker::Docker;
use crate::systemd::{Systemd, notify};

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
    /// What clients may hold of the agent.
    pub limits: Limits,
    /// Names the agent answers to in `Host`, besides addresses, `localhost` and its own.
    pub host_names: Vec<String>,
    /// Ask loopback TCP clients for a token too (the Unix socket still needs none).
    pub loopback_needs_token: bool,
}

/// What every request of one agent shares.
#[derive(Debug)]
struct Shared<S: Systemd, D: Docker> {
    host: Arc<Host<S, D>>,
    replays: Replays,
    auth: Auth,
    followers: Followers,
    body_timeout: Duration,
    header_timeout: Duration,
    host_names: HostNames,
}

/// The open connections: counted for the idle exit.
#[derive(Debug, Default)]
struct Open {
    count: AtomicUsize,
    closed: Notify,
}

/// Serves requests on `listeners` (one per `ListenStream=` of the socket unit) until
/// SIGTERM/SIGINT, or until idle for [`ServeOptions::exit_idle`].
pub async fn serve<S: Systemd, D: Docker>(
    listeners: Vec<Listener>,
    ctx: Arc<Host<S, D>>,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    anyhow::ensure!(!listeners.is_empty(), "no socket to serve on");
    let limits = opts.limits.clone();
    // Members of the Unix socket's group may use it (when that is not root's group).
    let unix_group = listeners
        .iter()
        .filter_map(Listener::unix_path)
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
        .filter(|&gid| gid != 0);
    let shared = Arc::new(Shared {
        replays: Replays::new(ctx.paths.requests_dir()),
        auth: Auth::new(ctx.paths.tokens_file())
            .loopback_needs_token(opts.loopback_needs_token)
            .unix_group(unix_group),
        host: ctx,
        followers: Followers::new(limits.max_log_followers),
        body_timeout: limits.body_timeout,
        host_names: HostNames::with_own(opts.host_names.clone()),
        header_timeout: limits.header_timeout,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Open::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    notify::ready("serving");
    let reason = loop {
        let idle = async {
            match opts.exit_idle {
                Some(d) if open.count.load(Ordering::SeqCst) == 0 => tokio::time::sleep(d).await,
                _ => std::future::pending().await,
            }
        };
        // Accept only with a free slot: beyond the cap, connections wait in the backlog
        // instead of costing a file descriptor each.
        let next = async {
            let slot = slots.clone().acquire_owned().await.expect("never closed");
            (slot, accept_any(&listeners).await)
        };
        tokio::select! {
            (slot, accepted) = next => {
                let (conn, peer) = match accepted {
                    Ok(a) => { backoff.succeeded(); a }
                    Err(e) if AcceptBackoff::is_exhaustion(&e) => {
                        // Out of descriptors: accepting again at once fails again at once.
                        tokio::time::sleep(backoff.failed(&e)).await;
                        continue;
                    }
                    // A reset before accept is one client's problem; keep serving.
                    Err(e) => { log::debug!("accept failed: {e}"); continue; }
                };
                let conn = match conn {
                    Conn::Tcp(s) => Either::Left(serve_conn(&shared, &graceful, TokioIo::new(s), peer)),
                    Conn::Unix(s) => Either::Right(serve_conn(&shared, &graceful, TokioIo::new(s), peer)),
                };
                open.count.fetch_add(1, Ordering::SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    conn.await;
                    drop(slot);
                    open.count.fetch_sub(1, Ordering::SeqCst);
                    open.closed.notify_one();
                });
            }
            // Re-arm the idle timer whenever a connection closes.
            _ = open.closed.notified() => {}
            _ = idle => break "idle",
            _ = term.recv() => break "SIGTERM",
            _ = tokio::signal::ctrl_c() => break "SIGINT",
        }
    };
    log::info!("stopping ({reason})");
    notify::stopping(&format!("stopping ({reason})"));
    drop(listeners);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// Serves one connection, over TCP or the Unix socket, until it closes or its bounded
/// answer (a log) is past its deadline.
fn serve_conn<S, D, IO>(
    shared: &Arc<Shared<S, D>>,
    graceful: &GracefulShutdown,
    io: TokioIo<IO>,
    peer: Peer,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Systemd,
    D: Docker,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Arc::new(Deadline::default());
    let (for_service, conn_deadline) = (shared.clone(), deadline.clone());
    let service = service_fn(move |req| {
        let (shared, deadline) = (for_service.clone(), deadline.clone());
        async move { Ok::<_, Infallible>(respond(&shared, &deadline, &peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Without a timer hyper never runs its header-read timeout.
        .timer(TokioTimer::new())
        .header_read_timeout(shared.header_timeout)
        .serve_connection(io, service);
    let conn = graceful.watch(conn);
    async move {
        tokio::select! {
            result = conn => if let Err(e) = result {
                log::debug!("connection from {peer}: {e}");
            },
            _ = conn_deadline.reached() => {
                log::info!("connection from {peer}: log answer past its timeout, closed");
            }
        }
    }
}

/// The body of every answer: whole (JSON, text) or streamed (logs).
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Turns one HTTP request into a response; never fails, errors become JSON answers.
async fn respond<S: Systemd, D: Docker>(
    shared: &Shared<S, D>,
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
            let resp = reply_response(reply);
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

fn reply_response(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json(status, value) => json_response(status, &value),
        Reply::Text(text) => with_type(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            full(text.into_bytes()),
        ),
        Reply::Stream(content_type, stream) => {
            let frames = stream.map(|chunk| chunk.map(Frame::data));
            with_type(
                StatusCode::OK,
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
