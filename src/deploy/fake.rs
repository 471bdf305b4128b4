//! An in-memory [`Agents`] for tests: hosts holding containers, a log of every request
//! sent, and failures to inject (a host that does not answer, an install that fails).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use anyhow::{anyhow, bail};

use super::agents::Agents;
use crate::api::reply::{Installed, Linked, Status};
use crate::api::request::ContainerLinks;
use crate::container::environment::Environment;
use crate::container::ports::{PortNumber, PortPair};
use crate::container::spec::{ContainerSpec, InstallRequest};
use crate::container::{ContainerList, ContainerState};
use crate::id::ContainerId;
use crate::locator::HostAddr;

/// One request sent, naming `host/id` (or the host alone for listings and links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    List(String),
    Status(String),
    Environment(String),
    Install(String),
    SetLinks(String),
    Start(String),
    Restart(String),
    Delete(String),
}

impl Call {
    /// Whether the request changes its host.
    pub fn changes(&self) -> bool {
        !matches!(self, Call::List(_) | Call::Status(_) | Call::Environment(_))
    }
}

/// A container on a fake host.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContainer {
    pub spec: ContainerSpec,
    /// Its rendered environment file, if it has one.
    pub env: Option<String>,
    pub active: bool,
}

#[derive(Debug, Default)]
struct FakeHost {
    containers: BTreeMap<ContainerId, FakeContainer>,
    /// The last host port handed out for port 0.
    last_port: u16,
    /// It does not answer at all.
    down: bool,
    /// Installs of these containers fail.
    fail_install: BTreeSet<ContainerId>,
    /// The status of these containers cannot be read.
    fail_status: BTreeSet<ContainerId>,
}

/// Agents on hosts kept in memory.
#[derive(Debug, Default)]
pub struct FakeAgents {
    hosts: Mutex<BTreeMap<HostAddr, FakeHost>>,
    calls: Mutex<Vec<Call>>,
}

impl FakeAgents {
    /// Agents on `hosts`, each without containers, handing out host ports from 4000.
    pub fn new(hosts: &[HostAddr]) -> Self {
        let hosts = hosts
            .iter()
            .map(|h| {
                let host = FakeHost {
                    last_port: 3999,
                    ..FakeHost::default()
                };
                (h.clone(), host)
            })
            .collect();
        FakeAgents {
            hosts: Mutex::new(hosts),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// `host` stops answering.
    pub fn take_down(&self, host: &HostAddr) {
        self.hosts.lock().unwrap().get_mut(host).unwrap().down = true;
    }

    /// Installs of `id` on `host` fail from now on.
    pub fn fail_install(&self, host: &HostAddr, id: &ContainerId) {
        let mut hosts = self.hosts.lock().unwrap();
        hosts.get_mut(host).unwrap().fail_install.insert(id.clone());
    }

    /// Reading the status of `id` on `host` fails from now on.
    pub fn fail_status(&self, host: &HostAddr, id: &ContainerId) {
        let mut hosts = self.hosts.lock().unwrap();
        hosts.get_mut(host).unwrap().fail_status.insert(id.clone());
    }

    /// Container `id` on `host` stops (as `gear stop` would).
    pub fn stop(&self, host: &HostAddr, id: &str) {
        let mut hosts = self.hosts.lock().unwrap();
        let host = hosts.get_mut(host).unwrap();
        host.containers
            .get_mut(&id.parse().unwrap())
            .unwrap()
            .active = false;
    }

    /// Container `id` on `host`, if installed.
    pub fn container(&self, host: &HostAddr, id: &str) -> Option<FakeContainer> {
        let hosts = self.hosts.lock().unwrap();
        hosts[host].containers.get(&id.parse().unwrap()).cloned()
    }

    /// The requests sent since the last call, in order.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    /// Logs `call`, then runs `f` on `host`, which must be up.
    fn on<T>(
        &self,
        call: Call,
        host: &HostAddr,
        f: impl FnOnce(&mut FakeHost) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.calls.lock().unwrap().push(call);
        let mut hosts = self.hosts.lock().unwrap();
        match hosts.get_mut(host) {
            Some(h) if !h.down => f(h),
            _ => Err(anyhow!("{host}: cannot reach the gear agent")),
        }
    }
}

fn at(host: &HostAddr, id: &ContainerId) -> String {
    format!("{}/{id}", host.host())
}

impl FakeHost {
    fn get(&mut self, id: &ContainerId) -> anyhow::Result<&mut FakeContainer> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| anyhow!("container {id} is not installed (404)"))
    }
}

