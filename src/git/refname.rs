//! What `GET /repository/:id/archive/:ref` may name: a branch, a tag or a commit, checked
//! as `git check-ref-format` would before git sees it, and never a word git could read as
//! an option; and the archive formats.

use std::fmt;
use std::str::FromStr;

use crate::serde_str::serde_via_str;

/// A branch, tag or commit name (`main`, `feature/x`, `v1.0`, `HEAD`, a full or abbreviated
/// commit id). Built only by [`FromStr`], so it never starts with `-` and holds nothing
/// git gives a meaning beyond a name (`..`, `@{`, `^`, `~`, `:`, blanks, globs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef(String);

/// Why a ref name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a branch, tag or commit name: {1}")]
pub struct InvalidRef(pub String, pub &'static str);

/// Longer names are refused: git's own limit on a ref is the file system's, 255 bytes.
const MAX_LEN: usize = 255;

impl FromStr for GitRef {
    type Err = InvalidRef;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| Err(InvalidRef(crate::keys::shorten(s), why));
        if s.is_empty() {
            return bad("it is empty");
        }
        if s.len() > MAX_LEN {
            return bad("it is longer than 255 characters");
        }
        if s.starts_with('-') {
            return bad("it starts with '-'");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
        if !s.chars().all(allowed) {
            return bad("only letters, digits, '-', '_', '.' and '/' are allowed");
        }
        // git check-ref-format: no "..", no empty component, no component starting with
        // '.' or ending with ".lock", no trailing '.'.
        if s.contains("..") || s.ends_with('.') {
            return bad("it holds '..' or ends with '.'");
        }
        if s.split('/')
            .any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock"))
        {
            return bad("a part between '/' is empty, starts with '.' or ends with '.lock'");
        }
        Ok(GitRef(s.to_string()))
    }
}

impl GitRef {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name for the archive's file: the ref with `/` made `-`.
    pub fn file_stem(&self) -> String {
        self.0.replace('/', "-")
    }
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(GitRef);

/// What `git archive` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// A zip file (geard's only format, so the default).
    #[default]
    Zip,
    /// A gzip-compressed tar file.
    TarGz,
}

impl ArchiveFormat {
    /// The name `git archive --format` and the query string use.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Zip => "zip",
            ArchiveFormat::TarGz => "tar.gz",
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ArchiveFormat::Zip => "application/zip",
            ArchiveFormat::TarGz => "application/gzip",
        }
    }
}

impl FromStr for ArchiveFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zip" => Ok(ArchiveFormat::Zip),
            "tar.gz" | "tgz" => Ok(ArchiveFormat::TarGz),
            other => Err(format!("archive format '{other}': expected zip or tar.gz")),
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_tags_and_commits_are_names() {
        for ok in [
            "main",
            "feature/login-2",
            "v1.0.3",
            "release_1",
            "HEAD",
            "0123abc",
            "3f786850e387550fdab836ed7e6dc881de23001b",
            "refs/tags/v1",
        ] {
            assert_eq!(ok.parse::<GitRef>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn options_revision_syntax_and_bad_names_are_refused() {
        for bad in [
            "",
            "-",
            "--output=/etc/passwd",
            "--remote=x",
            "-o",
            "main..dev",
            "main^",
            "main~1",
            "main@{1}",
            "HEAD:file",
            "a b",
            "a\nb",
            "*",
            "main/",
            "/main",
            "a//b",
            ".hidden",
            "a/.b",
            "x.lock",
            "x.",
            "ma\\in",
            "m\u{e9}",
        ] {
            assert!(bad.parse::<GitRef>().is_err(), "{bad:?} accepted");
        }
        assert!("x".repeat(256).parse::<GitRef>().is_err());
        let e = "--output=x".parse::<GitRef>().unwrap_err();
        assert!(e.to_string().contains("starts with '-'"), "{e}");
    }

    #[test]
    fn formats() {
        assert_eq!("zip".parse(), Ok(ArchiveFormat::Zip));
        assert_eq!("tar.gz".parse(), Ok(ArchiveFormat::TarGz));
        assert!("tar".parse::<ArchiveFormat>().is_err());
        assert_eq!(ArchiveFormat::default().content_type(), "application/zip");
        assert_eq!(
            "feature/x".parse::<GitRef>().unwrap().file_stem(),
            "feature-x"
        );
    }
}
