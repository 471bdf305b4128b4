//! Applies a container's links inside its network namespace: by `gear-step started` at
//! every start of the container (its unit's start-post), and by the agent at once when the
//! links of a running container change. The rules go through the [`Firewall`] seam.

use std::net::Ipv4Addr;

use anyhow::{Context as _, anyhow};

use super::spec::ContainerSpec;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::links::{self, LinkHost, NetworkLink, ResolvedLink};
use crate::netfilter::{Family, Firewall, Namespace};
use crate::paths::Paths;

/// Resolves each link's target: `localhost` is the container's host (its gateway), an
/// address is itself, a name is looked up now (without blocking the caller's thread: the
/// agent serves every request from one).
pub async fn resolve(
    links: &[NetworkLink],
    gateway: Ipv4Addr,
) -> anyhow::Result<Vec<ResolvedLink>> {
    let mut resolved = Vec::with_capacity(links.len());
    for link in links {
        let to = resolve_host(&link.to_host, gateway)
            .await
            .with_context(|| format!("link {link}"))?;
        resolved.push(ResolvedLink {
            link: link.clone(),
            to,
        });
    }
    Ok(resolved)
}

async fn resolve_host(host: &LinkHost, gateway: Ipv4Addr) -> anyhow::Result<Ipv4Addr> {
    if host.is_local() {
        return Ok(gateway);
    }
    if let Ok(ip) = host.as_str().parse() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host.as_str(), 0))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .find_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .ok_or_else(|| anyhow!("{host} has no IPv4 address"))
}

/// Makes the link rules of the running container `name` be exactly `links`.
pub async fn apply(
    docker: &impl Docker,
    fw: &impl Firewall,
    name: &str,
    links: &[NetworkLink],
) -> anyhow::Result<()> {
    let info = docker
        .inspect(name)
        .await?
        .filter(|c| c.running && c.pid > 0)
        .with_context(|| format!("container {name} is not running"))?;
    let gateway = info
        .gateway
        .with_context(|| format!("container {name} has no gateway on Docker's bridge"))?;
    let resolved = resolve(links, gateway).await?;
    let ns = Namespace::Of(info.pid);
    let apply = async {
        if resolved.iter().any(|r| r.link.from_host.is_loopback()) {
            fw.allow_route_localnet(ns).await?;
        }
        let saved = fw.save(ns, Family::V4, "nat").await?;
        let script = links::render_rules(&resolved, &links::missing_jumps(&saved));
        fw.restore(ns, Family::V4, &script).await
    };
    apply
        .await
        .with_context(|| format!("applying the links of {name} in its network namespace"))
}

/// What `gear-step started ID` does once the container runs: applies the links its spec
/// lists.
/// A container without links needs nothing: its network namespace is new at every start.
pub async fn apply_at_start(
    paths: &Paths,
    docker: &impl Docker,
    fw: &impl Firewall,
    id: &ContainerId,
) -> anyhow::Result<()> {
    let spec = ContainerSpec::load(paths, id)?;
    if spec.links.is_empty() {
        return Ok(());
    }
    apply(docker, fw, &super::unit::docker_name(id), &spec.links).await?;
    for link in &spec.links {
        log::info!("link {link}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ContainerInfo;
    use crate::docker::fake::FakeDocker;
    use crate::netfilter::fake::FakeFirewall;

    fn running(docker: &FakeDocker, gateway: Ipv4Addr) {
        docker.containers.lock().unwrap().insert(
            "ctr-web-1".into(),
            ContainerInfo {
                running: true,
                pid: 42,
                gateway: Some(gateway),
                ..Default::default()
            },
        );
    }

    #[tokio::test]
    async fn applies_resolved_rules_in_the_containers_namespace_once() {
        let docker = FakeDocker::default();
        let gateway = Ipv4Addr::new(10, 213, 0, 1);
        running(&docker, gateway);
        let fw = FakeFirewall::default();
        let links: Vec<NetworkLink> = vec![
            "127.0.0.2:8081:localhost:4001".parse().unwrap(),
            "9000:10.1.2.3:80".parse().unwrap(),
        ];
        apply(&docker, &fw, "ctr-web-1", &links).await.unwrap();
        let ns = Namespace::Of(42);
        assert_eq!(*fw.localnet.lock().unwrap(), [ns]);
        let rules = fw.lines_of(ns, "nat");
        assert!(rules.contains(
            &"-A GEAR-LINKS -d 127.0.0.2/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.213.0.1:4001".to_string()
        ));
        assert!(
            rules
                .iter()
                .any(|r| r.contains("--to-destination 10.1.2.3:80"))
        );
        assert!(fw.lines_of(Namespace::Host, "nat").is_empty());
        // Again, with one link: the chains are replaced, the jumps are not doubled.
        apply(&docker, &fw, "ctr-web-1", &links[1..]).await.unwrap();
        let rules = fw.lines_of(ns, "nat");
        assert_eq!(
            rules
                .iter()
                .filter(|r| r.ends_with("-j GEAR-LINKS"))
                .count(),
            1,
            "{rules:?}"
        );
        assert!(!rules.iter().any(|r| r.contains("8081")), "{rules:?}");
    }

    #[tokio::test]
    async fn a_stopped_container_or_an_unknown_host_is_an_error() {
        let docker = FakeDocker::default();
        let fw = FakeFirewall::default();
        let err = apply(&docker, &fw, "ctr-x", &[]).await.unwrap_err();
        assert!(err.to_string().contains("not running"));
        let link: NetworkLink = "1:no-such-host.invalid:2".parse().unwrap();
        let err = resolve(&[link], Ipv4Addr::LOCALHOST).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot resolve no-such-host.invalid"),
            "{err:#}"
        );
    }
}
