//! Validated identifiers: container ids and the unit names derived from them, and the ids
//! of Git repositories.
//!
//! Ids are parsed once at the boundary (HTTP path, CLI locator, file name) and trusted
//! afterwards, so an invalid id can never reach a path, a unit name or a D-Bus call.

use std::fmt;
use std::str::FromStr;

use crate::serde_str::serde_via_str;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// Fewer than 4 or more than 24 characters.
    #[error("identifier '{0}' must be 4 to 24 characters long")]
    Length(String),
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error(
        "identifier '{id}' contains '{ch}'; only letters, digits, '_', '-' and '.' are allowed"
    )]
    Character {
        /// The whole input, for the message.
        id: String,
        /// The first offending character.
        ch: char,
    },
    /// Only dots (a directory, not a container), or a leading `-` (an option to programs).
    #[error("identifier '{0}' is reserved: it must not start with '-' or be only dots")]
    Reserved(String),
}

/// A container id: geard's rule `[A-Za-z0-9_.-]{4,24}`; its unit is `ctr-<id>.service`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The systemd unit that runs this container.
    pub fn unit_name(&self) -> String {
        format!("{}{}{}", UNIT_PREFIX, self.0, UNIT_SUFFIX)
    }

    /// The id of the container whose unit is `name`, if `name` is a container unit.
    pub fn from_unit_name(name: &str) -> Option<ContainerId> {
        name.strip_prefix(UNIT_PREFIX)?
            .strip_suffix(UNIT_SUFFIX)?
            .parse()
            .ok()
    }
}

/// Container units are `ctr-<id>.service`, as in geard, so existing tooling keeps working.
const UNIT_PREFIX: &str = "ctr-";
const UNIT_SUFFIX: &str = ".service";

/// The glob that matches every container unit (for `ListUnitsByPatterns`).
pub const UNIT_PATTERN: &str = "ctr-*.service";

impl FromStr for ContainerId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(InvalidId::Character {
                id: s.to_string(),
                ch,
            });
        }
        if !(4..=24).contains(&s.len()) {
            return Err(InvalidId::Length(s.to_string()));
        }
        // A leading '-' would be read as an option by the programs the id is passed to
        // (gear-step STEP ID, docker ... NAME).
        if s.chars().all(|c| c == '.') || s.starts_with('-') {
            return Err(InvalidId::Reserved(s.to_string()));
        }
        Ok(ContainerId(s.to_string()))
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(ContainerId);

/// A Git repository id: a container id (4 to 24 characters) that also makes a portable
/// Unix user name `git-ID` (lowercase letters, digits, `-` and `_`), because each
/// repository has its own user, the login of `git clone git-ID@host:~`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoId(String);

/// Why a string is not a repository id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRepoId {
    /// Not even a valid container id.
    #[error("repository {0}")]
    Id(#[from] InvalidId),
    /// A valid id that would not make a portable user name `git-ID`.
    #[error(
        "repository id '{0}' may hold only lowercase letters, digits, '-' and '_' (it names the Unix user git-ID)"
    )]
    Login(String),
}

impl RepoId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Unix user of the repository, `git-ID`: it owns the repository, and it is the
    /// SSH login that reaches it.
    pub fn login(&self) -> String {
        format!("{REPO_LOGIN_PREFIX}{}", self.0)
    }

    /// The repository whose login is `user`, if `user` has the form `git-ID`.
    pub fn from_login(user: &str) -> Option<RepoId> {
        user.strip_prefix(REPO_LOGIN_PREFIX)?.parse().ok()
    }
}

/// Repository logins are `git-<id>`, as in geard (`git clone git-ID@host:~`).
const REPO_LOGIN_PREFIX: &str = "git-";

impl FromStr for RepoId {
    type Err = InvalidRepoId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id: ContainerId = s.parse()?;
        // shadow's portable rule `[a-z_][a-z0-9_-]*` (`git-` supplies the first letter).
        if !id
            .as_str()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
        {
            return Err(InvalidRepoId::Login(s.to_string()));
        }
        Ok(RepoId(id.0))
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(RepoId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_geard_ids() {
        for ok in [
            "web-1",
            "my-sample-service.1",
            "a_b.c-d",
            "abcd",
            "x".repeat(24).as_str(),
        ] {
            assert_eq!(ok.parse::<ContainerId>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(
            "abc".parse::<ContainerId>(),
            Err(InvalidId::Length("abc".into()))
        );
        assert!(matches!(
            "x".repeat(25).parse::<ContainerId>(),
            Err(InvalidId::Length(_))
        ));
        for bad in [
            "web/1", "we b1", "web\n1", "web%1", "wéb1", "ab$c", "....", "abc\0", "-web1", "--help",
        ] {
            assert!(bad.parse::<ContainerId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repository_ids_make_portable_logins() {
        let id: RepoId = "my-app_2".parse().unwrap();
        assert_eq!(id.login(), "git-my-app_2");
        assert_eq!(RepoId::from_login("git-my-app_2"), Some(id));
        // geard's TrimLeft cut-set bug: git-tiger is tiger, not "er".
        assert_eq!(RepoId::from_login("git-tiger").unwrap().as_str(), "tiger");
        assert_eq!(RepoId::from_login("ctr-tiger"), None);
        for bad in [
            "My-App", "app.1", "abc", "-app", "a/bc", "../x", "ab c", "app\n",
        ] {
            assert!(bad.parse::<RepoId>().is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            "Web-1".parse::<RepoId>(),
            Err(InvalidRepoId::Login(_))
        ));
    }

    #[test]
    fn unit_names_round_trip() {
        let id: ContainerId = "my_web.1".parse().unwrap();
        assert_eq!(id.unit_name(), "ctr-my_web.1.service");
        assert_eq!(ContainerId::from_unit_name(&id.unit_name()), Some(id));
        assert_eq!(ContainerId::from_unit_name("ctr-x.service"), None);
        assert_eq!(ContainerId::from_unit_name("gear-api.service"), None);
    }
}
