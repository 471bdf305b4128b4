//! The HTTP client the `gear` CLI uses to reach an agent; it sends [`Request`] values.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use super::error::ErrorBody;
use super::reply::{InstallLine, Installed};
use super::request::Request;
use crate::locator::HostAddr;
use crate::paths::Paths;
use crate::tls::client::Trust;

/// How long to wait for an agent to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many requests `gear` has open at once by default (`--parallel`).
pub const DEFAULT_PARALLEL: usize = 16;

/// A bound on the requests a set of clients has open at once, shared by the clones: a
/// command over thousands of containers uses this many connections, not thousands.
#[derive(Debug, Clone)]
pub struct Slots(std::sync::Arc<tokio::sync::Semaphore>);

impl Slots {
    /// At most `n` (at least 1) requests at once.
    pub fn new(n: usize) -> Slots {
        Slots(std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1))))
    }
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::new(DEFAULT_PARALLEL)
    }
}

/// A client for one agent.
#[derive(Debug, Clone)]
pub struct Client {
    host: HostAddr,
    timeout: Duration,
    token: Option<String>,
    /// The agent's Unix socket, tried first, when `host` is this host's agent.
    local_socket: Option<PathBuf>,
    /// How to check the agent's certificate; TLS is used when this is set.
    trust: Option<Trust>,
    /// Speak plain HTTP to another host when there is no trust.
    insecure: bool,
    /// Wait for one of these before each request, if given.
    slots: Option<Slots>,
}

