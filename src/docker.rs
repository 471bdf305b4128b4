//! The seam between gear and the Docker engine, and its real implementation: the Engine
//! API over the daemon's unix socket.
//!
//! The container units run `docker run` itself; everything else (whether an image is
//! present, pulls, removing and watching a container) is a small HTTP call, so
//! it goes straight to the socket: a `docker` client process costs ~20-30 ms each, which
//! would cap installs far below 50 per second and slow every start and stop of a unit.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::mpsc::UnboundedSender;

/// The Docker client the container units run (Debian, Fedora and RHEL all install it here).
pub const DOCKER: &str = "/usr/bin/docker";

/// How the engine manages its containers' cgroups (`docker info`'s `CgroupDriver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// The engine writes cgroup paths itself: a parent is a path (`/a.slice/a-b.slice`).
    Cgroupfs,
    /// The engine asks systemd for a scope: a parent is a slice name (`a-b.slice`).
    Systemd,
}

/// The Docker calls gear makes.
pub trait Docker: Send + Sync + 'static {
    /// The engine's cgroup driver.
    fn cgroup_driver(&self) -> impl Future<Output = anyhow::Result<CgroupDriver>> + Send;
    /// Whether `image` is present locally.
    fn image_exists(&self, image: &str) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// Pulls `image`, sending one line per progress message; the error says why it failed.
    fn pull(
        &self,
        image: &str,
        progress: Option<&UnboundedSender<String>>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Removes the container `name` (running or not) and returns once it is gone; absent is
    /// fine.
    fn remove_container(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Waits until the container `name` runs. Fails when it exits first, or when
    /// `starting()` (asked every few milliseconds) says its start was abandoned.
    fn wait_running(
        &self,
        name: &str,
        starting: impl Fn() -> bool + Send,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Whether the kernel killed container `name` for memory since `since` (Docker's `oom`
    /// events, which it keeps after the container is gone).
    fn oom_killed_since(
        &self,
        name: &str,
        since: SystemTime,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// The state and address of container `name`; `None` if there is no such container.
    fn inspect(
        &self,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<ContainerInfo>>> + Send;
    /// Freezes the processes of container `name` (`docker pause`).
    fn pause(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Thaws them (`docker unpause`).
    fn unpause(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The images present.
    fn list_images(&self) -> impl Future<Output = anyhow::Result<Vec<DockerImage>>> + Send;
    /// The id of image `reference`; `None` if it is not present.
    fn image_id(
        &self,
        reference: &str,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send;
    /// Every Docker container, running or not, as (name, id of its image).
    fn container_images(
        &self,
    ) -> impl Future<Output = anyhow::Result<Vec<(String, String)>>> + Send;
    /// Removes image `id` and its tags; `false` if a container uses it (nothing removed).
    fn remove_image(&self, id: &str) -> impl Future<Output = anyhow::Result<bool>> + Send;
}

mod images;
pub use images::DockerImage;

/// What `GET /containers/:name/json` says of a container that gear needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its processes run (paused ones included).
    pub running: bool,
    /// Its processes are frozen.
    pub paused: bool,
    /// Its address on Docker's bridge, where its internal ports answer.
    pub ip: Option<std::net::IpAddr>,
    /// Its PID 1 as the host sees it (its namespaces are under /proc/PID/ns); 0 when not
    /// running.
    pub pid: u32,
    /// Its default gateway on Docker's bridge: the host, as the container reaches it.
    pub gateway: Option<std::net::Ipv4Addr>,
}

impl ContainerInfo {
    /// Reads the Engine API's container document.
    pub fn from_json(doc: &serde_json::Value) -> ContainerInfo {
        let state = &doc["State"];
        let net = &doc["NetworkSettings"];
        // The default bridge fills IPAddress; user networks only fill Networks.*.
        let ip = std::iter::once(&net["IPAddress"])
            .chain(
                net["Networks"]
                    .as_object()
                    .into_iter()
                    .flat_map(|n| n.values().map(|v| &v["IPAddress"])),
            )
            .find_map(|v| v.as_str().and_then(|s| s.parse().ok()));
        ContainerInfo {
            running: state["Running"].as_bool().unwrap_or(false),
            paused: state["Paused"].as_bool().unwrap_or(false),
            ip,
            pid: state["Pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
            gateway: net["Gateway"].as_str().and_then(|g| g.parse().ok()),
        }
    }
}

/// [`Docker`] through the Engine API on the daemon's unix socket.
#[derive(Debug, Clone)]
pub struct DockerApi {
    socket: PathBuf,
}

impl Default for DockerApi {
    /// The socket of `DOCKER_HOST` when it is `unix://PATH`, else `/var/run/docker.sock`.
    fn default() -> Self {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
        DockerApi { socket }
    }
}

/// Splits a reference into the API's `fromImage` and `tag` (Docker pulls every tag when
/// the tag is empty, so `latest` is spelled out).
fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

/// A time as the Engine API's `since` takes it: seconds and nanoseconds since the epoch.
fn docker_time(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Percent-encodes a query value (references use only `[A-Za-z0-9._/:@-]`, but be safe).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl DockerApi {
    /// Sends one request; returns the status and the response body (not yet read).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
    ) -> anyhow::Result<(StatusCode, hyper::body::Incoming)> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "connecting to the Docker engine at {}",
                self.socket.display()
            )
        })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log::debug!("docker connection: {e}");
            }
        });
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("docker API {path}"))?;
        Ok((resp.status(), resp.into_body()))
    }

    /// Docker's `{"message": ...}` of a failed call.
    pub(crate) async fn message(body: hyper::body::Incoming) -> String {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string())
    }
}

