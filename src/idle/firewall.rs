//! The seam between the idler and the kernel's firewall: read the `raw` table, apply a
//! restore script. [`Iptables`] runs the `iptables` programs (the nft or the legacy backend,
//! whichever the host uses, as Docker does); [`fake::FakeFirewall`] is a table in memory.
//!
//! `iptables` rather than `nft`: the NFQUEUE target works through iptables' compatibility
//! layer on every kernel gear runs on, while nft's own `queue` statement needs
//! `CONFIG_NFT_QUEUE`, which some kernels lack.

use std::collections::BTreeSet;
use std::future::Future;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

use super::rules::{self, Listing, Rule};
use crate::id::ContainerId;

/// The firewall calls the idler makes.
pub trait Firewall: Send + Sync + 'static {
    /// `iptables-save -t raw -c`.
    fn save(&self) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// `iptables-restore --noflush` with `script`; all of it applies, or none.
    fn restore(&self, script: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The idler's rules as they are now.
pub async fn listing(fw: &impl Firewall) -> anyhow::Result<Listing> {
    Ok(rules::parse_save(&fw.save().await?))
}

/// Makes the rules of the containers in `scope` exactly `want` (rules of containers outside
/// `scope` are left alone; `None` means every container). Re-reads and retries when another
/// process changed the table in between.
pub async fn sync(
    fw: &impl Firewall,
    scope: Option<&BTreeSet<ContainerId>>,
    want: &[Rule],
) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..3 {
        let listing = listing(fw).await?;
        let remove: Vec<Rule> = listing
            .rules
            .keys()
            .filter(|r| scope.is_none_or(|s| s.contains(&r.id)) && !want.contains(r))
            .cloned()
            .collect();
        let Some(script) = rules::plan(&listing, want, &remove) else {
            return Ok(());
        };
        match fw.restore(&script).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("three tries")).context("changing the idler's firewall rules")
}

/// Makes the rules of `id` exactly `want`.
pub async fn sync_one(fw: &impl Firewall, id: &ContainerId, want: &[Rule]) -> anyhow::Result<()> {
    sync(fw, Some(&BTreeSet::from([id.clone()])), want).await
}

/// [`Firewall`] through `iptables-save` and `iptables-restore`.
#[derive(Debug, Clone, Default)]
pub struct Iptables;

