//! The first half of a deploy: what the hosts have now, and whether an instance already is
//! what the plan wants. Only reads; nothing here changes a host.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::Deployment;
use super::agents::Agents;
use super::plan::Planned;
use crate::api::reply::Status;
use crate::container::environment::Environment;
use crate::id::ContainerId;
use crate::links::NetworkLink;
use crate::locator::HostAddr;

/// A host did not answer the listing, so the deploy changed nothing (a placement made
/// without it could put a second copy of an instance somewhere else).
#[derive(Debug, thiserror::Error)]
#[error("nothing was changed: not every host answered:\n  {}", .0.join("\n  "))]
pub struct NotEveryHostAnswered(pub Vec<String>);

/// The instances of `d` on `hosts` (id → host), asking every host at once.
pub async fn existing<A: Agents>(
    agents: &A,
    d: &Deployment,
    hosts: &[HostAddr],
) -> Result<BTreeMap<ContainerId, HostAddr>, NotEveryHostAnswered> {
    let lists = join_all(hosts.iter().map(|h| agents.list(h))).await;
    let mut existing = BTreeMap::new();
    let mut unreachable = Vec::new();
    for (host, list) in hosts.iter().zip(lists) {
        match list {
            Ok(list) => {
                for c in list.containers {
                    if belongs(d, c.id.as_str()) {
                        existing.insert(c.id, host.clone());
                    }
                }
            }
            Err(e) => unreachable.push(format!("{e:#}")),
        }
    }
    match unreachable.is_empty() {
        true => Ok(existing),
        false => Err(NotEveryHostAnswered(unreachable)),
    }
}

/// Whether a container id is an instance of this deployment (`<prefix><name>-<n>`, or one
/// recorded in its instances file).
fn belongs(d: &Deployment, id: &str) -> bool {
    d.containers.iter().any(|c| {
        id.strip_prefix(&d.id_prefix)
            .and_then(|rest| rest.strip_prefix(&c.name))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit()))
    }) || d.instances.iter().any(|i| i.id == id)
}

/// What an instance looks like on its host now.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// Its status; `None` when it is not installed.
    pub status: Option<Status>,
    /// Its environment file (empty when it has none).
    pub env: String,
}

/// What `inst` looks like on its host, asked only when it `exists` there.
pub async fn current<A: Agents>(
    agents: &A,
    inst: &Planned,
    exists: bool,
) -> anyhow::Result<Current> {
    if !exists {
        return Ok(Current::default());
    }
    let status = agents.status(&inst.host, &inst.id).await?;
    // An agent answers 404 for a container without environment: the same as an empty one.
    let env = agents
        .environment(&inst.host, &inst.id)
        .await
        .unwrap_or_default();
    Ok(Current {
        status: Some(status),
        env,
    })
}

impl Current {
    /// Whether it is installed.
    pub fn exists(&self) -> bool {
        self.status.is_some()
    }

    /// Whether it is running.
    pub fn running(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.state.active_state == "active")
    }

    /// Its network links, sorted.
    pub fn links(&self) -> Vec<NetworkLink> {
        let mut links = self
            .status
            .as_ref()
            .map(|s| s.spec.links.clone())
            .unwrap_or_default();
        links.sort();
        links
    }

    /// Whether it already is what the plan wants (links aside): the same image, the ports
    /// asked for (a fixed host port where one is asked) and the same environment.
    pub fn same(&self, inst: &Planned) -> bool {
        let Some(status) = &self.status else {
            return false;
        };
        let have = &status.spec.ports;
        let ports = have.len() == inst.ports.len()
            && inst.ports.iter().all(|want| {
                have.iter().any(|p| {
                    p.internal == want.internal
                        && (want.external == 0 || p.external.get() == want.external)
                })
            });
        status.spec.image == inst.image && ports && environment(inst).render() == self.env
    }
}

/// The environment the plan gives `inst`.
pub fn environment(inst: &Planned) -> Environment {
    let mut env = Environment::new();
    for v in &inst.env {
        env.set(v.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_belong_by_name_and_number() {
        let d = Deployment::parse(r#"{"IdPrefix":"p-","Containers":[{"Name":"web","Image":"a"}]}"#)
            .unwrap();
        assert!(belongs(&d, "p-web-1"));
        assert!(belongs(&d, "p-web-12"));
        assert!(!belongs(&d, "p-web-x"));
        assert!(!belongs(&d, "web-1"));
        assert!(!belongs(&d, "p-webby-1"));
    }
}
