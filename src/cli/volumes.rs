//! `gear volumes HOST[/ID]...` and what `gear delete` says of the volumes it kept.

use std::io::Write;

use futures_util::future::join_all;

use super::{Remote, table};
use crate::api::Request;
use crate::api::reply::{Deleted, VolumeList};
use crate::id::ContainerId;
use crate::locator::{HostAddr, Locator};

/// What to list: every volume of a host, or those of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The agent's host.
    pub host: HostAddr,
    /// Only this container's volumes.
    pub id: Option<ContainerId>,
}

impl std::str::FromStr for Target {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Target> {
        Ok(match s.contains('/') {
            true => {
                let l: Locator = s.parse()?;
                Target {
                    host: l.host,
                    id: Some(l.id),
                }
            }
            false => Target {
                host: s.parse()?,
                id: None,
            },
        })
    }
}

/// Prints the owned volumes of every target as one table (or JSON lines, one per target);
/// one `error:` line per target that failed. Returns whether all answered.
pub async fn list(
    remote: &Remote,
    targets: &[Target],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = join_all(targets.iter().map(|t| {
        let client = remote.client(&t.host);
        let req = Request::Volumes(t.id.clone());
        async move { client.json::<VolumeList>(&req).await }
    }))
    .await;
    let mut ok = true;
    let mut rows = Vec::new();
    for (t, result) in targets.iter().zip(results) {
        match result {
            Ok(list) if json => writeln!(out, "{}", serde_json::to_string(&list)?)?,
            Ok(list) => rows.extend(list.volumes.into_iter().map(|v| {
                vec![
                    t.host.to_string(),
                    v.id.to_string(),
                    v.target.to_string(),
                    human_size(v.bytes),
                    if v.in_use { "yes" } else { "no" }.to_string(),
                    v.host_path.display().to_string(),
                ]
            })),
            Err(e) => {
                ok = false;
                writeln!(err, "error: {}: {e:#}", t.host)?;
            }
        }
    }
    if !json {
        let header = ["HOST", "ID", "PATH", "SIZE", "IN USE", "HOST PATH"];
        write!(out, "{}", table::render(&header, &rows))?;
    }
    Ok(ok)
}

/// The line `gear delete` prints for one container.
pub fn deleted_line(l: &Locator, d: &Deleted) -> String {
    let paths = |v: &[crate::container::volumes::MountPath]| {
        v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
    };
    let mut line = format!("{l}: deleted");
    if !d.kept_volumes.is_empty() {
        line.push_str(&format!(
            "; kept volumes {} (gear delete --volumes removes them)",
            paths(&d.kept_volumes)
        ));
    }
    if !d.removed_volumes.is_empty() {
        line.push_str(&format!("; removed volumes {}", paths(&d.removed_volumes)));
    }
    line
}

/// `1.5M`-style sizes, as `du -h` prints them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes}"),
        _ if size < 10.0 => format!("{size:.1}{}", UNITS[unit]),
        _ => format!("{size:.0}{}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_hosts_or_containers() {
        let t: Target = "localhost".parse().unwrap();
        assert_eq!(t.id, None);
        let t: Target = "localhost/web-1".parse().unwrap();
        assert_eq!(t.id.unwrap().as_str(), "web-1");
        assert!("localhost/a".parse::<Target>().is_err());
    }

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human_size(512), "512");
        assert_eq!(human_size(4096), "4.0K");
        assert_eq!(human_size(15 << 20), "15M");
    }

    #[test]
    fn delete_says_which_volumes_it_kept() {
        let l: Locator = "localhost/web-1".parse().unwrap();
        let d = Deleted {
            id: l.id.clone(),
            deleted: true,
            kept_volumes: vec!["/data".parse().unwrap(), "/var/lib/pg".parse().unwrap()],
            removed_volumes: vec![],
        };
        assert_eq!(
            deleted_line(&l, &d),
            "localhost/web-1: deleted; kept volumes /data /var/lib/pg (gear delete --volumes removes them)"
        );
    }
}
