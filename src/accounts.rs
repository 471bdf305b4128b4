//! Unix users of isolated containers (`--isolate`): `ctr-ID`, with its own uid and gid,
//! no password, a root-owned home under `/var/lib/containers/home`. The container's
//! processes run as that uid, and it is the login of `ssh ctr-ID@host`.
//!
//! [`Accounts`] is the seam: [`Useradd`] runs shadow's `useradd`/`userdel`, [`fake`]
//! records for unit tests.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::id::ContainerId;

/// A container's Unix user, as recorded in its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerUser {
    /// The login, `ctr-ID`.
    pub name: String,
    /// Its uid, which the container's processes run as.
    pub uid: u32,
    /// Its own group.
    pub gid: u32,
}

/// Why an id cannot name a Unix user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Isolate needs an id of lowercase letters, digits, '-' and '_' ('{0}' would not be a portable Unix user name ctr-ID)"
)]
pub struct InvalidLogin(pub String);

/// The login of isolated container `id`, if `id` makes a name `useradd` accepts everywhere
/// (shadow's default rule, `[a-z_][a-z0-9_-]*`; `ctr-` supplies the first letter).
pub fn login(id: &ContainerId) -> Result<String, InvalidLogin> {
    let ok = id
        .as_str()
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    match ok {
        true => Ok(login_name(id)),
        false => Err(InvalidLogin(id.to_string())),
    }
}

/// The login name of container `id`'s Unix user, `ctr-ID` (isolated containers only).
pub fn login_name(id: &ContainerId) -> String {
    format!("ctr-{id}")
}

/// The container whose login is `user`, if `user` has the form `ctr-ID`.
pub fn container_of(user: &str) -> Option<ContainerId> {
    user.strip_prefix("ctr-")?.parse().ok()
}

/// The calls gear makes on the host's user database.
pub trait Accounts: Send + Sync + Default + 'static {
    /// Creates user `name` with home `home` (which must exist), or returns it if it
    /// exists already.
    fn ensure(&self, name: &str, home: &Path) -> anyhow::Result<ContainerUser>;
    /// Removes user `name` and its group; a user that does not exist is no error.
    fn remove(&self, name: &str) -> anyhow::Result<()>;
}

/// The real user database, through shadow's programs (which lock `/etc/passwd`, pick a
/// free uid and gid, and run the distribution's hooks).
#[derive(Debug, Default)]
pub struct Useradd;

impl Accounts for Useradd {
    fn ensure(&self, name: &str, home: &Path) -> anyhow::Result<ContainerUser> {
        if let Some(u) = lookup(name)? {
            return Ok(u);
        }
        // -M: the home is made by gear and owned by root, so the user cannot plant an
        // ~/.ssh/authorized_keys there; -p '*': no password can match, yet the account is
        // not "locked" ('!'), which sshd would refuse even for a key.
        run(Command::new("useradd")
            .args(["--system", "-M", "-U", "-p", "*", "-s", "/bin/sh"])
            .args(["-c", "gear container user", "-d"])
            .arg(home)
            .arg(name))?;
        lookup(name)?.with_context(|| format!("user {name} is missing after useradd"))
    }

    fn remove(&self, name: &str) -> anyhow::Result<()> {
        if lookup(name)?.is_none() {
            return Ok(());
        }
        run(Command::new("userdel").arg(name))
    }
}

fn lookup(name: &str) -> anyhow::Result<Option<ContainerUser>> {
    let user = nix::unistd::User::from_name(name).with_context(|| format!("looking up {name}"))?;
    Ok(user.map(|u| ContainerUser {
        name: name.to_string(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    anyhow::ensure!(
        out.status.success(),
        "{:?} failed ({}): {}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A recording fake for unit tests.
pub mod fake {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// Users in memory, uids from 900.
    #[derive(Debug, Default)]
    pub struct FakeAccounts {
        /// The users that exist, by name.
        pub users: Mutex<BTreeMap<String, ContainerUser>>,
    }

    impl Accounts for FakeAccounts {
        fn ensure(&self, name: &str, home: &Path) -> anyhow::Result<ContainerUser> {
            anyhow::ensure!(home.is_dir(), "home {} does not exist", home.display());
            let mut users = self.users.lock().expect("not poisoned");
            let next = 900 + users.len() as u32;
            let user = users.entry(name.to_string()).or_insert(ContainerUser {
                name: name.to_string(),
                uid: next,
                gid: next,
            });
            Ok(user.clone())
        }

        fn remove(&self, name: &str) -> anyhow::Result<()> {
            self.users.lock().expect("not poisoned").remove(name);
            Ok(())
        }
    }
}
