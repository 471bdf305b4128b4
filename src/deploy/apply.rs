//! Carrying a deployment out against the agents: observe every host, plan, then install,
//! link, start or restart, and delete only what differs, and record where every instance
//! went in the instances file.
//!
//! Every host must answer before anything changes. After that a failure is soft: it is
//! reported as an [`Event::Failed`] naming the instance (or host) it hit, and the other
//! instances carry on. What is done is reported as [`Event`]s, so the caller only prints.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use futures_util::future::join_all;

use super::agents::Agents;
use super::event::{Event, Report, Step};
use super::observe::{self, Current};
use super::plan::{Plan, Planned, network_links, plan};
use super::{Deployment, Instance, InstancePort};
use crate::api::request::ContainerLinks;
use crate::container::environment::EnvironmentBody;
use crate::container::ports::{PortNumber, PortPair};
use crate::container::spec::InstallRequest;
use crate::id::ContainerId;
use crate::links::NetworkLink;
use crate::locator::HostAddr;

/// How a deploy ended (unless it stopped before changing anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// How many instances the deployment has.
    pub instances: usize,
    /// Whether every step succeeded (no [`Event::Failed`]).
    pub all_done: bool,
}

/// Deploys `d` over `hosts` through `agents` and writes the instances file to `out_file`,
/// reporting each step to `on_event` as it happens.
///
/// Returns an error, having changed nothing, when the deployment cannot be planned or a
/// host does not answer ([`observe::NotEveryHostAnswered`]); an error from `on_event` stops
/// the deploy where it is.
pub async fn deploy<A: Agents>(
    agents: &A,
    d: &Deployment,
    hosts: &[HostAddr],
    out_file: &Path,
    on_event: &mut impl FnMut(&Event) -> io::Result<()>,
) -> anyhow::Result<Outcome> {
    // Only what a deploy recorded is this deployment's: a container that merely has the
    // id of one of its instances was made by hand or by another deployment.
    let previous = previous_instances(out_file)?;
    let owned = observe::Owned::new(d.instances.iter().chain(&previous));
    let found = observe::existing(agents, d, hosts, &owned).await?;
    let existing = found.existing;
    let plan = plan(d, hosts, &existing)?;
    let taken: Vec<String> = found
        .foreign
        .iter()
        .filter(|(id, _)| plan.instances.iter().any(|i| i.id == *id))
        .map(|(id, host)| format!("{host}/{id}"))
        .collect();
    if !taken.is_empty() {
        return Err(observe::NotMadeHere(taken).into());
    }
    let mut report = Report::new(on_event);
    let currents = join_all(
        plan.instances
            .iter()
            .map(|i| observe::current(agents, i, existing.contains_key(&i.id))),
    )
    .await;
    let mut externals = BTreeMap::new();
    let installs = install(agents, &plan, &currents, &mut externals, &mut report).await?;
    link(agents, &plan, &currents, &externals, &installs, &mut report).await?;
    run(agents, &plan, &currents, &installs, &mut report).await?;
    delete(agents, &plan, &mut report).await?;
    let record = instances_file(d, &plan, &externals);
    // It holds environment values (passwords, keys): the user's alone.
    crate::atomic_file::write(out_file, record.to_json().as_bytes(), 0o600)?;
    Ok(Outcome {
        instances: plan.instances.len(),
        all_done: report.all_done(),
    })
}

/// The instances recorded by the last deploy to `out_file` (none without one).
fn previous_instances(out_file: &Path) -> anyhow::Result<Vec<Instance>> {
    use anyhow::Context as _;
    match std::fs::read_to_string(out_file) {
        Ok(text) => Ok(Deployment::parse(&text)
            .with_context(|| {
                format!(
                    "{} (the record of what the last deploy made) cannot be read",
                    out_file.display()
                )
            })?
            .instances),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", out_file.display())),
    }
}

/// The host port of every published (instance, container port).
type Externals = BTreeMap<(ContainerId, PortNumber), PortNumber>;

