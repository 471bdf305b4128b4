//! Applies a container's links inside its network namespace: by `gear-step started` at
//! every start of the container (its unit's start-post), and by the agent at once when the
//! links of a running container change.

use std::future::Future;
use std::net::{Ipv4Addr, ToSocketAddrs};
use std::process::Stdio;

use anyhow::{Context as _, anyhow, bail};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::container::spec::ContainerSpec;
use crate::docker::Docker;
use crate::id::ContainerId;
use crate::links::{self, LinkHost, NetworkLink, ResolvedLink};
use crate::paths::Paths;

/// Runs a script inside another network namespace: the one seam to the firewall.
pub trait Netns: Send + Sync + 'static {
    /// Runs `/bin/sh -c script _ args...` in the network namespace of `pid` (and only
    /// that namespace: files and programs are the host's), feeding it `stdin`.
    fn run(
        &self,
        pid: u32,
        script: &str,
        args: &[&str],
        stdin: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// [`Netns`] through `nsenter --net=/proc/PID/ns/net`.
#[derive(Debug, Default, Clone)]
pub struct Nsenter;

impl Netns for Nsenter {
    async fn run(&self, pid: u32, script: &str, args: &[&str], stdin: &str) -> anyhow::Result<()> {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["--", "/bin/sh", "-c", script, "gear-linker"])
            .args(args)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("running nsenter (util-linux)")?;
        let mut input = child.stdin.take().context("nsenter has no stdin")?;
        input.write_all(stdin.as_bytes()).await?;
        drop(input);
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}

/// Inside the namespace: allow DNAT of 127.x (`route_localnet`) when asked, replace the
/// link chains with the rules on stdin, and hook them in once.
const APPLY: &str = r#"set -e
if [ "$1" = 1 ]; then echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet; fi
iptables-restore --noflush
iptables -t nat -C OUTPUT -j GEAR-LINKS 2>/dev/null || iptables -t nat -I OUTPUT 1 -j GEAR-LINKS
iptables -t nat -C POSTROUTING -j GEAR-LINKS-SNAT 2>/dev/null || iptables -t nat -I POSTROUTING 1 -j GEAR-LINKS-SNAT
"#;

/// Resolves each link's target: `localhost` is the container's host (its gateway), an
/// address is itself, a name is looked up now.
pub fn resolve(links: &[NetworkLink], gateway: Ipv4Addr) -> anyhow::Result<Vec<ResolvedLink>> {
    links
        .iter()
        .map(|link| {
            let to =
                resolve_host(&link.to_host, gateway).with_context(|| format!("link {link}"))?;
            Ok(ResolvedLink {
                link: link.clone(),
                to,
            })
        })
        .collect()
}

fn resolve_host(host: &LinkHost, gateway: Ipv4Addr) -> anyhow::Result<Ipv4Addr> {
    if host.is_local() {
        return Ok(gateway);
    }
    if let Ok(ip) = host.as_str().parse() {
        return Ok(ip);
    }
    (host.as_str(), 0)
        .to_socket_addrs()
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
    netns: &impl Netns,
    name: &str,
    links: &[NetworkLink],
) -> anyhow::Result<()> {
    let info = docker
        .inspect(name)
        .await?
        .filter(|c| c.running && c.pid > 0)
        .with_context(|| format!("container {name} is not running"))?;
    let (pid, gateway) = (info.pid, info.gateway);
    let gateway =
        gateway.with_context(|| format!("container {name} has no gateway on Docker's bridge"))?;
    let resolved = resolve(links, gateway)?;
    let localnet = resolved.iter().any(|r| r.link.from_host.is_loopback());
    netns
        .run(
            pid,
            APPLY,
            &[if localnet { "1" } else { "0" }],
            &links::render_rules(&resolved),
        )
        .await
        .with_context(|| format!("applying the links of {name} in its network namespace"))
}

/// What `gear-step started ID` does once the container runs: applies the links its spec
/// lists.
/// A container without links needs nothing: its network namespace is new at every start.
pub async fn apply_at_start(
    paths: &Paths,
    docker: &impl Docker,
    netns: &impl Netns,
    id: &ContainerId,
) -> anyhow::Result<()> {
    let path = paths.spec_file(id);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let spec: ContainerSpec =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    if spec.links.is_empty() {
        return Ok(());
    }
    apply(
        docker,
        netns,
        &crate::container::unit::docker_name(id),
        &spec.links,
    )
    .await?;
    for link in &spec.links {
        log::info!("link {link}");
    }
    Ok(())
}

#[cfg(test)]
pub mod fake {
    //! A recording [`Netns`].

    use std::sync::Mutex;

    use super::Netns;

    /// Every run: (pid, args, stdin).
    #[derive(Debug, Default)]
    pub struct FakeNetns {
        /// The runs, in order.
        pub runs: Mutex<Vec<(u32, Vec<String>, String)>>,
    }

    impl Netns for FakeNetns {
        async fn run(
            &self,
            pid: u32,
            _script: &str,
            args: &[&str],
            stdin: &str,
        ) -> anyhow::Result<()> {
            let args = args.iter().map(|a| a.to_string()).collect();
            self.runs
                .lock()
                .unwrap()
                .push((pid, args, stdin.to_string()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ContainerInfo;
    use crate::docker::fake::FakeDocker;

    #[tokio::test]
    async fn applies_resolved_rules_in_the_containers_namespace() {
        let docker = FakeDocker::default();
        let gateway = Ipv4Addr::new(10, 213, 0, 1);
        docker.containers.lock().unwrap().insert(
            "ctr-web-1".into(),
            ContainerInfo {
                running: true,
                pid: 42,
                gateway: Some(gateway),
                ..Default::default()
            },
        );
        let netns = fake::FakeNetns::default();
        let links: Vec<NetworkLink> = vec![
            "127.0.0.2:8081:localhost:4001".parse().unwrap(),
            "9000:10.1.2.3:80".parse().unwrap(),
        ];
        apply(&docker, &netns, "ctr-web-1", &links).await.unwrap();
        let runs = netns.runs.lock().unwrap();
        let (pid, args, rules) = &runs[0];
        assert_eq!((*pid, args.as_slice()), (42, ["1".to_string()].as_slice()));
        assert!(rules.contains(
            "-d 127.0.0.2/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.213.0.1:4001"
        ));
        assert!(rules.contains("--to-destination 10.1.2.3:80"));
    }

    #[tokio::test]
    async fn a_stopped_container_or_an_unknown_host_is_an_error() {
        let docker = FakeDocker::default();
        let netns = fake::FakeNetns::default();
        let err = apply(&docker, &netns, "ctr-x", &[]).await.unwrap_err();
        assert!(err.to_string().contains("not running"));
        let link: NetworkLink = "1:no-such-host.invalid:2".parse().unwrap();
        let err = resolve(&[link], Ipv4Addr::LOCALHOST).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot resolve no-such-host.invalid"),
            "{err:#}"
        );
    }
}