impl Firewall for Iptables {
    async fn save(&self) -> anyhow::Result<String> {
        let out = tokio::process::Command::new("iptables-save")
            .args(["-t", "raw", "-c"])
            .output()
            .await
            .context("running iptables-save (is iptables installed?)")?;
        anyhow::ensure!(
            out.status.success(),
            "iptables-save -t raw: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn restore(&self, script: &str) -> anyhow::Result<()> {
        log::debug!("iptables-restore --noflush:\n{script}");
        // -w: wait for the xtables lock that Docker may hold, instead of failing.
        let mut child = tokio::process::Command::new("iptables-restore")
            .args(["--noflush", "-w", "5"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running iptables-restore (is iptables installed?)")?;
        let mut stdin = child.stdin.take().context("iptables-restore's stdin")?;
        stdin.write_all(script.as_bytes()).await?;
        drop(stdin);
        let out = child.wait_with_output().await?;
        anyhow::ensure!(
            out.status.success(),
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }
}

#[cfg(test)]
pub mod fake {
    //! A `raw` table in memory that understands the lines the idler writes.

    use std::sync::Mutex;

    use super::Firewall;
    use crate::idle::rules::CHAIN;

    /// The table's lines (`-A CHAIN ...` as iptables-save prints them) with counters.
    #[derive(Debug, Default)]
    pub struct FakeFirewall {
        /// `(packets, line)`, in order.
        pub lines: Mutex<Vec<(u64, String)>>,
        /// Whether the chain exists.
        pub chain: Mutex<bool>,
        /// Every restore script applied.
        pub scripts: Mutex<Vec<String>>,
    }

    impl FakeFirewall {
        /// Adds `n` packets to every rule whose text contains `needle`.
        pub fn count(&self, needle: &str, n: u64) {
            for (p, line) in self.lines.lock().unwrap().iter_mut() {
                if line.contains(needle) {
                    *p += n;
                }
            }
        }

        /// The rule lines, without counters.
        pub fn rule_lines(&self) -> Vec<String> {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .map(|(_, l)| l.clone())
                .collect()
        }
    }

    impl Firewall for FakeFirewall {
        async fn save(&self) -> anyhow::Result<String> {
            let mut out = String::from("*raw\n");
            if *self.chain.lock().unwrap() {
                out.push_str(&format!(":{CHAIN} - [0:0]\n"));
            }
            for (p, line) in self.lines.lock().unwrap().iter() {
                out.push_str(&format!("[{p}:{}] {line}\n", p * 60));
            }
            Ok(out + "COMMIT\n")
        }

        async fn restore(&self, script: &str) -> anyhow::Result<()> {
            self.scripts.lock().unwrap().push(script.to_string());
            let mut lines = self.lines.lock().unwrap();
            let mut next = lines.clone();
            for l in script.lines() {
                if l == format!(":{CHAIN} - [0:0]") {
                    *self.chain.lock().unwrap() = true;
                } else if let Some(rest) = l.strip_prefix("-D ") {
                    let want = format!("-A {rest}");
                    let i = next
                        .iter()
                        .position(|(_, x)| *x == want)
                        .ok_or_else(|| anyhow::anyhow!("no such rule: {rest}"))?;
                    next.remove(i);
                } else if let Some(rest) = l.strip_prefix("-I ") {
                    let (hook, target) = rest.split_once(" 1 ").unwrap();
                    next.insert(0, (0, format!("-A {hook} {target}")));
                } else if l.starts_with("-A ") {
                    next.push((0, l.to_string()));
                }
            }
            *lines = next;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeFirewall;
    use super::*;
    use crate::idle::rules::Kind;

    fn rule(kind: Kind, id: &str, port: u16) -> Rule {
        Rule {
            kind,
            id: id.parse().unwrap(),
            port: port.try_into().unwrap(),
        }
    }

    #[tokio::test]
    async fn sync_converges_and_leaves_other_containers_alone() {
        let fw = FakeFirewall::default();
        let (a, b) = ("web-1".parse().unwrap(), "web-2".parse().unwrap());
        sync_one(&fw, &a, &[rule(Kind::Hold, "web-1", 4000)])
            .await
            .unwrap();
        sync_one(&fw, &b, &[rule(Kind::Count, "web-2", 4001)])
            .await
            .unwrap();
        assert_eq!(fw.rule_lines().len(), 4, "{:?}", fw.rule_lines());
        // Again: nothing to do, no script.
        let before = fw.scripts.lock().unwrap().len();
        sync_one(&fw, &a, &[rule(Kind::Hold, "web-1", 4000)])
            .await
            .unwrap();
        assert_eq!(fw.scripts.lock().unwrap().len(), before);
        // Hold becomes count; web-2 untouched; then web-1 loses everything.
        sync_one(&fw, &a, &[rule(Kind::Count, "web-1", 4000)])
            .await
            .unwrap();
        let l = listing(&fw).await.unwrap();
        assert_eq!(
            l.rules.keys().cloned().collect::<Vec<_>>(),
            [
                rule(Kind::Count, "web-1", 4000),
                rule(Kind::Count, "web-2", 4001)
            ]
        );
        sync_one(&fw, &a, &[]).await.unwrap();
        assert_eq!(l.of(&b).count(), 1);
        assert_eq!(listing(&fw).await.unwrap().of(&a).count(), 0);
        // A full sync removes the rules of containers nobody wants any more.
        sync(&fw, None, &[]).await.unwrap();
        assert!(listing(&fw).await.unwrap().rules.is_empty());
        assert_eq!(listing(&fw).await.unwrap().jumps, ["OUTPUT", "PREROUTING"]);
    }
}
