//! The HTTP/1.1 server of `gear-api`: accept loop over its sockets, connection limits
//! ([`super::limits`]), idle exit, clean shutdown. Each request is answered by `respond`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::Either;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use super::auth::Auth;
use super::browser::HostNames;
use super::idempotency::Replays;
use super::limits::{AcceptBackoff, Deadline, Followers, Limits};
use super::listener::{Conn, Listener, Peer, accept_any};
use super::respond::{Shared, respond};
use crate::container::host::{Host, Parts};
use crate::systemd::notify;
use crate::tls::server::{Serve, ServerTls, refusal};

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
    /// The certificate to serve TLS with; while there is one, other hosts must use TLS.
    pub tls: ServerTls,
}

/// The open connections: counted for the idle exit.
#[derive(Debug, Default)]
struct Open {
    count: AtomicUsize,
    closed: Notify,
}

/// Serves requests on `listeners` (one per `ListenStream=` of the socket unit) until
/// SIGTERM/SIGINT, or until idle for [`ServeOptions::exit_idle`].
pub async fn serve<P: Parts>(
    listeners: Vec<Listener>,
    ctx: Arc<Host<P>>,
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
    let detached = ctx.detached.clone();
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
                Some(d) if open.count.load(Ordering::SeqCst) == 0 => {
                    tokio::time::sleep(d).await;
                    // An install whose client hung up still runs: not idle yet.
                    while detached.load(Ordering::SeqCst) > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
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
                    Conn::Tcp(s) => Either::Left(serve_tcp(shared.clone(), graceful.watcher(), s, peer, opts.tls.clone())),
                    Conn::Unix(s) => Either::Right(serve_conn(&shared, graceful.watcher(), TokioIo::new(s), peer)),
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
    let drained = async {
        graceful.shutdown().await;
        // Operations whose clients went away are finished too, within the same grace.
        while detached.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        log::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// Serves one TCP connection: in TLS when it opens with a handshake, in the clear when
/// [`ServerTls::decide`] allows, else answers once that TLS is needed.
async fn serve_tcp<P: Parts>(
    shared: Arc<Shared<P>>,
    watcher: Watcher,
    mut stream: TcpStream,
    peer: Peer,
    tls: ServerTls,
) {
    let loopback = matches!(peer, Peer::Tcp(a) if a.ip().to_canonical().is_loopback());
    let mut first = [0u8; 1];
    let first = match tokio::time::timeout(shared.header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        // Closed, failed, or silent past the header timeout: nothing to answer.
        _ => return,
    };
    match tls.decide(first, loopback) {
        Serve::Plain => serve_conn(&shared, watcher, TokioIo::new(stream), peer).await,
        Serve::Tls => {
            let ServerTls::Ready(acceptor) = tls else {
                unreachable!("decide says Tls only with a certificate")
            };
            match tokio::time::timeout(shared.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => serve_conn(&shared, watcher, TokioIo::new(s), peer).await,
                Ok(Err(e)) => log::info!("connection from {peer}: TLS handshake failed: {e}"),
                Err(_) => log::info!("connection from {peer}: no TLS handshake in time"),
            }
        }
        Serve::RefusePlain => {
            log::info!("connection from {peer}: plain HTTP from another host, refused (426)");
            // Read the request head first, so closing does not reset the answer away.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            let read_head = async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), read_head).await;
            let _ = stream.write_all(&refusal()).await;
            let _ = stream.shutdown().await;
        }
        Serve::NoTls => {
            log::info!(
                "connection from {peer}: a TLS handshake, but this agent has no certificate"
            );
        }
    }
}

/// Serves one connection, over TCP or the Unix socket, until it closes or its bounded
/// answer (a log) is past its deadline.
fn serve_conn<P, IO>(
    shared: &Arc<Shared<P>>,
    watcher: Watcher,
    io: TokioIo<IO>,
    peer: Peer,
) -> impl Future<Output = ()> + Send + 'static
where
    P: Parts,
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
    let conn = watcher.watch(conn);
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
