//! `gear add-keys | remove-keys | list-keys`: SSH keys that log in to isolated containers
//! (`ssh ctr-ID@host`) or reach Git repositories (`repo://ID`, `git clone git-ID@host:~`),
//! one request per target, all in parallel.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context as _;
use futures_util::future::join_all;

use super::Remote;
use super::repos::RepoLocator;
use crate::api::Request;
use crate::keys::PublicKey;
use crate::keys::body::{KeyGrant, KeyRevoke, KeysChanged, KeysList, RepoGrant, RepoKeysList};
use crate::keys::repos::Access;
use crate::locator::{HostAddr, Locator};

/// Where keys go: a container (`HOST[:PORT]/ID`) or a repository
/// (`repo://[HOST[:PORT]/]ID`, geard's form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTarget {
    /// An isolated container.
    Container(Locator),
    /// A Git repository.
    Repo(RepoLocator),
}

impl FromStr for KeyTarget {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.starts_with("repo://") {
            true => Ok(KeyTarget::Repo(s.parse()?)),
            false => Ok(KeyTarget::Container(s.parse()?)),
        }
    }
}

impl std::fmt::Display for KeyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyTarget::Container(l) => write!(f, "{l}"),
            KeyTarget::Repo(r) => write!(f, "repo://{r}"),
        }
    }
}

impl KeyTarget {
    fn host(&self) -> &HostAddr {
        match self {
            KeyTarget::Container(l) => &l.host,
            KeyTarget::Repo(r) => &r.host,
        }
    }
}

