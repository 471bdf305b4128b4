//! The agent's certificate: `gear init-tls` makes a self-signed one with its key
//! (`Paths::tls_cert`, `Paths::tls_key`), and the fingerprint clients pin is read from it.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::Fingerprint;
use crate::paths::Paths;

/// Makes a self-signed certificate (ECDSA P-256) for this host's agent, valid for `names`
/// (DNS names or IP addresses) besides the host's own name, `localhost`, `127.0.0.1` and
/// `::1`; writes the key (mode 0600) and certificate (0644). An existing certificate is
/// kept unless `force`. Returns the fingerprint of the certificate in place, and whether
/// it is new.
pub fn init(paths: &Paths, names: &[String], force: bool) -> anyhow::Result<(Fingerprint, bool)> {
    let (cert_file, key_file) = (paths.tls_cert(), paths.tls_key());
    if !force && cert_file.exists() {
        return Ok((fingerprint_of(&cert_file)?, false));
    }
    if let Some(bad) = names.iter().find(|n| !valid_name(n)) {
        return Err(anyhow!("'{bad}' is neither a DNS name nor an IP address"));
    }
    let mut sans = names.to_vec();
    if let Some(own) = own_host_name() {
        sans.push(own);
    }
    sans.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    let mut seen = std::collections::HashSet::new();
    sans.retain(|n| seen.insert(n.clone()));
    let mut params = rcgen::CertificateParams::new(sans.clone())
        .with_context(|| format!("the names {sans:?}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("gear agent {}", sans[0]));
    let key = rcgen::KeyPair::generate().context("making a key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    // The key first: a certificate on disk without its key would make the agent fail.
    crate::atomic_file::write(&key_file, key.serialize_pem().as_bytes(), 0o600)?;
    crate::atomic_file::write(&cert_file, cert.pem().as_bytes(), 0o644)?;
    Ok((Fingerprint::of(cert.der()), true))
}

/// The fingerprint of the first certificate in the PEM file at `path`.
pub fn fingerprint_of(path: &Path) -> anyhow::Result<Fingerprint> {
    let cert = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .next()
        .ok_or_else(|| anyhow!("{} holds no certificate", path.display()))?
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Fingerprint::of(&cert))
}

/// Whether `name` may stand in a certificate: an IP address or a DNS name (a leading
/// `*.` allowed).
fn valid_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let labels = name.strip_prefix("*.").unwrap_or(name);
    !labels.is_empty()
        && labels.len() <= 253
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// This host's name (`/proc/sys/kernel/hostname`), if it can be a DNS name.
fn own_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    valid_name(name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn init_writes_a_root_only_key_and_keeps_an_existing_certificate_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let (fp, new) = init(&paths, &["agent.example".into(), "10.0.0.7".into()], false).unwrap();
        assert!(new);
        assert_eq!(fingerprint_of(&paths.tls_cert()).unwrap(), fp);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.tls_key()), 0o600);
        assert_eq!(mode(&paths.tls_cert()), 0o644);
        assert_eq!(init(&paths, &[], false).unwrap(), (fp, false));
        assert_eq!(fingerprint_of(&paths.tls_cert()).unwrap(), fp);
        let (again, _) = init(&paths, &[], true).unwrap();
        assert_ne!(again, fp);
        // The agent can serve what init wrote.
        assert!(matches!(
            super::super::server::ServerTls::load(&paths),
            super::super::server::ServerTls::Ready(_)
        ));
    }

    #[test]
    fn bad_names_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        assert!(init(&paths, &["not a name".into()], false).is_err());
        assert!(!paths.tls_key().exists() && !paths.tls_cert().exists());
    }
}
