//! [`Firewall`] through the `iptables-save` and `iptables-restore` programs (the nft or the
//! legacy backend, whichever the host uses, as Docker does), entering a container's network
//! namespace with `nsenter` when asked.

use std::process::Stdio;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::{Family, Firewall, Namespace};

/// The real firewall.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iptables;

/// How long a call waits for the xtables lock that Docker, firewalld or another gear process
/// may hold, instead of failing at once.
const LOCK_WAIT_SECS: &str = "5";

impl Firewall for Iptables {
    fn has(&self, family: Family) -> bool {
        match family {
            Family::V4 => true,
            // Lists the host's IPv6 addresses; absent when the kernel has no IPv6.
            Family::V6 => std::path::Path::new("/proc/net/if_inet6").exists(),
        }
    }

    async fn save(&self, ns: Namespace, family: Family, table: &str) -> anyhow::Result<String> {
        run(ns, family.save_program(), &["-t", table, "-c"], None).await
    }

    async fn restore(&self, ns: Namespace, family: Family, script: &str) -> anyhow::Result<()> {
        let program = family.restore_program();
        log::debug!("{program} --noflush in {ns}:\n{script}");
        run(
            ns,
            program,
            &["--noflush", "-w", LOCK_WAIT_SECS],
            Some(script),
        )
        .await
        .map(drop)
    }

    async fn allow_route_localnet(&self, ns: Namespace) -> anyhow::Result<()> {
        // /proc/sys/net shows the namespace of the process that opens it, so the write must
        // happen inside `ns`.
        let script = "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet";
        run(ns, "/bin/sh", &["-c", script], None).await.map(drop)
    }
}

/// Runs `program args...` in `ns` with `stdin`, and returns its standard output; a failure
/// carries the program's standard error.
async fn run(
    ns: Namespace,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    let mut cmd = match ns {
        Namespace::Host => Command::new(program),
        Namespace::Of(pid) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net"))
                .arg("--")
                .arg(program);
            c
        }
    };
    let mut child = cmd
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| match ns {
            Namespace::Host => format!("running {program} (is iptables installed?)"),
            Namespace::Of(_) => format!("running nsenter (util-linux) for {program}"),
        })?;
    if let Some(text) = stdin {
        let mut input = child.stdin.take().context("no stdin to write to")?;
        input.write_all(text.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    anyhow::ensure!(
        out.status.success(),
        "{program} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
