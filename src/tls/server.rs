//! How the agent serves TLS: with the certificate and key of `/etc/gear/tls/` when they
//! are there, on any TCP connection that opens with a TLS handshake. Plain HTTP stays for
//! loopback clients (geard's `curl http://127.0.0.1:43273/...`), and for other hosts only
//! while the agent has no certificate.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::paths::Paths;

/// The first byte of a TLS connection: a handshake record (RFC 8446 §5.1).
const HANDSHAKE: u8 = 0x16;

/// The agent's TLS, as found at start.
#[derive(Clone, Default)]
pub enum ServerTls {
    /// No certificate: everything is plain HTTP.
    #[default]
    Absent,
    /// A certificate and key to serve.
    Ready(TlsAcceptor),
    /// A certificate that cannot be served (why): other hosts are refused, not served in
    /// the clear.
    Broken(String),
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerTls::Absent => f.write_str("Absent"),
            ServerTls::Ready(_) => f.write_str("Ready"),
            ServerTls::Broken(why) => write!(f, "Broken({why})"),
        }
    }
}

/// What to do with a new TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// Handshake, then HTTP inside TLS.
    Tls,
    /// HTTP in the clear.
    Plain,
    /// Answer once, in the clear, that this agent speaks TLS to other hosts, and close.
    RefusePlain,
    /// A TLS handshake to an agent without a certificate: close.
    NoTls,
}

impl ServerTls {
    /// Loads `Paths::tls_cert` and `Paths::tls_key`; absent when the certificate is.
    pub fn load(paths: &Paths) -> ServerTls {
        let (cert, key) = (paths.tls_cert(), paths.tls_key());
        if !cert.exists() {
            return ServerTls::Absent;
        }
        match config(&cert, &key) {
            Ok(c) => ServerTls::Ready(TlsAcceptor::from(Arc::new(c))),
            Err(e) => ServerTls::Broken(format!("{e:#}")),
        }
    }

    /// What to do with a connection from a loopback address or not, whose first byte is
    /// `first` (none when the client closed without sending).
    pub fn decide(&self, first: Option<u8>, loopback: bool) -> Serve {
        match (self, first == Some(HANDSHAKE), loopback) {
            (ServerTls::Ready(_), true, _) => Serve::Tls,
            (_, true, _) => Serve::NoTls,
            (_, false, true) | (ServerTls::Absent, false, false) => Serve::Plain,
            (ServerTls::Ready(_) | ServerTls::Broken(_), false, false) => Serve::RefusePlain,
        }
    }
}

/// Says at start how other hosts will be served (`remote`: some listener faces them).
pub fn log_state(tls: &ServerTls, paths: &Paths, remote: bool) {
    match tls {
        ServerTls::Ready(_) => log::info!("serving TLS with {}", paths.tls_cert().display()),
        ServerTls::Broken(why) => {
            log::error!("not serving TLS: {why}; other hosts are refused until this is fixed")
        }
        ServerTls::Absent if remote => log::warn!(
            "no certificate at {}: other hosts are served plain HTTP, tokens in the clear \
             (`gear init-tls` makes one)",
            paths.tls_cert().display()
        ),
        ServerTls::Absent => {}
    }
}

/// The answer to plain HTTP from another host when the agent has a certificate: 426, so
/// the token such a client sends next time goes inside TLS.
pub fn refusal() -> Vec<u8> {
    let body = serde_json::json!({
        "Message": "this agent speaks only TLS to other hosts: use https, and pin its \
                    certificate (`gear init-tls` on the agent printed its fingerprint)"
    })
    .to_string();
    format!(
        "HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.3\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn config(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<ServerConfig> {
    let mode = std::fs::metadata(key)
        .with_context(|| format!("reading {}", key.display()))?
        .permissions()
        .mode();
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} can be read by others (mode {:o}): it must be 0600",
        key.display(),
        mode & 0o777
    );
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not go together")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_and_for_agents_without_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let absent = ServerTls::load(&paths);
        assert!(matches!(absent, ServerTls::Absent));
        super::super::cert::init(&paths, &[], false).unwrap();
        let ready = ServerTls::load(&paths);
        assert!(matches!(ready, ServerTls::Ready(_)), "{ready:?}");
        let broken = ServerTls::Broken("bad".into());
        let get = Some(b'G');
        let hello = Some(HANDSHAKE);
        use Serve::*;
        for (tls, first, loopback, want) in [
            (&absent, get, true, Plain),
            (&absent, get, false, Plain),
            (&absent, hello, false, NoTls),
            (&ready, get, true, Plain),
            (&ready, get, false, RefusePlain),
            (&ready, None, false, RefusePlain),
            (&ready, hello, false, Tls),
            (&ready, hello, true, Tls),
            (&broken, get, true, Plain),
            (&broken, get, false, RefusePlain),
            (&broken, hello, false, NoTls),
        ] {
            assert_eq!(
                tls.decide(first, loopback),
                want,
                "{tls:?} {first:?} {loopback}"
            );
        }
    }

    #[test]
    fn a_key_others_can_read_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        super::super::cert::init(&paths, &[], false).unwrap();
        std::fs::set_permissions(paths.tls_key(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let ServerTls::Broken(why) = ServerTls::load(&paths) else {
            panic!("served a readable key")
        };
        assert!(why.contains("must be 0600"), "{why}");
    }

    #[test]
    fn the_refusal_is_one_complete_http_answer() {
        let text = String::from_utf8(refusal()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 426 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("only TLS"));
    }
}
