//! Builds (`POST /build-image`, `gear build`): source to image, in a transient systemd unit
//! `gear-build-<tag>.service` that runs `gear-builder`.
//!
//! The request names a source (a directory on the host, a gear repository `repo://ID`, or
//! a git URL at a ref), a builder image and the tag to produce. `gear-builder` runs the
//! builder's source-to-image scripts (`assemble`, `run`, `save-artifacts`) in a container
//! and commits it as the tag ([`builder`]), or builds a `Dockerfile` source with
//! `docker build`. The agent starts the unit, streams its log and lists the builds
//! ([`run`]); every build leaves a record and its log under `/var/lib/containers/builds`
//! ([`record`]). Push to deploy writes a repository's `post-receive` hook ([`hook`]).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::container::environment::Variable;
use crate::container::spec::Image;
use crate::serde_str::serde_via_str;

pub mod builder;
pub mod hook;
pub mod record;
pub mod run;
pub mod source;
pub mod unit;

pub use source::{GitRef, Source};

/// Why a build request is refused before anything runs (`400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBuild {
    /// The tag is not an image name gear can tag.
    #[error(
        "tag '{0}' is not a valid image name (lowercase name, optional :tag, no digest, at most 200 characters)"
    )]
    Tag(String),
    /// The source is none of the accepted forms.
    #[error(
        "source '{0}' is not an absolute directory on the host, a repo://ID, or a git URL (git://, http(s)://, ssh://, file://, user@host:path.git, or ending in .git)"
    )]
    Source(String),
    /// The ref holds characters git refs and commits do not have.
    #[error("ref '{0}' may hold only letters, digits and '_-./^~', and not start with '-'")]
    Ref(String),
    /// A geard option that gear does not carry out.
    #[error("{0} is not supported by gear's builds")]
    Unsupported(&'static str),
    /// A field geard requires is missing.
    #[error("{0}")]
    Missing(&'static str),
}

/// The image a build produces: a name with a tag (`:latest` when none is given), so that
/// `site` and `site:latest` are the same build.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildTag(String);

impl BuildTag {
    /// The reference as text, always with its tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The build unit of this tag: `gear-build-<tag>.service`, the tag escaped as
    /// `systemd-escape` does (`/` is `-`, other characters systemd does not allow in a
    /// name are `\xNN`). The unit name is the lock: one build of a tag at a time.
    pub fn unit_name(&self) -> String {
        format!("{UNIT_PREFIX}{}.service", escape(&self.0))
    }
}

/// Build units are `gear-build-<escaped tag>.service`.
pub const UNIT_PREFIX: &str = "gear-build-";

/// systemd's unit name escaping of `s` (`systemd-escape`): reversible, so two tags never
/// share a unit.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

impl FromStr for BuildTag {
    type Err = InvalidBuild;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidBuild::Tag(s.to_string());
        let image: Image = s.parse().map_err(|_| bad())?;
        let text = image.as_str();
        let name_start = text.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match text[name_start..].rfind(':') {
            Some(i) => (&text[..name_start + i], &text[name_start + i + 1..]),
            None => (text, "latest"),
        };
        // Docker refuses uppercase in names, and parts that start with a separator.
        let name_ok = name.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with(['.', '_', '-'])
                && !part.chars().any(|c| c.is_ascii_uppercase())
        });
        if text.contains('@')
            || !name_ok
            || tag.is_empty()
            || tag.len() > 128
            || tag.contains('/')
            || s.len() > 200
        {
            return Err(bad());
        }
        Ok(BuildTag(format!("{name}:{tag}")))
    }
}

impl std::fmt::Display for BuildTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
serde_via_str!(BuildTag);

/// The body of `POST /build-image`: geard's fields (`Source`, `BaseImage`, `Tag`,
/// `RuntimeImage`, `Clean`, `Verbose`, `CallbackUrl`, `Name`) and gear's (`Ref`,
/// `Environment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BuildRequest {
    /// Where the source is.
    pub source: Source,
    /// The builder image whose scripts turn the source into an image (geard's name; it is
    /// not used for a `Dockerfile` source).
    pub base_image: Image,
    /// The image to produce.
    pub tag: BuildTag,
    /// The branch, tag or commit of a git source (default: its default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<GitRef>,
    /// Variables `assemble` sees, also set in the image (build arguments for a
    /// `Dockerfile` source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<Variable>,
    /// A full build: no artifacts from the previous image (`save-artifacts`), no cache.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clean: bool,
    /// geard's; gear's logs always say what they do.
    #[serde(default, skip_serializing)]
    pub verbose: bool,
    /// geard's separate runtime image: refused unless empty.
    #[serde(default, skip_serializing)]
    pub runtime_image: String,
    /// geard's callback: refused unless empty (the answer streams the result).
    #[serde(default, rename = "CallbackUrl", skip_serializing)]
    pub callback_url: String,
    /// geard's client names its builds; gear names them itself.
    #[serde(default, rename = "Name", skip_serializing)]
    pub geard_name: Option<String>,
}

impl BuildRequest {
    /// A build of `source` with `builder` into `tag`, with every option absent.
    pub fn new(source: Source, builder: Image, tag: BuildTag) -> BuildRequest {
        BuildRequest {
            source,
            base_image: builder,
            tag,
            r#ref: None,
            environment: vec![],
            clean: false,
            verbose: false,
            runtime_image: String::new(),
            callback_url: String::new(),
            geard_name: None,
        }
    }

    /// What can be checked without the host: the geard options gear does not carry out.
    pub fn check(&self) -> Result<(), InvalidBuild> {
        if !self.runtime_image.is_empty() {
            return Err(InvalidBuild::Unsupported("RuntimeImage"));
        }
        if !self.callback_url.is_empty() {
            return Err(InvalidBuild::Unsupported("CallbackUrl"));
        }
        if self.r#ref.is_some() && matches!(self.source, Source::Dir(_)) {
            return Err(InvalidBuild::Unsupported(
                "Ref with a local directory source",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
