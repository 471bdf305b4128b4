//! Where a repository may be cloned from (`PUT /repository/:id?source=URL`, `gear
//! create-repo --from URL`): any URL git understands that names a repository, never one
//! that runs a program.
//!
//! git's `ext::` transport runs a command and `fd::` reads inherited descriptors, so they
//! are refused, as is a word git would read as an option. The clone also runs with
//! `GIT_ALLOW_PROTOCOL` set to [`PROTOCOLS`], so a redirect or a submodule cannot bring
//! them back.

use std::fmt;
use std::str::FromStr;

use crate::serde_str::serde_via_str;

/// The transports a clone may use (`GIT_ALLOW_PROTOCOL`).
pub const PROTOCOLS: &str = "http:https:git:ssh:file";

/// A clone source: `https://`, `http://`, `git://`, `ssh://`, `file://` URLs, the scp-like
/// `[user@]host:path`, or an absolute local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl(String);

/// Why a source is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source '{0}' is refused: {1}")]
pub struct InvalidSource(pub String, pub &'static str);

impl FromStr for SourceUrl {
    type Err = InvalidSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| Err(InvalidSource(crate::keys::shorten(s), why));
        if s.is_empty() {
            return bad("it is empty");
        }
        if s.len() > 4096 {
            return bad("it is longer than 4096 characters");
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad("it holds blanks or control characters");
        }
        if s.starts_with('-') {
            return bad("it starts with '-'");
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            return match scheme {
                "http" | "https" | "git" | "ssh" | "file" if !rest.is_empty() => {
                    Ok(SourceUrl(s.to_string()))
                }
                "http" | "https" | "git" | "ssh" | "file" => bad("it names no repository"),
                _ => bad("the scheme is not http, https, git, ssh or file"),
            };
        }
        if s.starts_with('/') {
            return Ok(SourceUrl(s.to_string()));
        }
        // git reads "A::B" as transport A (ext::, fd::, any remote helper).
        if s.contains("::") {
            return bad("git remote helpers (such as ext::) are not allowed");
        }
        // scp-like: [user@]host:path, where the host holds no '/' (else git reads a path).
        if let Some((host, path)) = s.split_once(':') {
            let host_ok = !host.is_empty()
                && !host.contains('/')
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '[' | ']')
                });
            if host_ok && !path.is_empty() {
                return Ok(SourceUrl(s.to_string()));
            }
        }
        bad(
            "expected a URL (https://, http://, git://, ssh://, file://), user@host:path or an absolute path",
        )
    }
}

impl SourceUrl {
    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(SourceUrl);

/// `s` as a query string value: every byte but unreserved ones and `/:@` percent-encoded.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b':'
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string value decoded: `%XX` escapes and `+` for a blank (a malformed escape
/// stays as it is, and is then refused by [`SourceUrl`]'s rules if it matters).
pub fn decode_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_git_understands() {
        for ok in [
            "https://github.com/openshift/geard.git",
            "http://10.0.0.5:8080/r.git",
            "git://example.com/r",
            "ssh://git@example.com:2222/r.git",
            "file:///srv/git/app",
            "git@github.com:openshift/geard.git",
            "example.com:repos/app",
            "/srv/git/app",
            "/var/lib/containers/git/other",
        ] {
            assert_eq!(ok.parse::<SourceUrl>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn programs_options_and_nonsense_are_refused() {
        for bad in [
            "",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::0",
            "--upload-pack=touch /tmp/x",
            "-u",
            "relative/path",
            "https://",
            "ftp://example.com/r",
            "foo::bar",
            "https://a b",
            "/srv/a\nb",
            "host:",
            ":path",
            "a/b:c",
        ] {
            assert!(bad.parse::<SourceUrl>().is_err(), "{bad:?} accepted");
        }
        let e = "ext::sh".parse::<SourceUrl>().unwrap_err();
        assert!(e.to_string().contains("ext::"), "{e}");
    }

    #[test]
    fn query_values_round_trip() {
        for url in [
            "https://example.com/a b?x=1&y=%2F#frag",
            "/srv/git/app",
            "git@host:r.git",
            "caf\u{e9}",
        ] {
            assert_eq!(decode_query(&encode_query(url)), url);
        }
        assert_eq!(encode_query("https://h/a?b&c"), "https://h/a%3Fb%26c");
        assert_eq!(decode_query("a%2"), "a%2");
        assert_eq!(decode_query("%zz+x"), "%zz x");
    }
}
