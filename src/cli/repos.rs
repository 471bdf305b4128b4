//! `gear create-repo | delete-repo | list-repos | archive`: Git repositories on hosts
//! (docs/git.md).

use std::io::{IsTerminal as _, Write};
use std::str::FromStr;

use super::container::each_json;
use super::{Remote, fan_out, table};
use crate::api::Request;
use crate::api::handle::{RepoDeleted, RepoList};
use crate::git::refname::{ArchiveFormat, GitRef};
use crate::git::source::SourceUrl;
use crate::id::RepoId;
use crate::locator::{HostAddr, InvalidLocator, Locator};

/// A repository on an agent: `HOST[:PORT]/ID`, or geard's `repo://[HOST[:PORT]/]ID`; a
/// bare `ID` is on the local agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLocator {
    /// The agent.
    pub host: HostAddr,
    /// The repository.
    pub id: RepoId,
}

impl FromStr for RepoLocator {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("repo://").unwrap_or(s);
        let (host, id) = match rest.rsplit_once('/') {
            Some((host, id)) => (host.parse::<HostAddr>()?, id),
            None => (HostAddr::localhost(), rest),
        };
        Ok(RepoLocator {
            host,
            id: id.parse()?,
        })
    }
}

impl std::fmt::Display for RepoLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.id)
    }
}

impl RepoLocator {
    /// The same place as a [`Locator`], for the helpers that fan requests out (a
    /// repository id is always a valid container id).
    pub fn as_locator(&self) -> Result<Locator, InvalidLocator> {
        Ok(Locator {
            host: self.host.clone(),
            id: self.id.as_str().parse()?,
        })
    }
}

/// A client for answers that last as long as the work (a clone, an archive): it waits a
/// day (or a longer `--timeout`); the agent ends the answer when the work ends.
fn long_client(remote: &Remote, host: &HostAddr) -> crate::api::Client {
    let wait = remote.timeout.max(std::time::Duration::from_secs(86_400));
    crate::api::Client::new(host.clone(), wait).with_token(remote.token.clone())
}

/// `gear create-repo HOST/ID [--from URL]`: git's progress on `err` as it comes.
pub async fn create(
    remote: &Remote,
    loc: &RepoLocator,
    from: Option<SourceUrl>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let req = Request::CreateRepo {
        id: loc.id.clone(),
        source: from,
        progress: true,
    };
    let mut progress = std::io::stderr();
    let result = long_client(remote, &loc.host)
        .create_repo_with_progress(&req, |line| {
            let _ = writeln!(progress, "{loc}: {line}");
        })
        .await;
    match result {
        Ok(info) => {
            writeln!(
                out,
                "{loc}: created{}; clone it with: git clone {}@{}:~ {}",
                info.head
                    .map(|h| format!(" (HEAD {h})"))
                    .unwrap_or_default(),
                info.login,
                loc.host.host(),
                loc.id
            )?;
            Ok(true)
        }
        Err(e) => {
            writeln!(err, "error: {loc}: {e:#}")?;
            Ok(false)
        }
    }
}

/// `gear delete-repo HOST/ID...`.
pub async fn delete(
    remote: &Remote,
    locs: &[RepoLocator],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let locators = locs
        .iter()
        .map(RepoLocator::as_locator)
        .collect::<Result<Vec<_>, _>>()?;
    let repo = |l: &Locator| -> RepoId { l.id.as_str().parse().expect("came from a RepoId") };
    each_json(
        remote,
        &locators,
        |l| Request::DeleteRepo(repo(l)),
        |l, _: &RepoDeleted| format!("{l}: deleted"),
        out,
        err,
    )
    .await
}

/// `gear list-repos [HOST...] [--json]`.
pub async fn list(
    remote: &Remote,
    hosts: &[HostAddr],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = fan_out(hosts, |host| async move {
        remote
            .client(&host)
            .json::<RepoList>(&Request::ListRepos)
            .await
    })
    .await;
    let mut ok = true;
    let mut rows = vec![];
    for (host, result) in results {
        match result {
            Ok(list) if json => writeln!(out, "{}", serde_json::to_string(&list)?)?,
            Ok(list) => {
                for r in list.repositories {
                    rows.push(vec![
                        format!("{host}/{}", r.id),
                        r.head.unwrap_or_else(|| "-".into()),
                        format!("{}@{}:~", r.login, host.host()),
                    ]);
                }
            }
            Err(e) => {
                ok = false;
                writeln!(err, "error: {host}: {e:#}")?;
            }
        }
    }
    if !json {
        write!(
            out,
            "{}",
            table::render(&["REPOSITORY", "HEAD", "CLONE"], &rows)
        )?;
    }
    Ok(ok)
}

/// `gear archive HOST/ID REF [--format zip|tar.gz] > FILE`: the archive on stdout.
pub async fn archive(
    remote: &Remote,
    loc: &RepoLocator,
    git_ref: GitRef,
    format: ArchiveFormat,
) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    anyhow::ensure!(
        !stdout.is_terminal(),
        "the archive is binary: send it to a file (gear archive {loc} {git_ref} > {}-{}.{format})",
        loc.id,
        git_ref.file_stem()
    );
    let req = Request::Archive {
        id: loc.id.clone(),
        git_ref,
        format,
    };
    remote
        .client(&loc.host)
        .stream_to(&req, &mut stdout)
        .await?;
    stdout.flush()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_locators() {
        let l: RepoLocator = "repo://app1".parse().unwrap();
        assert_eq!(l.host, HostAddr::localhost());
        assert_eq!(l.id.as_str(), "app1");
        let l: RepoLocator = "repo://10.0.0.5:8000/app1".parse().unwrap();
        assert_eq!(l.to_string(), "10.0.0.5:8000/app1");
        let l: RepoLocator = "host1/my_app".parse().unwrap();
        assert_eq!(l.host.host(), "host1");
        for bad in ["repo://", "host/App1", "repo://h/a.b1", "x/y/z1234"] {
            assert!(bad.parse::<RepoLocator>().is_err(), "{bad}");
        }
    }
}
