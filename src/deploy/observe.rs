//! The first half of a deploy: what the hosts have now, and whether an instance already is
//! what the plan wants. Only reads; nothing here changes a host.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use super::agents::Agents;
use super::plan::Planned;
use super::{Deployment, Instance};
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

/// Containers with the ids of this deployment's instances that it did not make, so the
/// deploy changed nothing: installing over them, or deleting them, would lose someone
/// else's container.
#[derive(Debug, thiserror::Error)]
#[error(
    "nothing was changed: {} not made by this deployment (not in its instances file); \
     gear deploy never replaces or deletes what it did not make: delete {}, or change the \
     deployment's IdPrefix",
    .0.join(", "),
    if .0.len() == 1 { "it" } else { "them" }
)]
pub struct NotMadeHere(pub Vec<String>);

/// The containers a deployment made: the instances its instances files record, each on
/// its host.
#[derive(Debug, Clone, Default)]
pub struct Owned(BTreeSet<(String, Option<String>)>);

impl Owned {
    /// The instances in `records` (a deployment's own, its previous instances file's).
    pub fn new<'a>(records: impl IntoIterator<Item = &'a Instance>) -> Owned {
        Owned(
            records
                .into_iter()
                .map(|i| (i.id.clone(), i.on.clone()))
                .collect(),
        )
    }

    /// Whether container `id` on `host` is one of them (a record without a host, from an
    /// older file, stands for any host).
    fn owns(&self, id: &ContainerId, host: &HostAddr) -> bool {
        self.0
            .iter()
            .any(|(i, on)| i == id.as_str() && on.as_ref().is_none_or(|on| *on == host.to_string()))
    }
}

/// What the hosts hold with this deployment's ids.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Its instances (id → host): the containers it made.
    pub existing: BTreeMap<ContainerId, HostAddr>,
    /// Containers whose ids look like its instances' but that it did not make.
    pub foreign: Vec<(ContainerId, HostAddr)>,
}

/// What `hosts` hold with the ids of `d`'s instances, asking every host at once; only the
/// containers in `owned` count as the deployment's.
pub async fn existing<A: Agents>(
    agents: &A,
    d: &Deployment,
    hosts: &[HostAddr],
    owned: &Owned,
) -> Result<Found, NotEveryHostAnswered> {
    let lists = join_all(hosts.iter().map(|h| agents.list(h))).await;
    let mut found = Found::default();
    let mut unreachable = Vec::new();
    for (host, list) in hosts.iter().zip(lists) {
        match list {
            Ok(list) => {
                for c in list.containers {
                    if !belongs(d, c.id.as_str()) {
                        continue;
                    }
                    match owned.owns(&c.id, host) {
                        true => found.existing.insert(c.id, host.clone()),
                        false => {
                            found.foreign.push((c.id, host.clone()));
                            None
                        }
                    };
                }
            }
            Err(e) => unreachable.push(format!("{e:#}")),
        }
    }
    match unreachable.is_empty() {
        true => Ok(found),
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