fn state(id: &ContainerId, c: &FakeContainer) -> ContainerState {
    let (active, sub) = match c.active {
        true => ("active", "running"),
        false => ("inactive", "dead"),
    };
    ContainerState {
        id: id.clone(),
        active_state: active.into(),
        sub_state: sub.into(),
        load_state: "loaded".into(),
        job_type: None,
    }
}

impl Agents for FakeAgents {
    async fn list(&self, host: &HostAddr) -> anyhow::Result<ContainerList> {
        self.on(Call::List(host.host().into()), host, |h| {
            let containers = h.containers.iter().map(|(id, c)| state(id, c)).collect();
            Ok(ContainerList { containers })
        })
    }

    async fn status(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<Status> {
        self.on(Call::Status(at(host, id)), host, |h| {
            if h.fail_status.contains(id) {
                bail!("container {id} cannot be read (500)");
            }
            let c = h.get(id)?;
            Ok(Status {
                state: state(id, c),
                unit: id.unit_name(),
                spec: c.spec.clone(),
                idle: None,
                since_usec: None,
                main_pid: None,
                memory_bytes: None,
                result: None,
                health: None,
            })
        })
    }

    async fn environment(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<String> {
        self.on(Call::Environment(at(host, id)), host, |h| {
            h.get(id)?
                .env
                .clone()
                .ok_or_else(|| anyhow!("container {id} has no environment (404)"))
        })
    }

    async fn install(
        &self,
        host: &HostAddr,
        id: &ContainerId,
        body: InstallRequest,
    ) -> anyhow::Result<Installed> {
        self.on(Call::Install(at(host, id)), host, |h| {
            if h.fail_install.contains(id) {
                bail!("image {} could not be pulled (422)", body.image.as_str());
            }
            let old = h.containers.get(id).cloned();
            let old_ports = old
                .as_ref()
                .map(|c| c.spec.ports.clone())
                .unwrap_or_default();
            let mut ports = Vec::new();
            for want in &body.ports {
                let kept = old_ports.iter().find(|p| p.internal == want.internal);
                let external = match (want.external, kept) {
                    (0, Some(p)) => p.external,
                    (0, None) => {
                        h.last_port += 1;
                        PortNumber::try_from(h.last_port)?
                    }
                    (n, _) => PortNumber::try_from(n)?,
                };
                ports.push(PortPair {
                    internal: want.internal,
                    external,
                });
            }
            let env = body
                .environment
                .map(|b| Environment::from(b).render())
                .filter(|text| !text.is_empty());
            let spec = ContainerSpec {
                id: id.clone(),
                image: body.image,
                ports: ports.clone(),
                retired_ports: vec![],
                slice: Default::default(),
                memory: None,
                cpus: None,
                restart: Default::default(),
                // An install without links keeps the old ones, as the agent does.
                links: old
                    .as_ref()
                    .map(|c| c.spec.links.clone())
                    .unwrap_or_default(),
                idle: None,
                volumes: vec![],
                user: None,
                ready: None,
                drain_timeout: None,
                health: None,
                relax: vec![],
                pids_limit: None,
                selinux_level: None,
            };
            let active = old.is_some_and(|c| c.active);
            h.containers
                .insert(id.clone(), FakeContainer { spec, env, active });
            Ok(Installed {
                id: id.clone(),
                ports,
                started: false,
            })
        })
    }

    async fn set_links(
        &self,
        host: &HostAddr,
        links: Vec<ContainerLinks>,
    ) -> anyhow::Result<Linked> {
        self.on(Call::SetLinks(host.host().into()), host, |h| {
            for entry in &links {
                h.get(&entry.id)?.spec.links = entry.network_links.clone();
            }
            Ok(Linked {
                linked: links.into_iter().map(|e| e.id).collect(),
                applied: vec![],
            })
        })
    }

    async fn start(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<()> {
        self.on(Call::Start(at(host, id)), host, |h| {
            h.get(id)?.active = true;
            Ok(())
        })
    }

    async fn restart(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<()> {
        self.on(Call::Restart(at(host, id)), host, |h| {
            h.get(id)?.active = true;
            Ok(())
        })
    }

    async fn delete(&self, host: &HostAddr, id: &ContainerId) -> anyhow::Result<()> {
        self.on(Call::Delete(at(host, id)), host, |h| {
            h.containers
                .remove(id)
                .map(|_| ())
                .ok_or_else(|| anyhow!("container {id} is not installed (404)"))
        })
    }
}
