//! `gear status LOCATOR...`: what `systemctl status` shows of each container (its unit,
//! state and since when, main PID, memory), what gear knows of it (image, ports, links,
//! idling) and its last log lines; `--json` prints the agent's documents instead.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;

use super::Remote;
use crate::api::Request;
use crate::api::reply::Status;
use crate::container::logs::LogOptions;
use crate::locator::Locator;

/// How many journal lines `gear status` shows, as `systemctl status` does.
const LOG_LINES: u32 = 5;

/// Prints the status of every container (asked all at once, printed in order). Returns
/// whether every one answered.
pub async fn status(
    remote: &Remote,
    locators: &[Locator],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let answers = join_all(locators.iter().map(|loc| async move {
        let client = remote.client(&loc.host);
        let status = client
            .json::<Status>(&Request::Status(loc.id.clone()))
            .await?;
        let log = match json {
            true => Vec::new(),
            false => {
                let opts = LogOptions {
                    lines: LOG_LINES,
                    follow: false,
                    timeout: Duration::from_secs(5),
                };
                // The log is a bonus: a journal that cannot be read leaves the rest.
                let mut text = Vec::new();
                let req = Request::Log {
                    id: loc.id.clone(),
                    opts,
                };
                match client.stream_to(&req, &mut text).await {
                    Ok(()) => String::from_utf8_lossy(&text)
                        .lines()
                        .map(str::to_string)
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
        };
        anyhow::Ok((status, log))
    }))
    .await;
    let mut ok = true;
    for (loc, answer) in locators.iter().zip(answers) {
        match answer {
            Ok((status, _)) if json => writeln!(out, "{}", serde_json::to_string(&status)?)?,
            Ok((status, log)) => write!(out, "{}", render(loc, &status, &log, SystemTime::now()))?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {loc}: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

/// The text of one container's status, as of `now`.
pub fn render(loc: &Locator, s: &Status, log: &[String], now: SystemTime) -> String {
    let mut text = format!("● {loc} - {}\n", s.unit);
    let since = s
        .since_usec
        .map(|us| {
            format!(
                " since {}",
                ago(UNIX_EPOCH + Duration::from_micros(us), now)
            )
        })
        .unwrap_or_default();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:>10}: {value}\n"));
    line(
        "State",
        format!("{} ({}){since}", s.state.active_state, s.state.sub_state),
    );
    if let Some(result) = s.result.as_deref().filter(|r| *r != "success") {
        let why = match result {
            "oom-kill" => "killed by the kernel: out of memory".to_string(),
            other => other.to_string(),
        };
        line("Last end", why);
    }
    if let Some(pid) = s.main_pid {
        line("Main PID", pid.to_string());
    }
    if let Some(bytes) = s.memory_bytes {
        line(
            "Memory",
            format!("{:.1}M", bytes as f64 / f64::from(1 << 20)),
        );
    }
    line("Image", s.spec.image.to_string());
    let ports: Vec<String> = s
        .spec
        .ports
        .iter()
        .map(|p| format!("{}->{}", p.internal, p.external))
        .collect();
    if !ports.is_empty() {
        line("Ports", ports.join(", "));
    }
    for link in &s.spec.links {
        line("Link", link.to_string());
    }
    if let Some(check) = &s.spec.health {
        let probe = check.probe();
        let now_state = match &s.health {
            None => "passing".to_string(),
            Some(h) if h.passing => "passing".to_string(),
            Some(h) => format!("failing ({} in a row)", h.failures),
        };
        line(
            "Health",
            format!(
                "{now_state}; {probe} every {}",
                crate::container::probe::Wait(check.interval())
            ),
        );
        if let Some(h) = &s.health {
            let at = UNIX_EPOCH + Duration::from_secs(h.last_failure_at);
            line("Last fail", format!("{}: {}", ago(at, now), h.last_failure));
            if h.restarts > 0 {
                line("Restarts", format!("{} after failed checks", h.restarts));
            }
        }
    }
    if let Some(probe) = &s.spec.ready {
        line(
            "Ready",
            format!(
                "when {probe} answers (within {})",
                crate::container::probe::Wait(probe.timeout())
            ),
        );
    }
    match (s.idle, s.spec.idle) {
        (Some(mode), _) => line(
            "Idle",
            format!("yes ({mode}); the first connection wakes it"),
        ),
        (None, Some(p)) => line(
            "Idles",
            format!("after {} without traffic ({})", p.after, p.mode),
        ),
        (None, None) => {}
    }
    if !log.is_empty() {
        text.push('\n');
        for l in log {
            text.push_str(&format!("{l}\n"));
        }
    }
    text
}

/// "3 min ago", as a person reads it.
fn ago(then: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h {} min ago", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_systemctl_status() {
        let status: Status = serde_json::from_str(
            r#"{"Id":"web-1","ActiveState":"active","SubState":"running","LoadState":"loaded",
                "Unit":"ctr-web-1.service","Spec":{"Id":"web-1","Image":"gear-test/httpd",
                "Ports":[{"Internal":8080,"External":4000}],"Idle":{"After":"5m"}},
                "SinceUsec":1000000000,"MainPid":42,"MemoryBytes":8388608,"Result":"oom-kill"}"#,
        )
        .unwrap();
        let loc: Locator = "localhost/web-1".parse().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1000 + 180);
        let text = render(&loc, &status, &["a log line".into()], now);
        assert_eq!(
            text,
            "● localhost/web-1 - ctr-web-1.service\n\
             \x20    State: active (running) since 3 min ago\n\
             \x20 Last end: killed by the kernel: out of memory\n\
             \x20 Main PID: 42\n\
             \x20   Memory: 8.0M\n\
             \x20    Image: gear-test/httpd\n\
             \x20    Ports: 8080->4000\n\
             \x20    Idles: after 5m without traffic (stop)\n\
             \n\
             a log line\n"
        );
    }
}