/// The keys of a public key file: one per line (`KEY.pub` has one, an `authorized_keys`
/// without options may have many); blank lines and `#` comments are skipped.
pub fn read_key_file(path: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !(l.trim().is_empty() || l.trim_start().starts_with('#')))
        .map(|(n, l)| {
            PublicKey::parse(l).with_context(|| format!("{} line {}", path.display(), n + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!keys.is_empty(), "{} holds no key", path.display());
    Ok(keys)
}

/// Sends `make(target)` to every target at once, decodes the JSON answers, prints
/// `describe` for each success on `out` and an `error:` line for each failure on `err`, in
/// the order given. Returns whether all succeeded.
async fn each_target<T: serde::de::DeserializeOwned>(
    remote: &Remote,
    targets: &[KeyTarget],
    make: impl Fn(&KeyTarget) -> Request,
    describe: impl Fn(&KeyTarget, &T) -> String,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = join_all(targets.iter().map(|t| {
        let client = remote.client(t.host());
        let req = make(t);
        async move { client.json::<T>(&req).await }
    }))
    .await;
    let mut ok = true;
    for (t, result) in targets.iter().zip(results) {
        match result {
            Ok(answer) => {
                let text = describe(t, &answer);
                if !text.is_empty() {
                    writeln!(out, "{text}")?;
                }
            }
            Err(e) => {
                ok = false;
                writeln!(err, "error: {t}: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

/// `gear add-keys --key-file F... [--write] TARGET...`.
pub async fn add(
    remote: &Remote,
    files: &[std::path::PathBuf],
    write: bool,
    targets: &[KeyTarget],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    if write
        && let Some(c) = targets
            .iter()
            .find(|t| matches!(t, KeyTarget::Container(_)))
    {
        anyhow::bail!("--write is for repositories (repo://ID); {c} is a container");
    }
    let mut keys = Vec::new();
    for f in files {
        keys.extend(read_key_file(f)?);
    }
    let access = match write {
        true => Access::Write,
        false => Access::Read,
    };
    let make = |t: &KeyTarget| {
        let (containers, repositories) = match t {
            KeyTarget::Container(l) => (vec![l.id.clone()], vec![]),
            KeyTarget::Repo(r) => (
                vec![],
                vec![RepoGrant {
                    id: r.id.clone(),
                    access,
                }],
            ),
        };
        Request::AddKeys(KeyGrant {
            keys: keys.clone(),
            containers,
            repositories,
        })
    };
    let describe = |t: &KeyTarget, c: &KeysChanged| {
        let n = keys.len();
        match t {
            KeyTarget::Container(l) => format!(
                "{t}: {n} key(s) added; log in as ctr-{}@{}",
                l.id,
                l.host.host()
            ),
            KeyTarget::Repo(r) => format!(
                "{t}: {} key(s) added ({}); git clone git-{}@{}:~",
                c.repositories
                    .iter()
                    .map(|r| r.fingerprints.len())
                    .sum::<usize>(),
                access.as_str(),
                r.id,
                r.host.host()
            ),
        }
    };
    each_target(remote, targets, make, describe, out, err).await
}

/// `gear remove-keys (--key-file F | --fingerprint FP)... TARGET...`.
pub async fn remove(
    remote: &Remote,
    files: &[std::path::PathBuf],
    fingerprints: &[String],
    targets: &[KeyTarget],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut fps = fingerprints.to_vec();
    for f in files {
        fps.extend(
            read_key_file(f)?
                .iter()
                .map(|k| k.fingerprint().to_string()),
        );
    }
    anyhow::ensure!(
        !fps.is_empty(),
        "name keys with --key-file or --fingerprint"
    );
    let make = |t: &KeyTarget| {
        let (containers, repositories) = match t {
            KeyTarget::Container(l) => (vec![l.id.clone()], vec![]),
            KeyTarget::Repo(r) => (vec![], vec![r.id.clone()]),
        };
        Request::RemoveKeys(KeyRevoke {
            fingerprints: fps.clone(),
            containers,
            repositories,
        })
    };
    let describe = |t: &KeyTarget, c: &KeysChanged| {
        let removed: Vec<&str> = c
            .containers
            .iter()
            .flat_map(|c| c.fingerprints.iter())
            .chain(c.repositories.iter().flat_map(|r| r.fingerprints.iter()))
            .map(String::as_str)
            .collect();
        format!("{t}: removed {}", removed.join(" "))
    };
    each_target(remote, targets, make, describe, out, err).await
}

/// `gear list-keys TARGET...`: one line per key, `TARGET FINGERPRINT TYPE COMMENT` for a
/// container, `TARGET FINGERPRINT TYPE read|write COMMENT` for a repository.
pub async fn list(
    remote: &Remote,
    targets: &[KeyTarget],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let containers: Vec<KeyTarget> = targets
        .iter()
        .filter(|t| matches!(t, KeyTarget::Container(_)))
        .cloned()
        .collect();
    let repos: Vec<KeyTarget> = targets
        .iter()
        .filter(|t| matches!(t, KeyTarget::Repo(_)))
        .cloned()
        .collect();
    let ok_c = each_target(
        remote,
        &containers,
        |t| match t {
            KeyTarget::Container(l) => Request::ListKeys(l.id.clone()),
            KeyTarget::Repo(r) => Request::ListRepoKeys(r.id.clone()),
        },
        |t, list: &KeysList| {
            list.keys
                .iter()
                .map(|k| format!("{t}  {}  {}  {}", k.fingerprint, k.key_type, k.comment))
                .collect::<Vec<_>>()
                .join("\n")
        },
        out,
        err,
    )
    .await?;
    let ok_r = each_target(
        remote,
        &repos,
        |t| match t {
            KeyTarget::Container(l) => Request::ListKeys(l.id.clone()),
            KeyTarget::Repo(r) => Request::ListRepoKeys(r.id.clone()),
        },
        |t, list: &RepoKeysList| {
            list.keys
                .iter()
                .map(|k| {
                    let access = if k.write { "write" } else { "read" };
                    format!(
                        "{t}  {}  {}  {access}  {}",
                        k.key.fingerprint, k.key.key_type, k.key.comment
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
        out,
        err,
    )
    .await?;
    Ok(ok_c && ok_r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_containers_or_repositories() {
        let t: KeyTarget = "repo://app1".parse().unwrap();
        assert!(matches!(&t, KeyTarget::Repo(r) if r.id.as_str() == "app1"));
        assert_eq!(t.to_string(), "repo://localhost/app1");
        let t: KeyTarget = "h1/web-1".parse().unwrap();
        assert!(matches!(t, KeyTarget::Container(_)));
        assert!("repo://Bad.Id".parse::<KeyTarget>().is_err());
    }
}
