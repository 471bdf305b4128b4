//! `gear deploy FILE HOST...`: brings a deployment to the hosts and records where every
//! instance went. What is already right is left alone: no request, no restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use futures_util::future::join_all;

use super::{Remote, fan_out};
use crate::api::Request;
use crate::api::request::ContainerLinks;
use crate::container::environment::{Environment, EnvironmentBody};
use crate::container::ports::PortNumber;
use crate::container::spec::InstallRequest;
use crate::container::{ContainerList, ContainerState};
use crate::deploy::plan::{Plan, Planned, network_links, plan};
use crate::deploy::{Deployment, Instance, InstancePort};
use crate::id::ContainerId;
use crate::links::NetworkLink;
use crate::locator::HostAddr;

/// What an instance looks like on its host now.
#[derive(Debug, Clone, Default)]
struct Current {
    state: Option<ContainerState>,
    spec: serde_json::Value,
    env: String,
}

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

    // Every host must answer before anything changes.
    let listed = fan_out(hosts, |h| {
        let c = remote.client(&h);
        async move {
            c.json::<ContainerList>(&Request::ListContainers { all: true })
                .await
        }
    })
    .await;
    let mut existing = BTreeMap::new();
    let mut unreachable = Vec::new();
    for (host, result) in listed {
        match result {
            Ok(list) => {
                for c in list
                    .containers
                    .into_iter()
                    .filter(|c| belongs(&d, c.id.as_str()))
                {
                    existing.insert(c.id, host.clone());
                }
            }
            Err(e) => unreachable.push(format!("{e:#}")),
        }
    }
    if !unreachable.is_empty() {
        return Err(anyhow!(
            "nothing was changed: not every host answered:\n  {}",
            unreachable.join("\n  ")
        ));
    }
    let plan = plan(&d, hosts, &existing)?;
    let mut ok = true;

    // 1. Install what is missing or different.
    let currents = join_all(
        plan.instances
            .iter()
            .map(|i| current(remote, i, existing.contains_key(&i.id))),
    )
    .await;
    let mut externals = BTreeMap::new();
    let mut changed = Vec::new();
    let mut installs = Vec::new();
    for (inst, cur) in plan.instances.iter().zip(&currents) {
        let cur = match cur {
            Ok(c) => c,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {}/{}: {e:#}", inst.host, inst.id)?;
                continue;
            }
        };
        if cur.state.is_some() && same(inst, cur) {
            writeln!(out, "==> {} on {}: unchanged", inst.id, inst.host)?;
            record_ports(&mut externals, &inst.id, &cur.spec["Ports"]);
        } else {
            installs.push((inst, cur.state.is_some()));
        }
    }
    let answers = join_all(installs.iter().map(|(inst, _)| {
        let c = remote.client(&inst.host);
        let req = Request::Install {
            id: inst.id.clone(),
            body: install_request(inst),
            progress: false,
        };
        async move { c.json::<serde_json::Value>(&req).await }
    }))
    .await;
    let mut failed = Vec::new();
    for ((inst, existed), answer) in installs.iter().zip(answers) {
        match answer {
            Ok(v) => {
                record_ports(&mut externals, &inst.id, &v["Ports"]);
                writeln!(
                    out,
                    "==> {} on {}: {}",
                    inst.id,
                    inst.host,
                    if *existed { "updated" } else { "installed" }
                )?;
                changed.push(inst.id.clone());
            }
            Err(e) => {
                ok = false;
                failed.push(inst.id.clone());
                writeln!(err, "error: {}/{}: {e:#}", inst.host, inst.id)?;
            }
        }
    }

    // 2. Links, now that every host port is known; changed links reach running instances at once.
    let mut by_host: BTreeMap<HostAddr, Vec<ContainerLinks>> = BTreeMap::new();
    for (inst, cur) in plan.instances.iter().zip(&currents) {
        let links = network_links(inst, &plan, &externals);
        let old: Vec<NetworkLink> = cur
            .as_ref()
            .ok()
            .and_then(|c| serde_json::from_value(c.spec["Links"].clone()).ok())
            .unwrap_or_default();
        if sorted(old) != links {
            for l in &links {
                writeln!(
                    out,
                    "==> linking {}: {}:{} -> {}:{}",
                    inst.id, l.from_host, l.from_port, l.to_host, l.to_port
                )?;
            }
            by_host
                .entry(inst.host.clone())
                .or_default()
                .push(ContainerLinks {
                    id: inst.id.clone(),
                    network_links: links,
                });
        }
    }
    let hosts_with_links: Vec<HostAddr> = by_host.keys().cloned().collect();
    for (host, result) in fan_out(&hosts_with_links, |h| {
        let c = remote.client(&h);
        let req = Request::SetLinks(by_host[&h].clone());
        async move { c.send(&req).await }
    })
    .await
    {
        if let Err(e) = result {
            ok = false;
            writeln!(err, "error: links on {host}: {e:#}")?;
        }
    }

    // 3. Start what is not running; restart what changed while running.
    let runs = join_all(
        plan.instances
            .iter()
            .zip(&currents)
            .filter_map(|(inst, cur)| {
                let running = cur
                    .as_ref()
                    .ok()?
                    .state
                    .as_ref()
                    .is_some_and(|s| s.active_state == "active");
                let req = match (running, changed.contains(&inst.id)) {
                    (false, _) => Request::Start(inst.id.clone()),
                    (true, true) => Request::Restart(inst.id.clone()),
                    (true, false) => return None,
                };
                let c = remote.client(&inst.host);
                Some(async move { (inst, c.send(&req).await.map(|_| req)) })
            }),
    )
    .await;
    for (inst, result) in runs {
        match result {
            Ok(Request::Restart(_)) => {
                writeln!(out, "==> {} on {}: restarted", inst.id, inst.host)?
            }
            Ok(_) => writeln!(out, "==> {} on {}: started", inst.id, inst.host)?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {}/{}: {e:#}", inst.host, inst.id)?;
            }
        }
    }

    // 4. Remove what is no longer wanted.
    for (id, host) in &plan.remove {
        match remote.client(host).send(&Request::Delete(id.clone())).await {
            Ok(_) => writeln!(out, "==> {id} on {host}: deleted")?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: deleting {host}/{id}: {e:#}")?;
            }
        }
    }

    let record = instances_file(&d, &plan, &externals);
    crate::atomic_file::write(out_file, record.to_json().as_bytes(), 0o644)?;
    writeln!(
        out,
        "==> {} instances on {} hosts; recorded in {}",
        plan.instances.len(),
        hosts.len(),
        out_file.display()
    )?;
    Ok(ok)
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

