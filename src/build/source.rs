//! Where a build's source comes from, and the git ref to build, parsed once at the edge.
//!
//! geard's rule (`sti`): a clone spec is a URL with scheme `git`, `http`, `https` or
//! `file`, an scp-like `user@host:path.git`, or anything ending in `.git`; gear adds
//! `ssh://` and `repo://ID` (a repository on the host). What remains must be an absolute
//! directory on the host (geard copied relative paths from its own working directory,
//! which a remote agent cannot mean).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::InvalidBuild;
use crate::id::RepoId;
use crate::paths::Paths;
use crate::serde_str::serde_via_str;

/// A build's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory on the agent's host, copied as it is.
    Dir(PathBuf),
    /// A gear repository on the host (`repo://ID`): `/var/lib/containers/git/<ID>`.
    Repo(RepoId),
    /// A git URL the host can reach.
    Git(String),
}

impl Source {
    /// What `git clone` is given for a git source; `None` for a directory.
    pub fn clone_url(&self, paths: &Paths) -> Option<String> {
        match self {
            Source::Dir(_) => None,
            Source::Repo(id) => Some(paths.repository(id).display().to_string()),
            Source::Git(url) => Some(url.clone()),
        }
    }
}

const REPO_SCHEME: &str = "repo://";

fn is_git_url(s: &str) -> bool {
    let scheme = ["git://", "http://", "https://", "file://", "ssh://"];
    if scheme.iter().any(|p| s.starts_with(p)) || s.ends_with(".git") {
        return true;
    }
    // user@host:path.git, as geard's pattern.
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.+".contains(c);
    match s
        .split_once('@')
        .and_then(|(u, r)| Some((u, r.split_once(':')?)))
    {
        Some((user, (host, path))) => {
            !user.is_empty()
                && user.chars().all(ok)
                && !host.is_empty()
                && host.chars().all(ok)
                && path.ends_with(".git")
        }
        None => false,
    }
}

impl FromStr for Source {
    type Err = InvalidBuild;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidBuild::Source(s.to_string());
        // Control characters and a leading '-' (an option to git or cp) are never sources.
        if s.is_empty() || s.len() > 4096 || s.starts_with('-') || s.chars().any(char::is_control) {
            return Err(bad());
        }
        if let Some(id) = s.strip_prefix(REPO_SCHEME) {
            return id.parse().map(Source::Repo).map_err(|_| bad());
        }
        if is_git_url(s) {
            return Ok(Source::Git(s.to_string()));
        }
        let path = Path::new(s);
        if path.is_absolute() && !path.components().any(|c| c.as_os_str() == "..") {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        Err(bad())
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Dir(p) => write!(f, "{}", p.display()),
            Source::Repo(id) => write!(f, "{REPO_SCHEME}{id}"),
            Source::Git(url) => f.write_str(url),
        }
    }
}
serde_via_str!(Source);

/// A branch, tag or commit of a git source (geard's pattern `[\w\d\-_\.\^~]+`, plus `/`
/// for branches such as `feature/x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef(String);

impl GitRef {
    /// The ref as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GitRef {
    type Err = InvalidBuild;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_./^~".contains(c);
        if s.is_empty() || s.len() > 255 || s.starts_with('-') || !s.chars().all(ok) {
            return Err(InvalidBuild::Ref(s.to_string()));
        }
        Ok(GitRef(s.to_string()))
    }
}

impl std::fmt::Display for GitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(GitRef);
