//! The route table: `(method, path, query, body)` → [`Request`], and back.
//!
//! The agent parses with [`Request::parse`]; the CLI builds the same values and turns them
//! into HTTP with [`Request::method`], [`Request::path_and_query`] and [`Request::body`],
//! so both sides share one definition of every route.

use hyper::Method;

use super::error::Error;
use std::time::Duration;

use crate::container::environment::EnvironmentBody;
use crate::container::logs::LogOptions;
use crate::container::spec::{Image, InstallRequest};
use crate::git::refname::{ArchiveFormat, GitRef};
use crate::git::source::{self, SourceUrl};
use crate::id::{ContainerId, RepoId};
use crate::keys::body::{KeyGrant, KeyRevoke, KeysJson, RepoGrant};
use crate::links::NetworkLink;

/// The links of one container, in `POST /containers/links`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ContainerLinks {
    /// The container.
    pub id: ContainerId,
    /// Its links (an empty list clears them).
    #[serde(default)]
    pub network_links: Vec<NetworkLink>,
}

/// The body of `POST /images/pull`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PullBody {
    image: Image,
}

/// The body of `POST /containers/links`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LinksBody {
    links: Vec<ContainerLinks>,
}
use crate::build::BuildRequest;
use crate::build::hook::OnPush;
use crate::build::record::BuildId;
use crate::idle::{IdleMode, IdlePolicy};
use crate::job::JobRequest;