/// Which instances were installed, and which failed to be.
#[derive(Debug, Default)]
struct Installs {
    done: BTreeSet<ContainerId>,
    failed: BTreeSet<ContainerId>,
}

/// Installs every instance that is missing or different, all at once, and notes the host
/// ports of every instance in `externals`.
async fn install<A: Agents, F: FnMut(&Event) -> io::Result<()>>(
    agents: &A,
    plan: &Plan,
    currents: &[anyhow::Result<Current>],
    externals: &mut Externals,
    report: &mut Report<'_, F>,
) -> io::Result<Installs> {
    let mut wanted = Vec::new();
    for (inst, cur) in plan.instances.iter().zip(currents) {
        let cur = match cur {
            Ok(cur) => cur,
            Err(e) => {
                report.failed(&inst.host, Some(&inst.id), Step::Observe, e)?;
                continue;
            }
        };
        // An instance keeps the host ports it has until an update succeeds.
        if let Some(status) = &cur.status {
            record_ports(externals, &inst.id, &status.spec.ports);
        }
        match cur.same(inst) {
            true => report.emit(Event::Unchanged {
                id: inst.id.clone(),
                host: inst.host.clone(),
            })?,
            false => wanted.push((inst, cur.exists())),
        }
    }
    let answers = join_all(
        wanted
            .iter()
            .map(|(inst, _)| agents.install(&inst.host, &inst.id, install_request(inst))),
    )
    .await;
    let mut installs = Installs::default();
    for ((inst, existed), answer) in wanted.into_iter().zip(answers) {
        let (id, host) = (inst.id.clone(), inst.host.clone());
        match answer {
            Ok(installed) => {
                record_ports(externals, &inst.id, &installed.ports);
                installs.done.insert(inst.id.clone());
                report.emit(match existed {
                    true => Event::Updated { id, host },
                    false => Event::Installed { id, host },
                })?;
            }
            Err(e) => {
                installs.failed.insert(id);
                report.failed(&host, Some(&inst.id), Step::Install, &e)?;
            }
        }
    }
    Ok(installs)
}

/// Sets the links of every instance whose links changed, now that every host port is
/// known: one request per host, all hosts at once. An instance that could not be read or
/// installed, or that links to one that could not be read, is left as it is.
async fn link<A: Agents, F: FnMut(&Event) -> io::Result<()>>(
    agents: &A,
    plan: &Plan,
    currents: &[anyhow::Result<Current>],
    externals: &Externals,
    installs: &Installs,
    report: &mut Report<'_, F>,
) -> io::Result<()> {
    // The host ports of an instance that could not be read are unknown: links to it would
    // be dropped, so instances linking to it keep the links they have.
    let unread: BTreeSet<&ContainerId> = plan
        .instances
        .iter()
        .zip(currents)
        .filter(|(_, cur)| cur.is_err())
        .map(|(inst, _)| &inst.id)
        .collect();
    let mut changed: Vec<(&Planned, Vec<NetworkLink>)> = Vec::new();
    for (inst, cur) in plan.instances.iter().zip(currents) {
        let Ok(cur) = cur else { continue };
        if installs.failed.contains(&inst.id) || inst.links.iter().any(|l| unread.contains(&l.to)) {
            continue;
        }
        let links = network_links(inst, plan, externals);
        if cur.links() != links {
            changed.push((inst, links));
        }
    }
    let mut by_host: BTreeMap<&HostAddr, Vec<ContainerLinks>> = BTreeMap::new();
    for (inst, links) in &changed {
        by_host.entry(&inst.host).or_default().push(ContainerLinks {
            id: inst.id.clone(),
            network_links: links.clone(),
        });
    }
    let hosts: Vec<&HostAddr> = by_host.keys().copied().collect();
    let answers = join_all(
        by_host
            .into_iter()
            .map(|(host, links)| agents.set_links(host, links)),
    )
    .await;
    let failed: BTreeMap<&HostAddr, anyhow::Error> = hosts
        .into_iter()
        .zip(answers)
        .filter_map(|(host, answer)| answer.err().map(|e| (host, e)))
        .collect();
    for (inst, links) in changed {
        if !failed.contains_key(&inst.host) {
            report.emit(Event::Linked {
                id: inst.id.clone(),
                host: inst.host.clone(),
                links,
            })?;
        }
    }
    for (host, e) in &failed {
        report.failed(host, None, Step::Link, e)?;
    }
    Ok(())
}

