//! Planning a deployment (pure): which instances exist, on which host, with which ports,
//! environment and links, and which old instances go.
//!
//! Placement keeps every instance on the host it is already on (while that host is among
//! the deploy hosts) and spreads new ones: each goes to the host with the fewest instances
//! of its container, then the fewest instances overall, then the first given. Link
//! addresses follow geard's scheme and are kept from the previous instances file, so a
//! redeploy gives every instance the same addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::{ContainerDef, Deployment, InvalidDeployment, Target};
use crate::container::environment::Variable;
use crate::container::ports::{PortNumber, PortRequest};
use crate::container::spec::Image;
use crate::id::ContainerId;
use crate::links::NetworkLink;
use crate::locator::HostAddr;

/// One instance as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Its id.
    pub id: ContainerId,
    /// The container it is an instance of.
    pub from: String,
    /// Its image.
    pub image: Image,
    /// Its host.
    pub host: HostAddr,
    /// Ports to publish (the container's public ports; links may only use these).
    pub ports: Vec<PortRequest>,
    /// Its environment.
    pub env: Vec<Variable>,
    /// Its links, by target instance and port (addresses fixed, host ports known later).
    pub links: Vec<PlannedLink>,
}

/// A link of one instance to one port of one target instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLink {
    /// The local address the instance dials.
    pub from: Target,
    /// The target instance.
    pub to: ContainerId,
    /// The target's container port.
    pub to_port: PortNumber,
}

/// What a deploy does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every instance that should exist, by id.
    pub instances: Vec<Planned>,
    /// Existing instances that should not, with the host they are on.
    pub remove: Vec<(ContainerId, HostAddr)>,
    /// The local address of every linked (instance, port).
    pub targets: BTreeMap<(ContainerId, PortNumber), Target>,
}