/// One API operation, fully parsed and validated.
// One value per HTTP request, never stored in bulk: the install body's size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `GET /containers[?all=1]`: the containers systemd has loaded; with `all`, also the
    /// installed ones it has not.
    ListContainers {
        /// Include installed containers that systemd has not loaded.
        all: bool,
    },
    /// `POST /containers/links`: replace the links of containers (body
    /// `{"Links": [{"Id": "web-1", "NetworkLinks": [...]}]}`); running ones get them at once.
    SetLinks(Vec<ContainerLinks>),
    /// `DELETE /containers`: stop every container and keep them stopped at boot (geard's
    /// purge); nothing is removed.
    StopAll,
    /// `PUT /container/:id[?progress=1]`: install or update a container (body:
    /// [`InstallRequest`]); with `progress`, the answer is a stream of JSON lines.
    Install {
        /// The container.
        id: ContainerId,
        /// What to install.
        body: InstallRequest,
        /// Answer with progress lines (`{"Progress": ...}`) before the result.
        progress: bool,
    },
    /// `DELETE /container/:id[?volumes=1]`: stop and remove a container and everything it
    /// owns; its owned volumes only with `volumes`.
    Delete {
        /// The container.
        id: ContainerId,
        /// Remove its owned volumes too.
        volumes: bool,
    },
    /// `GET /volumes` or `GET /volumes/:id`: the owned volumes on the host (or of one
    /// container, installed or deleted), with their sizes.
    Volumes(Option<ContainerId>),
    /// `GET /images`: the images on the host, and which containers use each.
    Images,
    /// `POST /images/pull` (body `{"Image": "busybox:latest"}`): pull an image; the answer
    /// is JSON lines of progress, then the result.
    PullImage(Image),
    /// `POST /images/prune`: remove every image no container uses.
    PruneImages,
    /// `POST /jobs` (body: [`JobRequest`]): run an image once as a transient unit; the
    /// answer is JSON lines of its output, then how it ended.
    RunJob(JobRequest),
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
    /// `GET /container/:id/history`: the container's kept versions.
    History(ContainerId),
    /// `POST /container/:id/rollback[?to=N]`: install a kept version again (default: the
    /// one before the newest), switched without refusing a connection.
    Rollback {
        /// The container.
        id: ContainerId,
        /// The version; `None` for the one before the newest.
        to: Option<u32>,
    },
    /// `GET /container/:id/log[?lines=N&follow=0|1&timeout=30s]`: the container's journal,
    /// followed until the timeout.
    Log {
        /// The container.
        id: ContainerId,
        /// How much to send.
        opts: LogOptions,
    },
    /// `GET /environment/:id`: the environment file, as text.
    GetEnvironment(ContainerId),
    /// `PUT /environment/:id` replaces, `PATCH /environment/:id` updates the environment
    /// (body `{"Variables": [{"Name": "A", "Value": "B"}]}`).
    SetEnvironment {
        /// The environment id (a container id).
        id: ContainerId,
        /// The variables.
        body: EnvironmentBody,
        /// Replace (PUT) rather than update (PATCH).
        reset: bool,
    },
    /// `PUT /container/:id/idle[?mode=stop|freeze]`: idle a container now: stop (or freeze)
    /// it until the first connection to one of its published ports wakes it. The mode
    /// defaults to its idle policy's, else `stop`.
    Idle {
        /// The container.
        id: ContainerId,
        /// Stop or freeze; `None` for the container's own choice.
        mode: Option<IdleMode>,
    },
    /// `DELETE /container/:id/idle`: wake an idle container now; the answer comes once its
    /// published ports accept connections.
    Unidle(ContainerId),
    /// `PUT /container/:id/idle-policy` (body `{"After": "5m", "Mode": "stop"}`) sets the
    /// idle policy; `DELETE /container/:id/idle-policy` turns idling off.
    SetIdlePolicy {
        /// The container.
        id: ContainerId,
        /// The new policy; `None` turns idling off.
        policy: Option<IdlePolicy>,
    },
    /// `PUT /keys`: let SSH keys log in to isolated containers (geard's body:
    /// `{"Keys": [{"Type": "authorized_keys", "Value": "ssh-..."}],
    /// "Permissions": [{"Type": "container", "With": "ID"}]}`).
    AddKeys(KeyGrant),
    /// `DELETE /keys`: revoke keys (body as `PUT /keys`, or `"Fingerprints": ["SHA256:..."]`
    /// instead of `Keys`).
    RemoveKeys(KeyRevoke),
    /// `GET /keys?container=ID`: the keys of a container (fingerprints, types, comments).
    ListKeys(ContainerId),
    /// `GET /keys?repository=ID`: the keys of a Git repository, each read or write.
    ListRepoKeys(RepoId),
    /// `PUT /repository/:id[?source=URL][&progress=1]`: create a bare Git repository, empty
    /// (default branch `main`) or cloned from `source`; with `progress`, the answer is
    /// JSON lines of git's progress, then the result.
    CreateRepo {
        /// The repository.
        id: RepoId,
        /// Clone this (any URL git understands, or a local path).
        source: Option<SourceUrl>,
        /// Answer with progress lines before the result.
        progress: bool,
    },
    /// `DELETE /repository/:id`: remove a repository, its keys and its user.
    DeleteRepo(RepoId),
    /// `GET /repositories`: the repositories on the host.
    ListRepos,
    /// `GET /repository/:id/archive/:ref[?format=zip|tar.gz]`: the files of a branch, tag
    /// or commit, as a zip (default) or tar.gz, streamed.
    Archive {
        /// The repository.
        id: RepoId,
        /// The branch, tag or commit.
        git_ref: GitRef,
        /// zip or tar.gz.
        format: ArchiveFormat,
    },
    /// `POST /build-image` (body: [`BuildRequest`]): build an image from source in a
    /// transient unit; the answer is JSON lines of its log, then how it ended.
    BuildImage(BuildRequest),
    /// `GET /builds`: running and recent builds, newest first.
    Builds,
    /// `GET /builds/:id/log[?follow=1]`: a build's log, as text; with `follow`, JSON lines
    /// as `POST /build-image` answers, until the build ends.
    BuildLog {
        /// The build.
        id: BuildId,
        /// Follow it to its end.
        follow: bool,
    },
    /// `PUT /repository/:id/on-push` (body: [`OnPush`]) writes the repository's
    /// `post-receive` hook that builds each push; `DELETE` removes it.
    OnPush {
        /// The repository.
        repo: RepoId,
        /// What each push does; `None` removes the hook.
        on: Option<OnPush>,
    },
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
                    all: query_flag(query, "all", false)?,
                }),
                Method::DELETE => Ok(Request::StopAll),
                _ => Err(not_allowed()),
            },
            ["containers", "links"] => match *method {
                Method::POST => {
                    let body: LinksBody = json_body(body)?;
                    if body.links.is_empty() {
                        return Err(Error::BadRequest(
                            "name at least one container in Links".into(),
                        ));
                    }
                    Ok(Request::SetLinks(body.links))
                }
                _ => Err(not_allowed()),
            },
            ["keys"] => match *method {
                Method::PUT => Ok(Request::AddKeys(
                    json_body::<KeysJson>(body)?
                        .into_grant()
                        .map_err(Error::BadRequest)?,
                )),
                Method::DELETE => Ok(Request::RemoveKeys(
                    json_body::<KeysJson>(body)?
                        .into_revoke()
                        .map_err(Error::BadRequest)?,
                )),
                Method::GET => match (
                    query_value(query, "container"),
                    query_value(query, "repository"),
                ) {
                    (Some(id), None) => Ok(Request::ListKeys(id.parse()?)),
                    (None, Some(id)) => Ok(Request::ListRepoKeys(repo_id(id)?)),
                    _ => Err(Error::BadRequest(
                        "name the container or the repository: ?container=ID or ?repository=ID"
                            .into(),
                    )),
                },
                _ => Err(not_allowed()),
            },
            ["repositories"] => match *method {
                Method::GET => Ok(Request::ListRepos),
                _ => Err(not_allowed()),
            },
            ["repository", id] => {
                let id = repo_id(id)?;
                match *method {
                    Method::PUT => Ok(Request::CreateRepo {
                        id,
                        source: query_value(query, "source")
                            .map(|s| {
                                source::decode_query(s)
                                    .parse::<SourceUrl>()
                                    .map_err(|e| Error::BadRequest(e.to_string()))
                            })
                            .transpose()?,
                        progress: query_flag(query, "progress", false)?,
                    }),
                    Method::DELETE => Ok(Request::DeleteRepo(id)),
                    _ => Err(not_allowed()),
                }
            }
            ["repository", id, "archive", git_ref @ ..] => match *method {
                Method::GET => Ok(Request::Archive {
                    id: repo_id(id)?,
                    git_ref: git_ref.join("/").parse().map_err(
                        |e: crate::git::refname::InvalidRef| Error::BadRequest(e.to_string()),
                    )?,
                    format: query_value(query, "format")
                        .map(|f| f.parse().map_err(Error::BadRequest))
                        .transpose()?
                        .unwrap_or_default(),
                }),
                _ => Err(not_allowed()),
            },
            ["environment", id] => {
                let id: ContainerId = id.parse()?;
                match *method {
                    Method::GET => Ok(Request::GetEnvironment(id)),
                    Method::PUT | Method::PATCH => Ok(Request::SetEnvironment {
                        id,
                        body: json_body(body)?,
                        reset: *method == Method::PUT,
                    }),
                    _ => Err(not_allowed()),
                }
            }
            ["container", id] => {
                let id: ContainerId = id.parse()?;
                match *method {
                    Method::PUT => {
                        let body: InstallRequest = json_body(body)?;
                        body.check().map_err(|e| Error::BadRequest(e.to_string()))?;
                        if body.isolate {
                            crate::accounts::login(&id)
                                .map_err(|e| Error::BadRequest(e.to_string()))?;
                        }
                        Ok(Request::Install {
                            id,
                            body,
                            progress: query_flag(query, "progress", false)?,
                        })
                    }
                    Method::DELETE => Ok(Request::Delete {
                        id,
                        volumes: query_flag(query, "volumes", false)?,
                    }),
                    _ => Err(not_allowed()),
                }
            }
            ["images"] => match *method {
                Method::GET => Ok(Request::Images),
                _ => Err(not_allowed()),
            },
            ["images", "pull"] => match *method {
                Method::POST => Ok(Request::PullImage(json_body::<PullBody>(body)?.image)),
                _ => Err(not_allowed()),
            },
            ["images", "prune"] => match *method {
                Method::POST => Ok(Request::PruneImages),
                _ => Err(not_allowed()),
            },
            ["jobs"] => match *method {
                Method::POST => {
                    let job: JobRequest = json_body(body)?;
                    job.check().map_err(|e| Error::BadRequest(e.to_string()))?;
                    Ok(Request::RunJob(job))
                }
                _ => Err(not_allowed()),
            },
            ["volumes"] => match *method {
                Method::GET => Ok(Request::Volumes(None)),
                _ => Err(not_allowed()),
            },
            ["volumes", id] => match *method {
                Method::GET => Ok(Request::Volumes(Some(id.parse()?))),
                _ => Err(not_allowed()),
            },
            ["build-image"] => match *method {
                Method::POST => {
                    let build: BuildRequest = json_body(body)?;
                    build
                        .check()
                        .map_err(|e| Error::BadRequest(e.to_string()))?;
                    Ok(Request::BuildImage(build))
                }
                _ => Err(not_allowed()),
            },
            ["builds"] => match *method {
                Method::GET => Ok(Request::Builds),
                _ => Err(not_allowed()),
            },
            ["builds", id, "log"] => match *method {
                Method::GET => Ok(Request::BuildLog {
                    id: id.parse().map_err(Error::BadRequest)?,
                    follow: query_flag(query, "follow", false)?,
                }),
                _ => Err(not_allowed()),
            },
            ["repository", id, "on-push"] => {
                let repo = repo_id(id)?;
                match *method {
                    Method::PUT => Ok(Request::OnPush {
                        repo,
                        on: Some(json_body(body)?),
                    }),
                    Method::DELETE => Ok(Request::OnPush { repo, on: None }),
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
                    (&"log", Method::GET) => Ok(Request::Log {
                        id,
                        opts: log_options(query)?,
                    }),
                    (&("status" | "ports" | "started" | "stopped" | "restart" | "log"), _) => {
                        Err(not_allowed())
                    }
                    (&"history", Method::GET) => Ok(Request::History(id)),
                    (&"rollback", Method::POST) => Ok(Request::Rollback {
                        id,
                        to: query_value(query, "to")
                            .map(|n| {
                                n.parse().map_err(|_| {
                                    Error::BadRequest(format!("to={n} is not a version number"))
                                })
                            })
                            .transpose()?,
                    }),
                    (&("history" | "rollback"), _) => Err(not_allowed()),
                    (&"idle", Method::PUT) => Ok(Request::Idle {
                        id,
                        mode: query_value(query, "mode")
                            .map(|m| m.parse().map_err(|e| Error::BadRequest(format!("{e}"))))
                            .transpose()?,
                    }),
                    (&"idle", Method::DELETE) => Ok(Request::Unidle(id)),
                    (&"idle-policy", Method::PUT) => Ok(Request::SetIdlePolicy {
                        id,
                        policy: Some(json_body(body)?),
                    }),
                    (&"idle-policy", Method::DELETE) => {
                        Ok(Request::SetIdlePolicy { id, policy: None })
                    }
                    (&("idle" | "idle-policy"), _) => Err(not_allowed()),
                    _ => Err(Error::NoRoute(path.to_string())),
                }
            }
            _ => Err(Error::NoRoute(path.to_string())),
        }
    }

    /// The route of this request as `docs/api.md` names it, e.g. `GET /container/:id/status`.
    /// The `match` has no catch-all, so a new variant needs its route named here.
    pub fn route(&self) -> String {
        let path = match self {
            Request::ListContainers { .. } | Request::StopAll => "/containers",
            Request::SetLinks(_) => "/containers/links",
            Request::Install { .. } | Request::Delete { .. } => "/container/:id",
            Request::Volumes(None) => "/volumes",
            Request::Volumes(Some(_)) => "/volumes/:id",
            Request::Images => "/images",
            Request::PullImage(_) => "/images/pull",
            Request::PruneImages => "/images/prune",
            Request::RunJob(_) => "/jobs",
            Request::Status(_) => "/container/:id/status",
            Request::Ports(_) => "/container/:id/ports",
            Request::Start(_) => "/container/:id/started",
            Request::Stop(_) => "/container/:id/stopped",
            Request::Restart(_) => "/container/:id/restart",
            Request::History(_) => "/container/:id/history",
            Request::Rollback { .. } => "/container/:id/rollback",
            Request::Log { .. } => "/container/:id/log",
            Request::GetEnvironment(_) | Request::SetEnvironment { .. } => "/environment/:id",
            Request::Idle { .. } | Request::Unidle(_) => "/container/:id/idle",
            Request::SetIdlePolicy { .. } => "/container/:id/idle-policy",
            Request::AddKeys(_)
            | Request::RemoveKeys(_)
            | Request::ListKeys(_)
            | Request::ListRepoKeys(_) => "/keys",
            Request::CreateRepo { .. } | Request::DeleteRepo(_) => "/repository/:id",
            Request::ListRepos => "/repositories",
            Request::Archive { .. } => "/repository/:id/archive/:ref",
            Request::BuildImage(_) => "/build-image",
            Request::Builds => "/builds",
            Request::BuildLog { .. } => "/builds/:id/log",
            Request::OnPush { .. } => "/repository/:id/on-push",
        };
        format!("{} {path}", self.method())
    }

    /// One request of every route and method (for tests, and the check that
    /// `docs/api.md` documents every route).
    pub fn examples() -> Vec<Request> {
        let id: ContainerId = "web-1".parse().expect("a valid id");
        let repo: RepoId = "app1".parse().expect("a valid id");
        let image = "gear-test/httpd".parse().expect("a valid image");
        vec![
            Request::ListContainers { all: false },
            Request::StopAll,
            Request::SetLinks(vec![ContainerLinks {
                id: id.clone(),
                network_links: vec![],
            }]),
            Request::Install {
                id: id.clone(),
                body: InstallRequest::new(image),
                progress: false,
            },
            Request::Delete {
                id: id.clone(),
                volumes: false,
            },
            Request::Volumes(None),
            Request::Volumes(Some(id.clone())),
            Request::Images,
            Request::PullImage("busybox:latest".parse().expect("a valid image")),
            Request::PruneImages,
            Request::RunJob(JobRequest::new(
                "gear-test/httpd".parse().expect("a valid image"),
            )),
            Request::Status(id.clone()),
            Request::Ports(id.clone()),
            Request::Start(id.clone()),
            Request::Stop(id.clone()),
            Request::Restart(id.clone()),
            Request::History(id.clone()),
            Request::Rollback {
                id: id.clone(),
                to: Some(2),
            },
            Request::Log {
                id: id.clone(),
                opts: LogOptions::default(),
            },
            Request::GetEnvironment(id.clone()),
            Request::SetEnvironment {
                id: id.clone(),
                body: EnvironmentBody::default(),
                reset: true,
            },
            Request::SetEnvironment {
                id: id.clone(),
                body: EnvironmentBody::default(),
                reset: false,
            },
            Request::Idle {
                id: id.clone(),
                mode: None,
            },
            Request::Unidle(id.clone()),
            Request::SetIdlePolicy {
                id: id.clone(),
                policy: Some(IdlePolicy {
                    after: "5m".parse().expect("a valid duration"),
                    mode: IdleMode::Stop,
                }),
            },
            Request::SetIdlePolicy {
                id: id.clone(),
                policy: None,
            },
            Request::AddKeys(KeyGrant {
                keys: vec![crate::keys::PublicKey::parse(EXAMPLE_KEY).expect("a valid key")],
                containers: vec![id.clone()],
                repositories: vec![RepoGrant {
                    id: repo.clone(),
                    access: crate::keys::repos::Access::Write,
                }],
            }),
            Request::RemoveKeys(KeyRevoke {
                fingerprints: vec![EXAMPLE_FINGERPRINT.into()],
                containers: vec![id.clone()],
                repositories: vec![repo.clone()],
            }),
            Request::ListKeys(id),
            Request::ListRepoKeys(repo.clone()),
            Request::CreateRepo {
                id: repo.clone(),
                source: Some("https://example.com/app.git".parse().expect("a valid URL")),
                progress: true,
            },
            Request::DeleteRepo(repo.clone()),
            Request::ListRepos,
            Request::Archive {
                id: repo,
                git_ref: "v1.0".parse().expect("a valid ref"),
                format: ArchiveFormat::TarGz,
            },
            Request::BuildImage(BuildRequest::new(
                "/srv/site".parse().expect("a valid source"),
                "gear-test/s2i-web".parse().expect("a valid image"),
                "gear-test/site".parse().expect("a valid tag"),
            )),
            Request::Builds,
            Request::BuildLog {
                id: "18a2b3c4d5e6f7000".parse().expect("a valid build number"),
                follow: false,
            },
            Request::OnPush {
                repo: "site".parse().expect("a valid id"),
                on: Some(OnPush {
                    builder: None,
                    tag: "gear-test/site".parse().expect("a valid tag"),
                    restart: None,
                    branch: None,
                    environment: vec![],
                    clean: false,
                }),
            },
            Request::OnPush {
                repo: "site".parse().expect("a valid id"),
                on: None,
            },
        ]
    }

    /// The HTTP method of this request.
    pub fn method(&self) -> Method {
        match self {
            Request::ListContainers { .. }
            | Request::Status(_)
            | Request::Ports(_)
            | Request::Log { .. }
            | Request::GetEnvironment(_)
            | Request::Volumes(_)
            | Request::Images
            | Request::History(_)
            | Request::ListKeys(_)
            | Request::ListRepoKeys(_)
            | Request::ListRepos
            | Request::Archive { .. } => Method::GET,
            Request::CreateRepo { .. } => Method::PUT,
            Request::DeleteRepo(_) => Method::DELETE,
            Request::AddKeys(_) => Method::PUT,
            Request::RemoveKeys(_) => Method::DELETE,
            Request::Install { .. } | Request::Start(_) | Request::Stop(_) => Method::PUT,
            Request::SetEnvironment { reset: true, .. } => Method::PUT,
            Request::SetEnvironment { reset: false, .. } => Method::PATCH,
            Request::Restart(_)
            | Request::Rollback { .. }
            | Request::SetLinks(_)
            | Request::PullImage(_)
            | Request::PruneImages
            | Request::RunJob(_) => Method::POST,
            Request::Delete { .. } | Request::StopAll => Method::DELETE,
            Request::Idle { .. }
            | Request::SetIdlePolicy {
                policy: Some(_), ..
            } => Method::PUT,
            Request::Unidle(_) | Request::SetIdlePolicy { policy: None, .. } => Method::DELETE,
            Request::BuildImage(_) => Method::POST,
            Request::Builds | Request::BuildLog { .. } => Method::GET,
            Request::OnPush { on: Some(_), .. } => Method::PUT,
            Request::OnPush { on: None, .. } => Method::DELETE,
        }
    }

    /// The path and query string of this request.
    pub fn path_and_query(&self) -> String {
        match self {
            Request::ListContainers { all: false } => "/containers".into(),
            Request::ListContainers { all: true } => "/containers?all=1".into(),
            Request::StopAll => "/containers".into(),
            Request::SetLinks(_) => "/containers/links".into(),
            Request::Install {
                id, progress: true, ..
            } => format!("/container/{id}?progress=1"),
            Request::Install { id, .. } | Request::Delete { id, volumes: false } => {
                format!("/container/{id}")
            }
            Request::Delete { id, volumes: true } => format!("/container/{id}?volumes=1"),
            Request::Volumes(None) => "/volumes".into(),
            Request::Volumes(Some(id)) => format!("/volumes/{id}"),
            Request::Images => "/images".into(),
            Request::PullImage(_) => "/images/pull".into(),
            Request::PruneImages => "/images/prune".into(),
            Request::RunJob(_) => "/jobs".into(),
            Request::Status(id) => format!("/container/{id}/status"),
            Request::Ports(id) => format!("/container/{id}/ports"),
            Request::Start(id) => format!("/container/{id}/started"),
            Request::Stop(id) => format!("/container/{id}/stopped"),
            Request::Restart(id) => format!("/container/{id}/restart"),
            Request::History(id) => format!("/container/{id}/history"),
            Request::Rollback { id, to: None } => format!("/container/{id}/rollback"),
            Request::Rollback { id, to: Some(n) } => format!("/container/{id}/rollback?to={n}"),
            Request::Log { id, opts } => format!(
                "/container/{id}/log?lines={}&follow={}&timeout={}ms",
                opts.lines,
                u8::from(opts.follow),
                opts.timeout.as_millis()
            ),
            Request::GetEnvironment(id) | Request::SetEnvironment { id, .. } => {
                format!("/environment/{id}")
            }
            Request::Idle {
                id,
                mode: Some(mode),
            } => format!("/container/{id}/idle?mode={mode}"),
            Request::Idle { id, mode: None } | Request::Unidle(id) => {
                format!("/container/{id}/idle")
            }
            Request::SetIdlePolicy { id, .. } => format!("/container/{id}/idle-policy"),
            Request::AddKeys(_) | Request::RemoveKeys(_) => "/keys".into(),
            Request::ListKeys(id) => format!("/keys?container={id}"),
            Request::ListRepoKeys(id) => format!("/keys?repository={id}"),
            Request::CreateRepo {
                id,
                source,
                progress,
            } => {
                let mut query = vec![];
                if let Some(url) = source {
                    query.push(format!("source={}", source::encode_query(url.as_str())));
                }
                if *progress {
                    query.push("progress=1".into());
                }
                match query.is_empty() {
                    true => format!("/repository/{id}"),
                    false => format!("/repository/{id}?{}", query.join("&")),
                }
            }
            Request::DeleteRepo(id) => format!("/repository/{id}"),
            Request::ListRepos => "/repositories".into(),
            Request::Archive {
                id,
                git_ref,
                format,
            } => format!("/repository/{id}/archive/{git_ref}?format={format}"),
            Request::BuildImage(_) => "/build-image".into(),
            Request::Builds => "/builds".into(),
            Request::BuildLog { id, follow } => {
                format!("/builds/{id}/log?follow={}", u8::from(*follow))
            }
            Request::OnPush { repo, .. } => format!("/repository/{repo}/on-push"),
        }
    }

    /// The JSON body of this request, if it has one.
    pub fn body(&self) -> Option<Vec<u8>> {
        match self {
            Request::Install { body, .. } => serde_json::to_vec(body).ok(),
            Request::SetEnvironment { body, .. } => serde_json::to_vec(body).ok(),
            Request::RunJob(job) => serde_json::to_vec(job).ok(),
            Request::PullImage(image) => serde_json::to_vec(&PullBody {
                image: image.clone(),
            })
            .ok(),
            Request::SetLinks(links) => serde_json::to_vec(&LinksBody {
                links: links.clone(),
            })
            .ok(),
            Request::SetIdlePolicy {
                policy: Some(policy),
                ..
            } => serde_json::to_vec(policy).ok(),
            Request::AddKeys(grant) => serde_json::to_vec(&KeysJson::grant(grant)).ok(),
            Request::RemoveKeys(revoke) => serde_json::to_vec(&KeysJson::revoke(revoke)).ok(),
            Request::ListKeys(_)
            | Request::ListRepoKeys(_)
            | Request::CreateRepo { .. }
            | Request::DeleteRepo(_)
            | Request::ListRepos
            | Request::Archive { .. } => None,
            Request::Idle { .. }
            | Request::Unidle(_)
            | Request::SetIdlePolicy { policy: None, .. } => None,
            Request::ListContainers { .. }
            | Request::StopAll
            | Request::Log { .. }
            | Request::GetEnvironment(_)
            | Request::Delete { .. }
            | Request::Volumes(_)
            | Request::Images
            | Request::PruneImages
            | Request::Status(_)
            | Request::Ports(_)
            | Request::Start(_)
            | Request::Stop(_)
            | Request::Restart(_)
            | Request::History(_)
            | Request::Rollback { .. } => None,
            Request::BuildImage(build) => serde_json::to_vec(build).ok(),
            Request::OnPush { on: Some(on), .. } => serde_json::to_vec(on).ok(),
            Request::Builds | Request::BuildLog { .. } | Request::OnPush { on: None, .. } => None,
        }
    }
}