/// Whether a container id is an instance of this deployment (`<prefix><name>-<n>`).
fn belongs(d: &Deployment, id: &str) -> bool {
    d.containers.iter().any(|c| {
        id.strip_prefix(&d.id_prefix)
            .and_then(|rest| rest.strip_prefix(&c.name))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit()))
    }) || d.instances.iter().any(|i| i.id == id)
}

async fn current(remote: &Remote, inst: &Planned, exists: bool) -> anyhow::Result<Current> {
    if !exists {
        return Ok(Current::default());
    }
    let client = remote.client(&inst.host);
    let status: serde_json::Value = client.json(&Request::Status(inst.id.clone())).await?;
    let env = match client.send(&Request::GetEnvironment(inst.id.clone())).await {
        Ok(a) => String::from_utf8_lossy(&a.body).into_owned(),
        Err(_) => String::new(),
    };
    let state = serde_json::from_value(status.clone()).ok();
    Ok(Current {
        state,
        spec: status["Spec"].clone(),
        env,
    })
}

/// The environment the plan gives `inst`.
fn environment(inst: &Planned) -> Environment {
    let mut env = Environment::new();
    for v in &inst.env {
        env.set(v.clone());
    }
    env
}

fn install_request(inst: &Planned) -> InstallRequest {
    let env = environment(inst);
    InstallRequest {
        image: inst.image.clone(),
        started: false,
        ports: inst.ports.clone(),
        environment: Some(EnvironmentBody::from(env)),
        systemd_slice: None,
        memory: None,
        cpus: None,
        restart: None,
        network_links: None,
        idle: None,
        ..InstallRequest::new(inst.image.clone())
    }
}

/// Whether the instance on its host already is what the plan wants (links aside).
fn same(inst: &Planned, cur: &Current) -> bool {
    let image = cur.spec["Image"].as_str() == Some(inst.image.as_str());
    let have: Vec<(u64, u64)> = cur.spec["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["Internal"].as_u64().unwrap_or(0),
                p["External"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let ports = have.len() == inst.ports.len()
        && inst.ports.iter().all(|want| {
            have.iter().any(|&(i, e)| {
                i == u64::from(want.internal.get())
                    && (want.external == 0 || e == u64::from(want.external))
            })
        });
    image && ports && environment(inst).render() == cur.env
}

fn record_ports(
    externals: &mut BTreeMap<(ContainerId, PortNumber), PortNumber>,
    id: &ContainerId,
    ports: &serde_json::Value,
) {
    for p in ports.as_array().into_iter().flatten() {
        let port = |k: &str| {
            p[k].as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .and_then(|n| PortNumber::try_from(n).ok())
        };
        if let (Some(i), Some(e)) = (port("Internal"), port("External")) {
            externals.insert((id.clone(), i), e);
        }
    }
}

fn instances_file(
    d: &Deployment,
    plan: &Plan,
    externals: &BTreeMap<(ContainerId, PortNumber), PortNumber>,
) -> Deployment {
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

fn sorted(mut links: Vec<NetworkLink>) -> Vec<NetworkLink> {
    links.sort();
    links
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

    #[test]
    fn instances_belong_by_name_and_number() {
        let d = Deployment::parse(r#"{"IdPrefix":"p-","Containers":[{"Name":"web","Image":"a"}]}"#)
            .unwrap();
        assert!(belongs(&d, "p-web-1"));
        assert!(belongs(&d, "p-web-12"));
        assert!(!belongs(&d, "p-web-x"));
        assert!(!belongs(&d, "web-1"));
        assert!(!belongs(&d, "p-webby-1"));
    }
}