/// Plans `d` over `hosts`, given the instances of this deployment that already exist
/// (`existing`: id → host) and the link addresses recorded by the last deploy.
pub fn plan(
    d: &Deployment,
    hosts: &[HostAddr],
    existing: &BTreeMap<ContainerId, HostAddr>,
) -> Result<Plan, InvalidDeployment> {
    if hosts.len() > 1 && hosts.iter().any(|h| h == &HostAddr::localhost()) {
        return Err(InvalidDeployment::LocalhostAmongMany);
    }
    let mut instances = Vec::new();
    let mut load: BTreeMap<HostAddr, usize> = hosts.iter().map(|h| (h.clone(), 0)).collect();
    let mut wanted = BTreeSet::new();
    for def in &d.containers {
        let image: Image = def.image.parse().map_err(|e| field(def, e))?;
        let env = def
            .environment
            .iter()
            .map(|v| Variable::new(v.name.clone(), v.value.clone()).map_err(|e| field(def, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let pinned = match def.affinity.as_deref() {
            None | Some("" | "distribute") => None,
            Some(a) => Some(
                hosts
                    .iter()
                    .find(|h| h.to_string() == a)
                    .cloned()
                    .ok_or_else(|| InvalidDeployment::Affinity {
                        name: def.name.clone(),
                        affinity: a.to_string(),
                    })?,
            ),
        };
        let mut mine: BTreeMap<HostAddr, usize> = hosts.iter().map(|h| (h.clone(), 0)).collect();
        let ids: Vec<ContainerId> = (1..=def.count)
            .map(|n| instance_id(d, def, n))
            .collect::<Result<_, _>>()?;
        // Instances already on a deploy host stay there; place them first.
        let (placed, new): (Vec<_>, Vec<_>) = ids.into_iter().partition(|id| {
            existing
                .get(id)
                .is_some_and(|h| hosts.contains(h) && pinned.as_ref().is_none_or(|p| p == h))
        });
        for id in placed.into_iter().chain(new) {
            let host = match existing.get(&id).filter(|h| load.contains_key(*h)) {
                Some(h) if pinned.as_ref().is_none_or(|p| p == h) => h.clone(),
                _ => match &pinned {
                    Some(p) => p.clone(),
                    None => least_loaded(hosts, &mine, &load),
                },
            };
            *mine.get_mut(&host).expect("a deploy host") += 1;
            *load.get_mut(&host).expect("a deploy host") += 1;
            wanted.insert(id.clone());
            let ports = def
                .public_ports
                .iter()
                .map(|p| PortRequest {
                    internal: p.internal,
                    external: p.external,
                })
                .collect();
            instances.push(Planned {
                id,
                from: def.name.clone(),
                image: image.clone(),
                host,
                ports,
                env: env.clone(),
                links: vec![],
            });
        }
    }
    let targets = link(d, &mut instances)?;
    let remove = existing
        .iter()
        .filter(|(id, _)| !wanted.contains(*id))
        .map(|(id, h)| (id.clone(), h.clone()))
        .collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Plan {
        instances,
        remove,
        targets,
    })
}

fn field(def: &ContainerDef, e: impl std::fmt::Display) -> InvalidDeployment {
    InvalidDeployment::Field {
        name: def.name.clone(),
        reason: e.to_string(),
    }
}

fn instance_id(
    d: &Deployment,
    def: &ContainerDef,
    n: u32,
) -> Result<ContainerId, InvalidDeployment> {
    let id = format!("{}{}-{n}", d.id_prefix, def.name);
    id.parse().map_err(|_| InvalidDeployment::InstanceId(id))
}

fn least_loaded(
    hosts: &[HostAddr],
    mine: &BTreeMap<HostAddr, usize>,
    load: &BTreeMap<HostAddr, usize>,
) -> HostAddr {
    hosts
        .iter()
        .enumerate()
        .min_by_key(|(i, h)| (mine[*h], load[*h], *i))
        .map(|(_, h)| h.clone())
        .expect("at least one host")
}

/// Fills in every instance's links and returns the address of each linked port.
fn link(
    d: &Deployment,
    instances: &mut [Planned],
) -> Result<BTreeMap<(ContainerId, PortNumber), Target>, InvalidDeployment> {
    // Addresses from the last deploy stay where they were.
    let mut targets: BTreeMap<(ContainerId, PortNumber), Target> = BTreeMap::new();
    for old in &d.instances {
        let Ok(id) = old.id.parse::<ContainerId>() else {
            continue;
        };
        for p in &old.ports {
            if let Some(t) = &p.target {
                targets.insert((id.clone(), p.internal), t.clone());
            }
        }
    }
    let mut used: BTreeSet<(Ipv4Addr, u16)> =
        targets.values().map(|t| (t.host, t.port.get())).collect();
    let mut all_links: Vec<(String, PlannedLink)> = Vec::new();
    for def in &d.containers {
        for l in &def.links {
            let target = d
                .containers
                .iter()
                .find(|c| c.name == l.to)
                .ok_or_else(|| InvalidDeployment::LinkTarget {
                    from: def.name.clone(),
                    to: l.to.clone(),
                })?;
            if target.public_ports.is_empty() {
                return Err(InvalidDeployment::NoPorts {
                    from: def.name.clone(),
                    to: l.to.clone(),
                });
            }
            // Target port → requested local port (0: the target port itself).
            let mut aliases: Vec<(PortNumber, u16)> = l
                .alias_ports
                .iter()
                .map(|a| (a.internal, a.external))
                .collect();
            aliases.extend(l.ports.iter().map(|p| (*p, 0)));
            if aliases.is_empty() {
                aliases = target
                    .public_ports
                    .iter()
                    .map(|p| (p.internal, 0))
                    .collect();
            }
            let mut target_ids: Vec<ContainerId> = instances
                .iter()
                .filter(|i| i.from == target.name)
                .map(|i| i.id.clone())
                .collect();
            target_ids.sort();
            for (port, local) in aliases {
                if !target.public_ports.iter().any(|p| p.internal == port) {
                    return Err(InvalidDeployment::LinkPort {
                        from: def.name.clone(),
                        to: l.to.clone(),
                        port: port.get(),
                    });
                }
                let requested = if local != 0 { local } else { port.get() };
                let vary_address = l.match_port || local != 0;
                for tid in &target_ids {
                    let t = match targets.get(&(tid.clone(), port)) {
                        Some(t) => t.clone(),
                        None => {
                            let t = next_target(&mut used, l.non_local, vary_address, requested)
                                .ok_or_else(|| {
                                    InvalidDeployment::AddressesExhausted(l.to.clone())
                                })?;
                            targets.insert((tid.clone(), port), t.clone());
                            t
                        }
                    };
                    all_links.push((
                        def.name.clone(),
                        PlannedLink {
                            from: t,
                            to: tid.clone(),
                            to_port: port,
                        },
                    ));
                }
            }
        }
    }
    for inst in instances.iter_mut() {
        inst.links = all_links
            .iter()
            .filter(|(from, _)| *from == inst.from)
            .map(|(_, l)| l.clone())
            .collect();
    }
    // Every linked port is a public port of its target (checked above), so published.
    Ok(targets)
}

/// The next free local address, as geard allocated them: by address (127.0.0.1, .2, ...
/// or 192.168.1.1, .2, ...) keeping the port when `vary_address`, else by port on the
/// first address.
fn next_target(
    used: &mut BTreeSet<(Ipv4Addr, u16)>,
    non_local: bool,
    vary_address: bool,
    port: u16,
) -> Option<Target> {
    let base = if non_local {
        Ipv4Addr::new(192, 168, 1, 1)
    } else {
        Ipv4Addr::new(127, 0, 0, 1)
    };
    for step in 0u32..65_000 {
        let (ip, p) = if vary_address {
            (Ipv4Addr::from(u32::from(base) + step), port)
        } else {
            (base, u16::try_from(u32::from(port) + step).ok()?)
        };
        if ip.octets()[3] == 0 || ip.octets()[3] == 255 {
            continue;
        }
        if used.insert((ip, p)) {
            return Some(Target {
                host: ip,
                port: PortNumber::try_from(p).ok()?,
            });
        }
    }
    None
}

/// The network links of `inst`, once every instance's host ports are known
/// (`externals`: (id, container port) → host port). A target on the same host is reached
/// as `localhost`, one elsewhere by its host's name.
pub fn network_links(
    inst: &Planned,
    plan: &Plan,
    externals: &BTreeMap<(ContainerId, PortNumber), PortNumber>,
) -> Vec<NetworkLink> {
    let mut links: Vec<NetworkLink> = inst
        .links
        .iter()
        .filter_map(|l| {
            let target = plan.instances.iter().find(|i| i.id == l.to)?;
            let to_port = *externals.get(&(l.to.clone(), l.to_port))?;
            let host = if target.host == inst.host {
                "localhost".to_string()
            } else {
                target.host.host().to_string()
            };
            Some(NetworkLink {
                from_host: l.from.host,
                from_port: l.from.port,
                to_host: host.parse().ok()?,
                to_port,
            })
        })
        .collect();
    links.sort();
    links
}

#[cfg(test)]
mod tests;
