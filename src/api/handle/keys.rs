//! `PUT|DELETE|GET /keys`: SSH keys of isolated containers, kept by `keys::store`, and of
//! Git repositories, kept by `keys::repos`. Every container and repository named is
//! checked before any key is written, so a request either applies to all of them or to
//! none.

use super::{Error, Reply};
use crate::container::host::{Host, Parts};
use crate::git::repo;
use crate::id::{ContainerId, RepoId};
use crate::keys::body::{
    KeyGrant, KeyInfo, KeyRevoke, KeysChanged, KeysList, KeysOf, RepoKeyInfo, RepoKeysList,
    RepoKeysOf,
};
use crate::keys::repos::{self, Access};
use crate::keys::store;

/// The container must be installed and isolated: only an isolated container has the
/// Unix user `ctr-ID` that sshd logs in (docs/ssh.md).
fn require_login<P: Parts>(host: &Host<P>, id: &ContainerId) -> Result<(), Error> {
    match host.spec(id)?.user {
        Some(_) => Ok(()),
        None => Err(Error::NotIsolated(id.clone())),
    }
}

pub(super) async fn add<P: Parts>(host: &Host<P>, grant: KeyGrant) -> Result<Reply, Error> {
    for id in &grant.containers {
        require_login(host, id)?;
    }
    for r in &grant.repositories {
        repo::get(&host.paths, &r.id)?;
    }
    let fingerprints: Vec<String> = grant.keys.iter().map(|k| k.fingerprint().into()).collect();
    let mut containers = Vec::new();
    for id in grant.containers {
        let _lock = host.lock(&id).await?;
        store::add(&host.paths, &id, &grant.keys).map_err(Error::Host)?;
        containers.push(KeysOf {
            id,
            fingerprints: fingerprints.clone(),
        });
    }
    let mut repositories = Vec::new();
    for r in grant.repositories {
        let _lock = repo::lock(&host.paths, &r.id, repo::LOCK_WAIT).await?;
        repos::add(&host.paths, &r.id, &grant.keys, r.access).map_err(Error::Host)?;
        repositories.push(RepoKeysOf {
            id: r.id,
            fingerprints: fingerprints.clone(),
        });
    }
    Reply::ok(&KeysChanged {
        containers,
        repositories,
    })
}

pub(super) async fn remove<P: Parts>(host: &Host<P>, revoke: KeyRevoke) -> Result<Reply, Error> {
    for id in &revoke.containers {
        host.spec(id)?;
    }
    for id in &revoke.repositories {
        repo::get(&host.paths, id)?;
    }
    let mut containers = Vec::new();
    for id in revoke.containers {
        let _lock = host.lock(&id).await?;
        let fingerprints =
            store::remove(&host.paths, &id, &revoke.fingerprints).map_err(Error::Host)?;
        containers.push(KeysOf { id, fingerprints });
    }
    let mut repositories = Vec::new();
    for id in revoke.repositories {
        let _lock = repo::lock(&host.paths, &id, repo::LOCK_WAIT).await?;
        let fingerprints =
            repos::remove(&host.paths, &id, &revoke.fingerprints).map_err(Error::Host)?;
        repositories.push(RepoKeysOf { id, fingerprints });
    }
    let none = containers.iter().all(|c| c.fingerprints.is_empty())
        && repositories.iter().all(|r| r.fingerprints.is_empty());
    if none {
        return Err(Error::NoKeys);
    }
    Reply::ok(&KeysChanged {
        containers,
        repositories,
    })
}

pub(super) fn list<P: Parts>(host: &Host<P>, id: ContainerId) -> Result<Reply, Error> {
    host.spec(&id)?;
    let mut warnings = Vec::new();
    let keys = store::read(&host.paths, &id, &mut warnings);
    if !warnings.is_empty() {
        log::warn!("{}", String::from_utf8_lossy(&warnings).trim_end());
    }
    Reply::ok(&KeysList {
        id,
        keys: keys.iter().map(KeyInfo::from).collect(),
    })
}

pub(super) fn list_repository<P: Parts>(host: &Host<P>, id: RepoId) -> Result<Reply, Error> {
    repo::get(&host.paths, &id)?;
    let mut warnings = Vec::new();
    let keys = repos::read(&host.paths, &id, &mut warnings);
    if !warnings.is_empty() {
        log::warn!("{}", String::from_utf8_lossy(&warnings).trim_end());
    }
    Reply::ok(&RepoKeysList {
        id,
        keys: keys
            .iter()
            .map(|k| RepoKeyInfo {
                key: KeyInfo::from(&k.key),
                write: k.access == Access::Write,
            })
            .collect(),
    })
}
