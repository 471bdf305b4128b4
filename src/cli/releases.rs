//! `gear history` and `gear rollback`: a container's kept versions, and going back to one.

use std::io::Write;

use super::Remote;
use super::container::{each, each_json};
use crate::api::Request;
use crate::api::reply::Status;
use crate::container::history::History;
use crate::locator::Locator;

/// Prints the kept versions of each container, oldest first, the current one marked;
/// with `json`, each agent's answer as one line.
pub async fn history(
    remote: &Remote,
    locators: &[Locator],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let make = |l: &Locator| Request::History(l.id.clone());
    if json {
        let raw = |_: &Locator, a: &crate::api::client::Answer| {
            String::from_utf8_lossy(&a.body).trim_end().to_string()
        };
        return each(remote, locators, make, raw, out, err).await;
    }
    each_json(
        remote,
        locators,
        make,
        |l, h: &History| describe(l, h),
        out,
        err,
    )
    .await
}

/// The text of one container's history.
fn describe(l: &Locator, h: &History) -> String {
    let mut text = format!("{l}:");
    if h.versions.is_empty() {
        text.push_str(" no versions kept");
    }
    let last = h.versions.len().saturating_sub(1);
    for (i, v) in h.versions.iter().enumerate() {
        let image_id = v.image_id.as_deref().unwrap_or("-");
        let short = image_id.strip_prefix("sha256:").unwrap_or(image_id);
        let probe = v
            .spec
            .ready
            .as_ref()
            .map(|p| format!(", ready: {p}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n  {}{:>3}  {}  {} ({}){probe}",
            if i == last { "*" } else { " " },
            v.version,
            installed_at(v.installed),
            v.spec.image,
            &short[..short.len().min(12)],
        ));
    }
    text
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn installed_at(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Rolls each container back to version `to` (default: the one before its newest).
pub async fn rollback(
    remote: &Remote,
    locators: &[Locator],
    to: Option<u32>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let make = |l: &Locator| Request::Rollback {
        id: l.id.clone(),
        to,
    };
    let describe = |l: &Locator, s: &Status| {
        format!(
            "{l}: rolled back to {}, {}",
            s.spec.image, s.state.active_state
        )
    };
    each_json(remote, locators, make, describe, out, err).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(installed_at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(installed_at(1_796_000_000), "2026-11-30 00:53:20 UTC");
    }
}
