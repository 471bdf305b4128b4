//! The seam between a deploy and the agents it deploys to.
//!
//! [`Agents`] lists only the requests a deploy sends, each answered with a typed value. The
//! real implementation, [`ClientAgents`], sends them with [`api::Client`]; unit tests use
//! `deploy::fake::FakeAgents`, hosts kept in memory.

use std::future::Future;

use crate::api::reply::{Installed, Linked, Status};
use crate::api::request::ContainerLinks;
use crate::api::{self, Request};
use crate::container::ContainerList;
use crate::container::spec::InstallRequest;
use crate::id::ContainerId;
use crate::locator::HostAddr;

/// The requests a deploy sends to the agent on `host`.
pub trait Agents: Send + Sync {
    /// Every container installed on `host` (`GET /containers?all=1`).
    fn list(&self, host: &HostAddr) -> impl Future<Output = anyhow::Result<ContainerList>> + Send;

    /// Container `id`'s state and spec (`GET /container/:id/status`).
    fn status(
        &self,
        host: &HostAddr,
        id: &ContainerId,
    ) -> impl Future<Output = anyhow::Result<Status>> + Send;

    /// Container `id`'s environment file as the agent renders it (`GET /environment/:id`);
    /// an error when it has none.
    fn environment(
        &self,
        host: &HostAddr,
        id: &ContainerId,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;

    /// Installs (or updates) container `id`, without starting it (`PUT /container/:id`).
    fn install(
        &self,
        host: &HostAddr,
        id: &ContainerId,
        body: InstallRequest,
    ) -> impl Future<Output = anyhow::Result<Installed>> + Send;

    /// Sets the network links of containers on `host` (`POST /containers/links`).
    fn set_links(
        &self,
        host: &HostAddr,
        links: Vec<ContainerLinks>,
    ) -> impl Future<Output = anyhow::Result<Linked>> + Send;

    /// Starts container `id` (`PUT /container/:id/started`).
    fn start(
        &self,
        host: &HostAddr,
        id: &ContainerId,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Restarts container `id` (`POST /container/:id/restart`).
    fn restart(
        &self,
        host: &HostAddr,
        id: &ContainerId,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Deletes container `id` (`DELETE /container/:id`).
    fn delete(
        &self,
        host: &HostAddr,
        id: &ContainerId,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The agents over HTTP, one [`api::Client`] per request.
#[derive(Debug, Clone)]
pub struct ClientAgents {
    reach: api::reach::Reach,
}

impl ClientAgents {
    /// Agents reached as `reach` says (time limit, tokens, TLS).
    pub fn new(reach: api::reach::Reach) -> Self {
        ClientAgents { reach }
    }

    fn client(&self, host: &HostAddr) -> api::Client {
        self.reach.client(host)
    }
}

impl Agents for ClientAgents {
    async fn list(&self, host: &HostAddr) -> anyhow::Result<ContainerList> {
        let req = Request::ListContainers { all: true };
        self.client(host).json(&req).await
    }

    async fn status(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<Status> {
        self.client(host).json(&Request::Status(id.clone())).await
    }

    async fn environment(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<String> {
        let answer = self
            .client(host)
            .send(&Request::GetEnvironment(id.clone()))
            .await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    async fn install(
        &self,
        host: &HostAddr,
        id: &ContainerId,
        body: InstallRequest,
    ) -> anyhow::Result<Installed> {
        let req = Request::Install {
            id: id.clone(),
            body,
            progress: false,
        };
        self.client(host).json(&req).await
    }

    async fn set_links(
        &self,
        host: &HostAddr,
        links: Vec<ContainerLinks>,
    ) -> anyhow::Result<Linked> {
        self.client(host).json(&Request::SetLinks(links)).await
    }

    async fn start(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<()> {
        self.client(host).send(&Request::Start(id.clone())).await?;
        Ok(())
    }

    async fn restart(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<()> {
        self.client(host)
            .send(&Request::Restart(id.clone()))
            .await?;
        Ok(())
    }

    async fn delete(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<()> {
        self.client(host)
            .send(&Request::Delete {
                id: id.clone(),
                volumes: false,
            })
            .await?;
        Ok(())
    }
}