/// The key of [`Request::examples`] (made by `ssh-keygen -t ed25519`).
const EXAMPLE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPduUq53I4BsVcweySlwHvi28un2tEbulTTOc5bL851 user@laptop";
/// Its fingerprint, as `ssh-keygen -l` prints it.
const EXAMPLE_FINGERPRINT: &str = "SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg";

/// A repository id from the path or query; a bad one is a 400 that says why.
fn repo_id(s: &str) -> Result<RepoId, Error> {
    s.parse()
        .map_err(|e: crate::id::InvalidRepoId| Error::BadRequest(e.to_string()))
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
fn query_flag(query: Option<&str>, name: &str, default: bool) -> Result<bool, Error> {
    match query_value(query, name) {
        None => Ok(default),
        Some("1" | "true" | "") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(other) => Err(Error::BadRequest(format!(
            "query parameter {name}={other}: expected 1 or 0"
        ))),
    }
}

/// The last value of query parameter `name` (`""` when present without `=`).
fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .rev()
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k == name).then_some(v),
            None => (pair == name).then_some(""),
        })
}

/// `GET /container/:id/log?lines=N&follow=0|1&timeout=DURATION`.
fn log_options(query: Option<&str>) -> Result<LogOptions, Error> {
    let mut opts = LogOptions::default();
    if let Some(v) = query_value(query, "lines") {
        opts.lines = v.parse().map_err(|_| {
            Error::BadRequest(format!("query parameter lines={v}: expected a number"))
        })?;
    }
    opts.follow = query_flag(query, "follow", opts.follow)?;
    if let Some(v) = query_value(query, "timeout") {
        opts.timeout = crate::duration::parse(v).map_err(Error::BadRequest)?;
        // An answer must end: a day is the longest follow the agent serves.
        if opts.timeout > Duration::from_secs(86_400) {
            return Err(Error::BadRequest(format!(
                "timeout={v} is longer than a day"
            )));
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests;
