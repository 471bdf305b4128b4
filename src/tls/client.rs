//! How `gear` checks an agent's certificate: against a fingerprint pinned for that host
//! (any name, any dates: the pin is the trust, as with SSH host keys), or against a CA
//! file (the usual checks, the host's name included).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Fingerprint;

/// How the CLI recognises one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Its certificate has this fingerprint.
    Pinned(Fingerprint),
    /// Its certificate is issued by a CA in this PEM file, for the name the CLI used.
    Ca(PathBuf),
}

/// Opens TLS over `tcp` to the agent `host` (a DNS name or an IP address), checked by
/// `trust`; the error says plainly when the certificate is not the pinned one.
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    trust: &Trust,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| anyhow!("'{host}' cannot be a TLS server name"))?;
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let (config, pinned) = match trust {
        Trust::Pinned(fp) => {
            let verifier = Arc::new(Pinned {
                pin: *fp,
                seen: Mutex::new(None),
                provider,
            });
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            (config, Some(verifier))
        }
        Trust::Ca(file) => {
            let config = builder
                .with_root_certificates(roots(file)?)
                .with_no_client_auth();
            (config, None)
        }
    };
    match TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Ok(s) => Ok(s),
        Err(e) => match pinned.and_then(|v| *v.seen.lock().expect("not poisoned")) {
            Some(seen) if seen != pinned_of(trust) => Err(anyhow!(
                "its certificate {seen} is not the one pinned for it ({}); if the agent \
                 made a new one (gear init-tls --force), pin the new fingerprint",
                pinned_of(trust)
            )),
            _ => Err(anyhow::Error::new(e).context("TLS handshake")),
        },
    }
}

fn pinned_of(trust: &Trust) -> Fingerprint {
    match trust {
        Trust::Pinned(fp) => *fp,
        Trust::Ca(_) => unreachable!("only pinned trust records what it saw"),
    }
}

/// The CAs of a PEM file.
fn roots(file: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the CA file {}", file.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    anyhow::ensure!(
        added > 0,
        "{} holds no usable CA certificate",
        file.display()
    );
    Ok(roots)
}

/// Accepts exactly the certificate with the pinned fingerprint, and remembers what it saw.
#[derive(Debug)]
struct Pinned {
    pin: Fingerprint,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity);
        *self.seen.lock().expect("not poisoned") = Some(seen);
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate {seen} is not the pinned {}",
                self.pin
            )))
        }
    }

    // The handshake is still checked: the server must hold the pinned certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;
    use crate::tls::server::ServerTls;

    /// An agent-side TLS server on loopback that answers one connection with "hello".
    async fn server(paths: &Paths) -> std::net::SocketAddr {
        let ServerTls::Ready(acceptor) = ServerTls::load(paths) else {
            panic!("no certificate")
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.shutdown().await;
                }
            }
        });
        addr
    }

    async fn read_all(
        trust: &Trust,
        host: &str,
        addr: std::net::SocketAddr,
    ) -> anyhow::Result<String> {
        use tokio::io::AsyncReadExt as _;
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connect(tcp, host, trust).await?;
        let mut text = String::new();
        tls.read_to_string(&mut text).await?;
        Ok(text)
    }

    #[tokio::test]
    async fn the_pinned_certificate_is_accepted_and_any_other_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let (fp, _) = crate::tls::cert::init(&paths, &[], false).unwrap();
        let addr = server(&paths).await;
        // A pin ignores the name: the agent may be reached by any address.
        let ok = read_all(&Trust::Pinned(fp), "192.0.2.9", addr)
            .await
            .unwrap();
        assert_eq!(ok, "hello");
        let wrong = Fingerprint::of(b"another certificate");
        let err = read_all(&Trust::Pinned(wrong), "127.0.0.1", addr)
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("its certificate {fp} is not the one pinned")),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_ca_file_checks_the_issuer_and_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        // A CA, and an agent certificate it issued for agent.example.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["agent.example".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        crate::atomic_file::write(&paths.tls_key(), key.serialize_pem().as_bytes(), 0o600).unwrap();
        crate::atomic_file::write(&paths.tls_cert(), cert.pem().as_bytes(), 0o644).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let addr = server(&paths).await;
        let trust = Trust::Ca(ca_file);
        assert_eq!(
            read_all(&trust, "agent.example", addr).await.unwrap(),
            "hello"
        );
        let err = read_all(&trust, "other.example", addr).await.unwrap_err();
        assert!(format!("{err:#}").contains("TLS handshake"), "{err:#}");
        // A self-signed agent certificate is not issued by that CA.
        crate::tls::cert::init(&paths, &[], true).unwrap();
        let addr = server(&paths).await;
        assert!(read_all(&trust, "localhost", addr).await.is_err());
    }
}