/// An agent's successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status (2xx).
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl Client {
    /// A client for the agent at `host`; each request may take at most `timeout`.
    pub fn new(host: HostAddr, timeout: Duration) -> Client {
        // `localhost` on the default port is this host's agent: its Unix socket needs no
        // token and cannot be reached through a proxy or a browser.
        let local_socket = (host == HostAddr::localhost()).then(|| Paths::system().api_socket());
        Client {
            host,
            timeout,
            token: None,
            local_socket,
            trust: None,
            insecure: false,
            slots: None,
        }
    }

    /// The same client, waiting for one of `slots` before each request.
    pub fn with_slots(mut self, slots: Slots) -> Client {
        self.slots = Some(slots);
        self
    }

    /// The same client, speaking TLS and checking the agent by `trust` (when given).
    pub fn with_trust(mut self, trust: Option<Trust>) -> Client {
        self.trust = trust;
        self
    }

    /// The same client, allowed to speak plain HTTP (token included) to another host.
    pub fn insecure(mut self, yes: bool) -> Client {
        self.insecure = yes;
        self
    }

    /// How this client checks the agent, if it uses TLS.
    pub fn trust(&self) -> Option<&Trust> {
        self.trust.as_ref()
    }

    /// The token this client sends.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The agent's Unix socket, when this client may use it and can connect (root, or the
    /// socket's group); otherwise the client uses TCP.
    async fn connect_local(&self) -> Option<UnixStream> {
        let path = self.local_socket.as_ref()?;
        match UnixStream::connect(path).await {
            Ok(s) => Some(s),
            Err(e) => {
                log::debug!("{}: {e}; using TCP", path.display());
                None
            }
        }
    }

    /// The same client, sending `Authorization: Bearer <token>` (needed by agents on other
    /// hosts).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    /// Sends `req` and returns the answer; a non-2xx answer becomes an error carrying the
    /// agent's message.
    pub async fn send(&self, req: &Request) -> anyhow::Result<Answer> {
        self.bounded(self.send_inner(req)).await
    }

    /// Sends `req` and decodes a JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, req: &Request) -> anyhow::Result<T> {
        let answer = self.send(req).await?;
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("{}: the agent's answer is not the expected JSON", self.host))
    }

    /// Sends `req` and copies the answer's body to `out` as it arrives (logs).
    pub async fn stream_to(
        &self,
        req: &Request,
        out: &mut impl std::io::Write,
    ) -> anyhow::Result<()> {
        self.bounded(async {
            let mut body = self.start_ok(req).await?;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    out.write_all(&data)?;
                    out.flush()?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Sends an install with progress (`?progress=1`), whose answer is JSON lines: each
    /// progress line goes to `on_progress`; the result is returned, or turned into an error
    /// with the agent's message and status.
    pub async fn install_with_progress(
        &self,
        req: &Request,
        mut on_progress: impl FnMut(&str),
    ) -> anyhow::Result<Installed> {
        self.bounded(async {
            let body = self.start_ok(req).await?;
            let mut last = None;
            crate::json_lines::for_each(body, |value| {
                match serde_json::from_value::<InstallLine>(value)? {
                    InstallLine::Progress { progress } => on_progress(&progress),
                    done => last = Some(done),
                }
                Ok(())
            })
            .await
            .with_context(|| format!("{}: reading the answer", self.host))?;
            match last {
                Some(InstallLine::Installed { installed }) => Ok(installed),
                Some(InstallLine::Failed { message, status }) => {
                    Err(anyhow!("{}: {message} ({status})", self.host))
                }
                _ => Err(anyhow!("{}: the answer ended without a result", self.host)),
            }
        })
        .await
    }

    /// Sends a pull (`POST /images/pull`), whose answer is JSON lines: each progress line
    /// goes to `on_progress`; the result is returned, or turned into an error with the
    /// agent's message and status.
    pub async fn pull_with_progress(
        &self,
        req: &Request,
        mut on_progress: impl FnMut(&str),
    ) -> anyhow::Result<crate::api::reply::Pulled> {
        use crate::api::handle::PullLine;
        self.bounded(async {
            let body = self.start_ok(req).await?;
            let mut last = None;
            crate::json_lines::for_each(body, |value| {
                match serde_json::from_value::<PullLine>(value)? {
                    PullLine::Progress { progress } => on_progress(&progress),
                    done => last = Some(done),
                }
                Ok(())
            })
            .await
            .with_context(|| format!("{}: reading the answer", self.host))?;
            match last {
                Some(PullLine::Pulled { pulled }) => Ok(pulled),
                Some(PullLine::Failed { message, status }) => {
                    Err(anyhow!("{}: {message} ({status})", self.host))
                }
                _ => Err(anyhow!("{}: the answer ended without a result", self.host)),
            }
        })
        .await
    }

    /// Creates a repository with progress (`PUT /repository/:id?progress=1`): each of git's
    /// progress lines goes to `on_progress`; the repository is returned, or an error with
    /// the agent's message and status.
    pub async fn create_repo_with_progress(
        &self,
        req: &Request,
        mut on_progress: impl FnMut(&str),
    ) -> anyhow::Result<crate::git::repo::RepoInfo> {
        use crate::api::handle::RepoLine;
        self.bounded(async {
            let body = self.start_ok(req).await?;
            let mut last = None;
            crate::json_lines::for_each(body, |value| {
                match serde_json::from_value::<RepoLine>(value)? {
                    RepoLine::Progress { progress } => on_progress(&progress),
                    RepoLine::Alive {} => {}
                    done => last = Some(done),
                }
                Ok(())
            })
            .await
            .with_context(|| format!("{}: reading the answer", self.host))?;
            match last {
                Some(RepoLine::Created { created }) => Ok(created),
                Some(RepoLine::Failed { message, status }) => {
                    Err(anyhow!("{}: {message} ({status})", self.host))
                }
                _ => Err(anyhow!("{}: the answer ended without a result", self.host)),
            }
        })
        .await
    }

    /// Runs a job (`POST /jobs`): its output goes to `on_output` as it comes; returns how
    /// it ended.
    pub async fn run_job(
        &self,
        req: &Request,
        mut on_output: impl FnMut(&str),
    ) -> anyhow::Result<crate::job::JobEnd> {
        use crate::job::run::JobLine;
        self.bounded(async {
            let body = self.start_ok(req).await?;
            let mut last = None;
            crate::json_lines::for_each(body, |value| {
                match serde_json::from_value::<JobLine>(value)? {
                    JobLine::Output { output } => on_output(&output),
                    JobLine::Alive {} => {}
                    done => last = Some(done),
                }
                Ok(())
            })
            .await
            .with_context(|| format!("{}: reading the answer", self.host))?;
            match last {
                Some(JobLine::Ended { ended }) => Ok(ended),
                Some(JobLine::Failed { message, status }) => {
                    Err(anyhow!("{}: {message} ({status})", self.host))
                }
                _ => Err(anyhow!("{}: the answer ended without a result", self.host)),
            }
        })
        .await
    }

    /// Sends `req` and calls `each` with every JSON line of the answer as it arrives (a
    /// build's log).
    pub async fn lines(
        &self,
        req: &Request,
        each: impl FnMut(serde_json::Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.bounded(async {
            let body = self.start_ok(req).await?;
            crate::json_lines::for_each(body, each)
                .await
                .with_context(|| format!("{}: reading the answer", self.host))
        })
        .await
    }

    /// Runs `work` within the client's time limit, once it has a slot (the wait for one
    /// does not count against the limit).
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let _slot = match &self.slots {
            Some(slots) => Some(slots.0.acquire().await.expect("never closed")),
            None => None,
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: no complete answer within {:?}",
                    self.host,
                    self.timeout
                )
            })?
    }

    /// Sends `req`; returns the body of a successful answer unread, or the agent's error.
    async fn start_ok(&self, req: &Request) -> anyhow::Result<hyper::body::Incoming> {
        let resp = self.start(req).await?;
        let status = resp.status();
        let body = resp.into_body();
        if status.is_success() {
            return Ok(body);
        }
        let bytes = body.collect().await?.to_bytes();
        Err(self.failure(status, &bytes))
    }

    fn failure(&self, status: StatusCode, body: &[u8]) -> anyhow::Error {
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_string());
        anyhow!("{}: {} ({})", self.host, message, status.as_u16())
    }

    async fn send_inner(&self, req: &Request) -> anyhow::Result<Answer> {
        let resp = self.start(req).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{}: reading the answer", self.host))?
            .to_bytes();
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        Err(self.failure(status, &body))
    }

    /// Connects, sends `req`, and returns the response with its body unread.
    async fn start(&self, req: &Request) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let addr = self.host.socket_addr();
        let mut sender = match self.connect_local().await {
            Some(stream) => handshake(&self.host, stream).await?,
            None => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
                    .await
                    .map_err(|_| anyhow!("{}: connection timed out", self.host))?
                    .with_context(|| format!("{}: cannot reach the gear agent", self.host))?;
                match &self.trust {
                    Some(trust) => {
                        let tls = tokio::time::timeout(
                            CONNECT_TIMEOUT,
                            crate::tls::client::connect(stream, self.host.host(), trust),
                        )
                        .await
                        .map_err(|_| anyhow!("{}: TLS handshake timed out", self.host))?
                        .with_context(|| format!("{}: not the agent it should be", self.host))?;
                        handshake(&self.host, tls).await?
                    }
                    None => {
                        let peer = stream.peer_addr().ok();
                        plain_allowed(&self.host, peer, self.insecure)?;
                        handshake(&self.host, stream).await?
                    }
                }
            }
        };
        let body = req.body().unwrap_or_default();
        let mut builder = hyper::Request::builder()
            .method(req.method())
            .uri(req.path_and_query())
            .header(HOST, addr.as_str());
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let http_req = builder.body(Full::new(Bytes::from(body)))?;
        sender.send_request(http_req).await.with_context(|| {
            format!(
                "{}: sending {} {}",
                self.host,
                req.method(),
                req.path_and_query()
            )
        })
    }
}

