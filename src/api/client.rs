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

/// How long to wait for an agent to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for one agent.
#[derive(Debug, Clone)]
pub struct Client {
    host: HostAddr,
    timeout: Duration,
    token: Option<String>,
    /// The agent's Unix socket, tried first, when `host` is this host's agent.
    local_socket: Option<PathBuf>,
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
        }
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

    /// Runs `work` within the client's time limit.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
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
                handshake(&self.host, stream).await?
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