impl Docker for DockerApi {
    async fn cgroup_driver(&self) -> anyhow::Result<CgroupDriver> {
        let (status, body) = self.call(Method::GET, "/info").await?;
        if !status.is_success() {
            return Err(anyhow!(
                "docker info: {} ({status})",
                Self::message(body).await
            ));
        }
        let bytes = body
            .collect()
            .await
            .context("reading docker info")?
            .to_bytes();
        let info: serde_json::Value =
            serde_json::from_slice(&bytes).context("parsing docker info")?;
        Ok(match info["CgroupDriver"].as_str() {
            Some("systemd") => CgroupDriver::Systemd,
            _ => CgroupDriver::Cgroupfs,
        })
    }

    async fn image_exists(&self, image: &str) -> anyhow::Result<bool> {
        let (status, body) = self
            .call(Method::GET, &format!("/images/{image}/json"))
            .await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(anyhow!(
                "inspecting image {image}: {} ({s})",
                Self::message(body).await
            )),
        }
    }

    async fn pull(
        &self,
        image: &str,
        progress: Option<&UnboundedSender<String>>,
    ) -> anyhow::Result<()> {
        let (from, tag) = split_reference(image);
        let path = format!(
            "/images/create?fromImage={}&tag={}",
            encode(from),
            encode(tag)
        );
        let (status, body) = self.call(Method::POST, &path).await?;
        if !status.is_success() {
            // Docker's message says what failed; its HTTP status is not the user's business
            // (the agent answers with its own).
            return Err(anyhow!("{}", Self::message(body).await));
        }
        // The body is a stream of JSON objects; an `error` in one of them is the failure.
        crate::json_lines::for_each(body, |msg| {
            if let Some(err) = msg["error"].as_str() {
                return Err(anyhow!("{err}"));
            }
            if let Some(tx) = progress {
                let text = [&msg["id"], &msg["status"], &msg["progress"]]
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = tx.send(text);
            }
            Ok(())
        })
        .await
    }

    async fn remove_container(&self, name: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .call(Method::DELETE, &format!("/containers/{name}?force=1"))
            .await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            // `docker run --rm` asks the engine to remove the container when it exits; a
            // removal already under way ends with the container gone, so wait for that.
            StatusCode::CONFLICT => {
                let (status, body) = self
                    .call(
                        Method::POST,
                        &format!("/containers/{name}/wait?condition=removed"),
                    )
                    .await?;
                match status {
                    s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
                    s => Err(anyhow!(
                        "waiting for the removal of container {name}: {} ({s})",
                        Self::message(body).await
                    )),
                }
            }
            s => Err(anyhow!(
                "removing container {name}: {} ({s})",
                Self::message(body).await
            )),
        }
    }

    async fn wait_running(
        &self,
        name: &str,
        starting: impl Fn() -> bool + Send,
    ) -> anyhow::Result<()> {
        // Subscribe first, with the events since now replayed (the engine may register the
        // subscription after it answers), then look: a start between the two is in the
        // stream, and one before both is seen by the look. Events of an earlier run of
        // this name all came before now: the unit removed that container before its start.
        let filters = format!(
            r#"{{"type":["container"],"container":["{name}"],"event":["start","die","destroy"]}}"#
        );
        let path = format!(
            "/events?since={}&filters={}",
            docker_time(SystemTime::now()),
            encode(&filters)
        );
        let (status, mut body) = self.call(Method::GET, &path).await?;
        if !status.is_success() {
            return Err(anyhow!(
                "watching container {name}: {} ({status})",
                Self::message(body).await
            ));
        }
        if self.inspect(name).await?.is_some_and(|c| c.running) {
            return Ok(());
        }
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut pending = Vec::new();
        loop {
            tokio::select! {
                frame = body.frame() => {
                    let Some(frame) = frame else {
                        bail!("the Docker engine closed its event stream");
                    };
                    let Ok(data) = frame?.into_data() else { continue };
                    pending.extend_from_slice(&data);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else {
                            continue;
                        };
                        match event["Action"].as_str() {
                            Some("start") => return Ok(()),
                            Some(action) => bail!("container {name} ended while starting ({action})"),
                            None => {}
                        }
                    }
                }
                _ = tick.tick() => {
                    if !starting() {
                        bail!("the start of container {name} was abandoned before it ran");
                    }
                }
            }
        }
    }

    async fn oom_killed_since(&self, name: &str, since: SystemTime) -> anyhow::Result<bool> {
        let filters = format!(r#"{{"type":["container"],"container":["{name}"],"event":["oom"]}}"#);
        // `until` now: the engine answers what it has and ends the stream.
        let path = format!(
            "/events?since={}&until={}&filters={}",
            docker_time(since),
            docker_time(SystemTime::now()),
            encode(&filters)
        );
        let (status, body) = self.call(Method::GET, &path).await?;
        if !status.is_success() {
            return Err(anyhow!(
                "reading the events of {name}: {} ({status})",
                Self::message(body).await
            ));
        }
        let mut oom = false;
        crate::json_lines::for_each(body, |event| {
            oom |= event["Action"].as_str() == Some("oom");
            Ok(())
        })
        .await?;
        Ok(oom)
    }

    async fn inspect(&self, name: &str) -> anyhow::Result<Option<ContainerInfo>> {
        let (status, body) = self
            .call(Method::GET, &format!("/containers/{name}/json"))
            .await?;
        match status {
            StatusCode::OK => {
                let bytes = body.collect().await?.to_bytes();
                let doc: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing docker inspect {name}"))?;
                Ok(Some(ContainerInfo::from_json(&doc)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(anyhow!(
                "inspecting container {name}: {} ({s})",
                Self::message(body).await
            )),
        }
    }

    async fn pause(&self, name: &str) -> anyhow::Result<()> {
        self.post_ok(&format!("/containers/{name}/pause"), "pausing", name)
            .await
    }

    async fn unpause(&self, name: &str) -> anyhow::Result<()> {
        self.post_ok(&format!("/containers/{name}/unpause"), "unpausing", name)
            .await
    }

    async fn list_images(&self) -> anyhow::Result<Vec<DockerImage>> {
        images::list(self).await
    }

    async fn image_id(&self, reference: &str) -> anyhow::Result<Option<String>> {
        images::id_of(self, reference).await
    }

    async fn container_images(&self) -> anyhow::Result<Vec<(String, String)>> {
        images::container_images(self).await
    }

    async fn remove_image(&self, id: &str) -> anyhow::Result<bool> {
        images::remove(self, id).await
    }
}

impl DockerApi {
    /// A POST whose answer is only a status.
    async fn post_ok(&self, path: &str, doing: &str, name: &str) -> anyhow::Result<()> {
        let (status, body) = self.call(Method::POST, path).await?;
        match status.is_success() {
            true => Ok(()),
            false => Err(anyhow!(
                "{doing} container {name}: {} ({status})",
                Self::message(body).await
            )),
        }
    }
}

#[cfg(test)]
pub mod fake {
    //! A recording, in-memory [`Docker`] for unit tests.

    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use tokio::sync::mpsc::UnboundedSender;

    use super::{CgroupDriver, ContainerInfo, Docker};

    /// Images present, images a pull can fetch, and every call made.
    #[derive(Debug, Default)]
    pub struct FakeDocker {
        /// Images present locally.
        pub images: Mutex<BTreeSet<String>>,
        /// Images a pull succeeds for.
        pub pullable: Mutex<BTreeSet<String>>,
        /// Every call, in order, as text.
        pub calls: Mutex<Vec<String>>,
        /// Containers `inspect` finds, by name.
        pub containers: Mutex<std::collections::BTreeMap<String, ContainerInfo>>,
        /// Docker containers and the image id each uses (`container_images`).
        pub container_images: Mutex<Vec<(String, String)>>,
        /// Containers the kernel killed for memory.
        pub oom_killed: Mutex<BTreeSet<String>>,
    }

    impl FakeDocker {
        /// Makes `inspect` find `name` running as `pid` at 127.0.0.1, where a test's own
        /// listener stands in for the container's program.
        pub fn run_on_loopback(&self, name: &str, pid: u32) {
            self.containers.lock().unwrap().insert(
                name.into(),
                ContainerInfo {
                    running: true,
                    pid,
                    ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                    ..Default::default()
                },
            );
        }
    }

    /// The id the fake gives image `reference`.
    pub fn fake_id(reference: &str) -> String {
        format!("sha256:{reference}")
    }

    impl Docker for FakeDocker {
        async fn cgroup_driver(&self) -> anyhow::Result<CgroupDriver> {
            Ok(CgroupDriver::Cgroupfs)
        }

        async fn oom_killed_since(
            &self,
            name: &str,
            _since: std::time::SystemTime,
        ) -> anyhow::Result<bool> {
            self.calls.lock().unwrap().push(format!("oom? {name}"));
            Ok(self.oom_killed.lock().unwrap().contains(name))
        }

        async fn image_exists(&self, image: &str) -> anyhow::Result<bool> {
            Ok(self.images.lock().unwrap().contains(image))
        }

        async fn pull(
            &self,
            image: &str,
            progress: Option<&UnboundedSender<String>>,
        ) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("pull {image}"));
            anyhow::ensure!(
                self.pullable.lock().unwrap().contains(image),
                "manifest for {image} not found"
            );
            if let Some(tx) = progress {
                let _ = tx.send(format!("{image} Pulling"));
            }
            self.images.lock().unwrap().insert(image.to_string());
            Ok(())
        }

        async fn remove_container(&self, name: &str) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("rm {name}"));
            self.containers.lock().unwrap().remove(name);
            Ok(())
        }

        async fn wait_running(
            &self,
            name: &str,
            _starting: impl Fn() -> bool + Send,
        ) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("wait {name}"));
            let running = self
                .containers
                .lock()
                .unwrap()
                .get(name)
                .is_some_and(|c| c.running);
            anyhow::ensure!(running, "container {name} ended while starting");
            Ok(())
        }

        async fn inspect(&self, name: &str) -> anyhow::Result<Option<ContainerInfo>> {
            Ok(self.containers.lock().unwrap().get(name).cloned())
        }

        async fn pause(&self, name: &str) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("pause {name}"));
            let mut all = self.containers.lock().unwrap();
            let c = all
                .get_mut(name)
                .ok_or_else(|| anyhow::anyhow!("no {name}"))?;
            c.paused = true;
            Ok(())
        }

        async fn unpause(&self, name: &str) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("unpause {name}"));
            if let Some(c) = self.containers.lock().unwrap().get_mut(name) {
                c.paused = false;
            }
            Ok(())
        }

        async fn list_images(&self) -> anyhow::Result<Vec<super::DockerImage>> {
            let images = self.images.lock().unwrap();
            Ok(images
                .iter()
                .map(|r| super::DockerImage {
                    id: fake_id(r),
                    tags: vec![r.clone()],
                    bytes: 1000,
                    created: 0,
                })
                .collect())
        }

        async fn image_id(&self, reference: &str) -> anyhow::Result<Option<String>> {
            let images = self.images.lock().unwrap();
            Ok(images.contains(reference).then(|| fake_id(reference)))
        }

        async fn container_images(&self) -> anyhow::Result<Vec<(String, String)>> {
            Ok(self.container_images.lock().unwrap().clone())
        }

        async fn remove_image(&self, id: &str) -> anyhow::Result<bool> {
            self.calls.lock().unwrap().push(format!("rmi {id}"));
            if self
                .container_images
                .lock()
                .unwrap()
                .iter()
                .any(|(_, i)| i == id)
            {
                return Ok(false);
            }
            self.images.lock().unwrap().retain(|r| fake_id(r) != id);
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ContainerInfo, split_reference};

    #[test]
    fn inspect_finds_state_and_bridge_address() {
        let doc = serde_json::json!({
            "State": {"Running": true, "Paused": true},
            "NetworkSettings": {"IPAddress": "", "Networks": {"net": {"IPAddress": "10.213.0.7"}}}
        });
        let info = ContainerInfo::from_json(&doc);
        assert!(info.running && info.paused);
        assert_eq!(info.ip, Some("10.213.0.7".parse().unwrap()));
        assert_eq!(
            ContainerInfo::from_json(&serde_json::json!({})),
            ContainerInfo::default()
        );
    }

    #[test]
    fn times_are_seconds_and_nanoseconds() {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(17, 5);
        assert_eq!(super::docker_time(t), "17.000000005");
    }

    #[test]
    fn references_split_into_name_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(
            split_reference("gear-test/httpd:v1"),
            ("gear-test/httpd", "v1")
        );
        assert_eq!(split_reference("reg:5000/a/b"), ("reg:5000/a/b", "latest"));
        assert_eq!(split_reference("reg:5000/a/b:2"), ("reg:5000/a/b", "2"));
        assert_eq!(split_reference("a/b@sha256:00"), ("a/b@sha256:00", ""));
    }
}
