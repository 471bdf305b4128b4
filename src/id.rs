//! Validated identifiers: container ids and the unit names derived from them.
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
    fn unit_names_round_trip() {
        let id: ContainerId = "my_web.1".parse().unwrap();
        assert_eq!(id.unit_name(), "ctr-my_web.1.service");
        assert_eq!(ContainerId::from_unit_name(&id.unit_name()), Some(id));
        assert_eq!(ContainerId::from_unit_name("ctr-x.service"), None);
        assert_eq!(ContainerId::from_unit_name("gear-api.service"), None);
    }
}