/// Starts every instance that is not running and restarts every one that was updated while
/// running, all at once. An instance that could not be read or installed is left as it is.
async fn run<A: Agents, F: FnMut(&Event) -> io::Result<()>>(
    agents: &A,
    plan: &Plan,
    currents: &[anyhow::Result<Current>],
    installs: &Installs,
    report: &mut Report<'_, F>,
) -> io::Result<()> {
    let jobs: Vec<(&Planned, bool)> = plan
        .instances
        .iter()
        .zip(currents)
        .filter(|(inst, _)| !installs.failed.contains(&inst.id))
        .filter_map(|(inst, cur)| {
            let running = cur.as_ref().ok()?.running();
            match (running, installs.done.contains(&inst.id)) {
                (false, _) => Some((inst, false)),
                (true, true) => Some((inst, true)),
                (true, false) => None,
            }
        })
        .collect();
    let answers = join_all(jobs.iter().map(|&(inst, restart)| async move {
        match restart {
            true => agents.restart(&inst.host, &inst.id).await,
            false => agents.start(&inst.host, &inst.id).await,
        }
    }))
    .await;
    for ((inst, restart), answer) in jobs.into_iter().zip(answers) {
        let (id, host) = (inst.id.clone(), inst.host.clone());
        match answer {
            Ok(()) if restart => report.emit(Event::Restarted { id, host })?,
            Ok(()) => report.emit(Event::Started { id, host })?,
            Err(e) => report.failed(&host, Some(&id), Step::Start, &e)?,
        }
    }
    Ok(())
}

/// Deletes the instances the deployment no longer wants, one after the other.
async fn delete<A: Agents, F: FnMut(&Event) -> io::Result<()>>(
    agents: &A,
    plan: &Plan,
    report: &mut Report<'_, F>,
) -> io::Result<()> {
    for (id, host) in &plan.remove {
        match agents.delete(host, id).await {
            Ok(()) => report.emit(Event::Deleted {
                id: id.clone(),
                host: host.clone(),
            })?,
            Err(e) => report.failed(host, Some(id), Step::Delete, &e)?,
        }
    }
    Ok(())
}

/// What the plan installs `inst` with; the agent keeps its links and starts nothing.
fn install_request(inst: &Planned) -> InstallRequest {
    InstallRequest {
        ports: inst.ports.clone(),
        environment: Some(EnvironmentBody::from(observe::environment(inst))),
        ..InstallRequest::new(inst.image.clone())
    }
}

fn record_ports(externals: &mut Externals, id: &ContainerId, ports: &[PortPair]) {
    for p in ports {
        externals.insert((id.clone(), p.internal), p.external);
    }
}

/// The instances file: the deployment plus where each instance went, its host ports and
/// the addresses others link to it by.
fn instances_file(d: &Deployment, plan: &Plan, externals: &Externals) -> Deployment {
    let instances = plan
        .instances
        .iter()
        .map(|i| Instance {
            id: i.id.to_string(),
            image: i.image.to_string(),
            from: i.from.clone(),
            on: Some(i.host.to_string()),
            ports: i
                .ports
                .iter()
                .map(|p| InstancePort {
                    internal: p.internal,
                    external: externals
                        .get(&(i.id.clone(), p.internal))
                        .map_or(0, |e| e.get()),
                    target: plan.targets.get(&(i.id.clone(), p.internal)).cloned(),
                })
                .collect(),
        })
        .collect();
    Deployment {
        instances,
        ..d.clone()
    }
}

#[cfg(test)]
mod tests;
