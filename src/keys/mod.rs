//! SSH public keys that let people log in to containers (`ssh ctr-ID@host`) and reach Git
//! repositories (`git clone git-ID@host:~`).
//!
//! - this file: [`PublicKey`], one validated key (type, base64, comment; never options);
//! - [`body`]: geard's `PUT /keys` body and gear's `DELETE /keys` body;
//! - [`store`]: the key file of each container, under [`crate::paths::Paths::keys_dir`];
//! - [`repos`]: the key file of each Git repository, each key read or write;
//! - [`authorized`]: what `gear-keys` prints for sshd (`AuthorizedKeysCommand`).
//!
//! Keys come from users, so a key line with options (`command="..."`, `from=...`) is
//! refused: the only options sshd ever sees are the ones gear-keys writes itself.

pub mod authorized;
pub mod body;
pub mod repos;
pub mod store;

use std::fmt;

/// Key types gear accepts: what OpenSSH 8+ accepts for user authentication (DSA is gone
/// from OpenSSH, certificates are out of scope).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Why a key line is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    /// Nothing but blanks.
    #[error("the key is empty")]
    Empty,
    /// More than one line: one key per value.
    #[error("a key is one line")]
    Multiline,
    /// The first word is not a key type gear accepts (options come first, so this is also
    /// what a line with options is).
    #[error(
        "'{0}' is not a key type gear accepts (options such as command=\"...\" are not accepted either)"
    )]
    Type(String),
    /// The type is known but the base64 or the key inside it is not valid.
    #[error("the key data is not a valid {0} key")]
    Data(String),
    /// The type word and the type encoded in the data differ.
    #[error("the key data is a {inner} key, the line says {outer}")]
    TypeMismatch {
        /// The type word of the line.
        outer: String,
        /// The type inside the base64 data.
        inner: String,
    },
}

/// One public key: its type, its data (base64, as in `authorized_keys`) and an optional
/// comment. Built only by [`PublicKey::parse`], so it is always valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_type: String,
    base64: String,
    comment: String,
    fingerprint: String,
}

impl PublicKey {
    /// Parses one `authorized_keys` line without options: `TYPE BASE64 [COMMENT]`.
    pub fn parse(line: &str) -> Result<PublicKey, InvalidKey> {
        let line = line.trim();
        if line.is_empty() {
            return Err(InvalidKey::Empty);
        }
        if line.contains(['\n', '\r']) {
            return Err(InvalidKey::Multiline);
        }
        let mut words = line.splitn(3, [' ', '\t']);
        let key_type = words.next().unwrap_or_default();
        if !KEY_TYPES.contains(&key_type) {
            return Err(InvalidKey::Type(shorten(key_type)));
        }
        let base64 = words.next().unwrap_or_default().trim();
        let comment = words.next().unwrap_or_default().trim();
        // The comment is shown by `gear list-keys` and printed to sshd: no control
        // characters, so it cannot smuggle a second line or an escape sequence.
        let comment: String = comment.chars().filter(|c| !c.is_control()).collect();
        let parsed = openssh_keys::PublicKey::parse(&format!("{key_type} {base64}"))
            .map_err(|_| InvalidKey::Data(key_type.to_string()))?;
        if parsed.options.is_some() {
            return Err(InvalidKey::Type(shorten(key_type)));
        }
        if parsed.keytype() != key_type {
            return Err(InvalidKey::TypeMismatch {
                outer: key_type.to_string(),
                inner: parsed.keytype().to_string(),
            });
        }
        Ok(PublicKey {
            key_type: key_type.to_string(),
            base64: base64.to_string(),
            comment,
            fingerprint: format!("SHA256:{}", parsed.fingerprint()),
        })
    }

    /// The key type, e.g. `ssh-ed25519`.
    pub fn key_type(&self) -> &str {
        &self.key_type
    }

    /// The comment (often `user@host`); empty when there is none.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The SHA-256 fingerprint as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `TYPE BASE64`: the key without its comment, as sshd compares it.
    pub fn key_part(&self) -> String {
        format!("{} {}", self.key_type, self.base64)
    }
}

impl fmt::Display for PublicKey {
    /// The line stored and printed: `TYPE BASE64 COMMENT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.comment.is_empty() {
            true => write!(f, "{} {}", self.key_type, self.base64),
            false => write!(f, "{} {} {}", self.key_type, self.base64, self.comment),
        }
    }
}

/// The start of a long word, for error messages that name a key without quoting all of it.
pub fn shorten(s: &str) -> String {
    match s.char_indices().nth(24) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