/// Whether plain HTTP may go to the agent `host` at `peer`: to loopback always, to other
/// hosts only when told `insecure` (the token and every body could be read on the way).
fn plain_allowed(
    host: &HostAddr,
    peer: Option<std::net::SocketAddr>,
    insecure: bool,
) -> anyhow::Result<()> {
    let loopback = peer.is_some_and(|a| a.ip().to_canonical().is_loopback());
    if loopback || insecure {
        return Ok(());
    }
    Err(anyhow!(
        "{host}: refusing to send requests and tokens to another host in the clear: pin its \
         certificate (run `gear init-tls` on it and add `{host} fingerprint=SHA256:...` to \
         ~/.config/gear/hosts), give --ca-file, or pass --insecure"
    ))
}

/// Starts HTTP/1.1 on `stream` and drives the connection in the background.
async fn handshake<IO>(
    host: &HostAddr,
    stream: IO,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("{host}: HTTP handshake"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("connection: {e}");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_to_other_hosts_only_when_insecure() {
        let host: HostAddr = "web1.example".parse().unwrap();
        let at = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 43273));
        for ip in ["127.0.0.1", "127.0.1.1", "::1", "::ffff:127.0.0.1"] {
            assert!(plain_allowed(&host, at(ip), false).is_ok(), "{ip}");
        }
        for ip in ["10.0.0.7", "::ffff:10.0.0.7", "192.0.2.1", "fe80::1"] {
            let err = plain_allowed(&host, at(ip), false).unwrap_err().to_string();
            assert!(
                err.contains("in the clear") && err.contains("--insecure"),
                "{err}"
            );
            assert!(plain_allowed(&host, at(ip), true).is_ok());
        }
        assert!(plain_allowed(&host, None, false).is_err());
    }

    /// A loopback agent that answers every request with an empty container list after
    /// `delay`, and the most connections it held at once.
    async fn slow_agent(
        delay: Duration,
    ) -> (HostAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
        let (open, most) = (
            std::sync::Arc::new(AtomicUsize::new(0)),
            std::sync::Arc::new(AtomicUsize::new(0)),
        );
        let seen = most.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (open, most) = (open.clone(), most.clone());
                tokio::spawn(async move {
                    let now = open.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    open.fetch_sub(1, SeqCst);
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"Containers\":[]}",
                        )
                        .await;
                });
            }
        });
        (host.parse().unwrap(), seen)
    }

    #[tokio::test]
    async fn clients_sharing_slots_keep_at_most_that_many_requests_open() {
        use std::sync::atomic::Ordering::SeqCst;
        let (host, most) = slow_agent(Duration::from_millis(50)).await;
        let slots = Slots::new(3);
        let client = Client::new(host, Duration::from_secs(5)).with_slots(slots);
        let req = Request::ListContainers { all: true };
        let started = std::time::Instant::now();
        let answers = futures_util::future::join_all((0..12).map(|_| client.send(&req))).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(
            most.load(SeqCst),
            3,
            "the agent saw more (or fewer) at once"
        );
        // Four rounds of three: waiting for a slot is not counted as the request's time.
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Without slots, all twelve go at once.
        let (host, most) = slow_agent(Duration::from_millis(50)).await;
        let client = Client::new(host, Duration::from_secs(5));
        futures_util::future::join_all((0..12).map(|_| client.send(&req))).await;
        assert_eq!(most.load(SeqCst), 12);
    }

    #[tokio::test]
    async fn a_deploy_keeps_at_most_parallel_requests_open() {
        use std::sync::atomic::Ordering::SeqCst;

        use crate::deploy::agents::{Agents as _, ClientAgents};
        let (host, most) = slow_agent(Duration::from_millis(50)).await;
        let agents = ClientAgents::new(crate::api::reach::Reach {
            timeout: Duration::from_secs(5),
            slots: Slots::new(2),
            ..Default::default()
        });
        let lists = futures_util::future::join_all((0..8).map(|_| agents.list(&host))).await;
        assert!(lists.iter().all(Result::is_ok), "{lists:?}");
        assert_eq!(most.load(SeqCst), 2);
    }
}
