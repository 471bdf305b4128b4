//! `gear add-keys | remove-keys | list-keys`: SSH keys that log in to isolated containers
//! (`ssh ctr-ID@host`), one request per container, all in parallel.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use super::Remote;
use super::container::each_json;
use crate::api::Request;
use crate::keys::PublicKey;
use crate::keys::body::{KeyGrant, KeyRevoke, KeysChanged, KeysList};
use crate::locator::Locator;

/// The keys of a public key file: one per line (`KEY.pub` has one, an `authorized_keys`
/// without options may have many); blank lines and `#` comments are skipped.
pub fn read_key_file(path: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !(l.trim().is_empty() || l.trim_start().starts_with('#')))
        .map(|(n, l)| {
            PublicKey::parse(l).with_context(|| format!("{} line {}", path.display(), n + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!keys.is_empty(), "{} holds no key", path.display());
    Ok(keys)
}

/// `gear add-keys --key-file F... LOCATOR...`.
pub async fn add(
    remote: &Remote,
    files: &[std::path::PathBuf],
    locators: &[Locator],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut keys = Vec::new();
    for f in files {
        keys.extend(read_key_file(f)?);
    }
    let make = |l: &Locator| {
        Request::AddKeys(KeyGrant {
            keys: keys.clone(),
            containers: vec![l.id.clone()],
        })
    };
    let describe = |l: &Locator, c: &KeysChanged| {
        let n: usize = c.containers.iter().map(|c| c.fingerprints.len()).sum();
        format!(
            "{l}: {n} key(s) added; log in as ctr-{}@{}",
            l.id,
            l.host.host()
        )
    };
    each_json(remote, locators, make, describe, out, err).await
}

/// `gear remove-keys (--key-file F | --fingerprint FP)... LOCATOR...`.
pub async fn remove(
    remote: &Remote,
    files: &[std::path::PathBuf],
    fingerprints: &[String],
    locators: &[Locator],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut fps = fingerprints.to_vec();
    for f in files {
        fps.extend(
            read_key_file(f)?
                .iter()
                .map(|k| k.fingerprint().to_string()),
        );
    }
    anyhow::ensure!(
        !fps.is_empty(),
        "name keys with --key-file or --fingerprint"
    );
    let make = |l: &Locator| {
        Request::RemoveKeys(KeyRevoke {
            fingerprints: fps.clone(),
            containers: vec![l.id.clone()],
        })
    };
    let describe = |l: &Locator, c: &KeysChanged| {
        let removed: Vec<&str> = c
            .containers
            .iter()
            .flat_map(|c| c.fingerprints.iter().map(String::as_str))
            .collect();
        format!("{l}: removed {}", removed.join(" "))
    };
    each_json(remote, locators, make, describe, out, err).await
}

/// `gear list-keys LOCATOR...`: one line per key, `LOCATOR FINGERPRINT TYPE COMMENT`.
pub async fn list(
    remote: &Remote,
    locators: &[Locator],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let describe = |l: &Locator, list: &KeysList| {
        list.keys
            .iter()
            .map(|k| format!("{l}  {}  {}  {}", k.fingerprint, k.key_type, k.comment))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut text = Vec::new();
    let ok = each_json(
        remote,
        locators,
        |l| Request::ListKeys(l.id.clone()),
        describe,
        &mut text,
        err,
    )
    .await?;
    // A container without keys prints an empty line from `each`; leave those out.
    for line in String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.is_empty())
    {
        writeln!(out, "{line}")?;
    }
    Ok(ok)
}
