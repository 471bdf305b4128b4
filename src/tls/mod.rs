//! TLS between `gear` and agents on other hosts: the agent's certificate and key
//! (`/etc/gear/tls/`, made by `gear init-tls`), how the agent serves them ([`server`]),
//! and how the CLI checks an agent, by a pinned SHA-256 fingerprint or a CA ([`client`]).
//!
//! Both sides use rustls with the `ring` provider (no C toolchain beyond `cc`, no cmake).

pub mod cert;
pub mod client;
pub mod server;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto both sides use.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 digest of a certificate (its DER bytes): what a client pins.
///
/// Written `SHA256:AB:CD:...` (32 bytes, upper-case hex, colon-separated), as `openssl x509
/// -noout -fingerprint -sha256` prints it after its `sha256 Fingerprint=`; parsed with or
/// without the prefix and colons, in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the certificate `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a fingerprint could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a SHA-256 fingerprint: expected SHA256: and 64 hex digits (colons allowed), as `gear init-tls` prints"
)]
pub struct InvalidFingerprint(String);

impl FromStr for Fingerprint {
    type Err = InvalidFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidFingerprint(s.to_string());
        let t = s.trim();
        let t = [
            "SHA256:",
            "sha256:",
            "sha256 Fingerprint=",
            "SHA256 Fingerprint=",
        ]
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .unwrap_or(t);
        let hex: String = t.chars().filter(|&c| c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_as_openssl_does_and_parse_back_in_any_spelling() {
        let fp = Fingerprint::of(b"not really DER");
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:"), "{text}");
        assert_eq!(text.len(), 7 + 32 * 3 - 1);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let bare: String = text[7..].chars().filter(|&c| c != ':').collect();
        assert_eq!(bare.to_lowercase().parse::<Fingerprint>().unwrap(), fp);
        let openssl = format!("sha256 Fingerprint={}", &text[7..]);
        assert_eq!(openssl.parse::<Fingerprint>().unwrap(), fp);
        assert_ne!(Fingerprint::of(b"other"), fp);
        for bad in [
            "",
            "SHA256:",
            "SHA256:AB",
            &text[..text.len() - 1],
            &format!("{bare}00"),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
        let not_hex = format!("SHA256:{}", "zz".repeat(32));
        assert!(not_hex.parse::<Fingerprint>().is_err());
    }
}
