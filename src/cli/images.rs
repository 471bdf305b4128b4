//! `gear images`, `gear pull` and `gear prune-images`: the images of hosts.

use std::io::Write;

use super::{Remote, fan_out, table};
use crate::api::Request;
use crate::api::reply::{ImageInfo, ImageList, Pruned};
use crate::container::spec::Image;
use crate::locator::HostAddr;

/// Prints one table of the images of every host (or each host's JSON answer on a line).
pub async fn list(
    remote: &Remote,
    hosts: &[HostAddr],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = fan_out(hosts, |host| {
        let client = remote.client(&host);
        async move { client.json::<ImageList>(&Request::Images).await }
    })
    .await;
    let mut ok = true;
    let mut rows = Vec::new();
    for (host, result) in results {
        match result {
            Ok(list) if json => writeln!(out, "{}", serde_json::to_string(&list)?)?,
            Ok(list) => rows.extend(list.images.iter().map(|i| row(&host, i))),
            Err(e) => {
                ok = false;
                writeln!(err, "error: {e:#}")?;
            }
        }
    }
    if !json {
        let header = ["HOST", "ID", "TAGS", "SIZE", "CREATED", "USED BY"];
        write!(out, "{}", table::render(&header, &rows))?;
    }
    Ok(ok)
}

fn row(host: &HostAddr, i: &ImageInfo) -> Vec<String> {
    let short = i.id.trim_start_matches("sha256:");
    vec![
        host.to_string(),
        short[..short.len().min(12)].to_string(),
        match i.tags.is_empty() {
            true => "<none>".into(),
            false => i.tags.join(","),
        },
        super::volumes::human_size(i.bytes),
        created(i.created),
        i.used_by.join(","),
    ]
}

/// A build time as `2026-11-29 19:33` (UTC).
fn created(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Pulls `image` on every host at once, showing Docker's progress on `err` as it comes
/// (`HOST: message`); one result line per host. Returns whether all succeeded.
pub async fn pull(
    remote: &Remote,
    image: &Image,
    hosts: &[HostAddr],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let req = Request::PullImage(image.clone());
    let results = fan_out(hosts, |host| {
        let client = remote.client(&host);
        let req = req.clone();
        async move {
            client
                .pull_with_progress(&req, |p| eprintln!("{host}: {p}"))
                .await
        }
    })
    .await;
    let mut ok = true;
    for (host, result) in results {
        match result {
            Ok(p) => writeln!(out, "{host}: pulled {} ({})", p.image, p.id)?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

/// Removes the unused images of every host; one line per image removed and one summary
/// line per host.
pub async fn prune(
    remote: &Remote,
    hosts: &[HostAddr],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = fan_out(hosts, |host| {
        let client = remote.client(&host);
        async move { client.json::<Pruned>(&Request::PruneImages).await }
    })
    .await;
    let mut ok = true;
    for (host, result) in results {
        match result {
            Ok(p) => {
                let mut freed = 0;
                for i in &p.removed {
                    freed += i.bytes;
                    let name = i.tags.first().cloned().unwrap_or_else(|| i.id.clone());
                    writeln!(out, "{host}: removed {name}")?;
                }
                writeln!(
                    out,
                    "{host}: {} removed ({}), {} in use kept",
                    p.removed.len(),
                    super::volumes::human_size(freed),
                    p.kept
                )?;
            }
            Err(e) => {
                ok = false;
                writeln!(err, "error: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_times_read_as_utc_dates() {
        assert_eq!(super::created(0), "1970-01-01 00:00");
        assert_eq!(super::created(1_796_000_000), "2026-11-30 00:53");
        assert_eq!(super::created(951_782_400), "2000-02-29 00:00");
    }
}
