//! `gear deploy FILE HOST...`: brings a deployment to the hosts and records where every
//! instance went. What is already right is left alone: no request, no restart.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Remote;
use crate::deploy::Deployment;
use crate::deploy::agents::ClientAgents;
use crate::deploy::apply;
use crate::deploy::event::{Event, Step};
use crate::locator::HostAddr;

/// Deploys `file` over `hosts`; writes the instances file to `out_file`. Progress and
/// results go to `out`, problems to `err`. Returns whether everything was done.
pub async fn deploy(
    remote: &Remote,
    file: &Path,
    hosts: &[HostAddr],
    out_file: &Path,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let d = Deployment::parse(&text).with_context(|| format!("in {}", file.display()))?;
    writeln!(out, "==> deploying {} over {}", file.display(), join(hosts))?;
    let agents = ClientAgents::new(remote.clone());
    let outcome = apply::deploy(&agents, &d, hosts, out_file, &mut |e| print(e, out, err)).await?;
    writeln!(
        out,
        "==> {} instances on {} hosts; recorded in {}",
        outcome.instances,
        hosts.len(),
        out_file.display()
    )?;
    Ok(outcome.all_done)
}

/// One line per event (one per link for [`Event::Linked`]): results to `out`, failures to
/// `err`.
fn print(event: &Event, out: &mut impl Write, err: &mut impl Write) -> std::io::Result<()> {
    let mut done = |id, host, what| writeln!(out, "==> {id} on {host}: {what}");
    match event {
        Event::Unchanged { id, host } => done(id, host, "unchanged"),
        Event::Installed { id, host } => done(id, host, "installed"),
        Event::Updated { id, host } => done(id, host, "updated"),
        Event::Started { id, host } => done(id, host, "started"),
        Event::Restarted { id, host } => done(id, host, "restarted"),
        Event::Deleted { id, host } => done(id, host, "deleted"),
        Event::Linked { id, links, .. } => links.iter().try_for_each(|l| {
            writeln!(
                out,
                "==> linking {id}: {}:{} -> {}:{}",
                l.from_host, l.from_port, l.to_host, l.to_port
            )
        }),
        Event::Failed {
            host,
            id,
            step,
            error,
        } => {
            let what = match (step, id) {
                (Step::Delete, Some(id)) => format!("deleting {host}/{id}"),
                (_, Some(id)) => format!("{host}/{id}"),
                // Links are set with one request per host.
                (_, None) => format!("links on {host}"),
            };
            writeln!(err, "error: {what}: {error}")
        }
    }
}

/// Where the instances file goes by default: `<name>.instances.json` in the current
/// directory (an instances file given as input is written again under its own name).
pub fn default_out_file(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("deployment.json");
    let stem = name
        .strip_suffix(".instances.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name);
    PathBuf::from(format!("{stem}.instances.json"))
}

fn join(hosts: &[HostAddr]) -> String {
    hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_file_names() {
        assert_eq!(
            default_out_file(Path::new("deployment/fixtures/simple_deploy.json")),
            PathBuf::from("simple_deploy.instances.json")
        );
        assert_eq!(
            default_out_file(Path::new("/tmp/x.instances.json")),
            PathBuf::from("x.instances.json")
        );
    }
}
