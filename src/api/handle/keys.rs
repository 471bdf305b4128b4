//! `PUT|DELETE|GET /keys`: SSH keys of isolated containers, kept by `keys::store`.
//! Every container named is checked before any key is written, so a request either
//! applies to all of them or to none.

use super::{Error, Reply};
use crate::container::host::{Host, Parts};
use crate::id::ContainerId;
use crate::keys::body::{KeyGrant, KeyInfo, KeyRevoke, KeysChanged, KeysList, KeysOf};
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
    let mut containers = Vec::new();
    for id in grant.containers {
        let _lock = host.lock(&id).await?;
        store::add(&host.paths, &id, &grant.keys).map_err(Error::Host)?;
        let fingerprints = grant.keys.iter().map(|k| k.fingerprint().into()).collect();
        containers.push(KeysOf { id, fingerprints });
    }
    Reply::ok(&KeysChanged { containers })
}

pub(super) async fn remove<P: Parts>(host: &Host<P>, revoke: KeyRevoke) -> Result<Reply, Error> {
    for id in &revoke.containers {
        host.spec(id)?;
    }
    let mut containers = Vec::new();
    for id in revoke.containers {
        let _lock = host.lock(&id).await?;
        let fingerprints =
            store::remove(&host.paths, &id, &revoke.fingerprints).map_err(Error::Host)?;
        containers.push(KeysOf { id, fingerprints });
    }
    if containers.iter().all(|c| c.fingerprints.is_empty()) {
        return Err(Error::NoKeys);
    }
    Reply::ok(&KeysChanged { containers })
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
