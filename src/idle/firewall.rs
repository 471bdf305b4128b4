//! The idler's rules in the host's `security` tables, IPv4 and IPv6, read and changed through
//! the [`crate::netfilter`] seam. Both families get the same rules: a published port is
//! reached through `127.0.0.1` and `[::1]` alike (docker-proxy listens on `[::]` too), so
//! both must hold first SYNs and count traffic.

use std::collections::BTreeSet;

use anyhow::Context as _;

use super::rules::{self, Listing, Rule};
use crate::id::ContainerId;
pub use crate::netfilter::Firewall;
use crate::netfilter::{Family, Namespace};

/// The idler's rules as they are now, in every family the host has: each rule once, its
/// packet counter the sum over the families.
pub async fn listing(fw: &impl Firewall) -> anyhow::Result<Listing> {
    let mut all: Option<Listing> = None;
    for family in families(fw) {
        let one = listing_of(fw, family).await?;
        match all.as_mut() {
            Some(all) => all.merge(one),
            None => all = Some(one),
        }
    }
    Ok(all.unwrap_or_default())
}

/// The families the host has.
fn families(fw: &impl Firewall) -> impl Iterator<Item = Family> + '_ {
    Family::ALL.into_iter().filter(|f| fw.has(*f))
}

/// The idler's rules in one family.
async fn listing_of(fw: &impl Firewall, family: Family) -> anyhow::Result<Listing> {
    Ok(rules::parse_save(
        &fw.save(Namespace::Host, family, rules::TABLE).await?,
    ))
}

/// Takes the idler's chain out of the `raw` tables, where earlier versions put it (it would
/// hold and count packets before the host's firewall decides on them).
pub async fn retire_raw(fw: &impl Firewall) -> anyhow::Result<()> {
    for family in families(fw) {
        let saved = fw.save(Namespace::Host, family, "raw").await?;
        if let Some(script) = rules::retire_raw(&saved) {
            fw.restore(Namespace::Host, family, &script)
                .await
                .with_context(|| format!("removing the idler's old {family} raw rules"))?;
            log::info!("moved the idler's {family} rules from the raw table to security");
        }
    }
    Ok(())
}

/// Makes the rules of the containers in `scope` exactly `want`, in every family (rules of
/// containers outside `scope` are left alone; `None` means every container).
pub async fn sync(
    fw: &impl Firewall,
    scope: Option<&BTreeSet<ContainerId>>,
    want: &[Rule],
) -> anyhow::Result<()> {
    for family in families(fw) {
        sync_family(fw, family, scope, want)
            .await
            .with_context(|| format!("changing the idler's {family} firewall rules"))?;
    }
    Ok(())
}

/// [`sync`] in one family. Re-reads and retries when another process changed the table in
/// between.
async fn sync_family(
    fw: &impl Firewall,
    family: Family,
    scope: Option<&BTreeSet<ContainerId>>,
    want: &[Rule],
) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..3 {
        let listing = listing_of(fw, family).await?;
        let remove: Vec<Rule> = listing
            .rules
            .keys()
            .filter(|r| scope.is_none_or(|s| s.contains(&r.id)) && !want.contains(r))
            .cloned()
            .collect();
        let Some(script) = rules::plan(&listing, want, &remove) else {
            return Ok(());
        };
        match fw.restore(Namespace::Host, family, &script).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("three tries"))
}

/// Makes the rules of `id` exactly `want`.
pub async fn sync_one(fw: &impl Firewall, id: &ContainerId, want: &[Rule]) -> anyhow::Result<()> {
    sync(fw, Some(&BTreeSet::from([id.clone()])), want).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idle::rules::Kind;
    use crate::netfilter::fake::FakeFirewall;

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
        assert_eq!(fw.rule_lines().len(), 5, "{:?}", fw.rule_lines());
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
        assert_eq!(
            listing(&fw).await.unwrap().jumps,
            ["OUTPUT", "FORWARD", "INPUT"]
        );
    }

    #[tokio::test]
    async fn both_families_get_the_rules_and_their_counts_add_up() {
        let fw = FakeFirewall::default();
        let a: ContainerId = "web-1".parse().unwrap();
        sync_one(&fw, &a, &[rule(Kind::Count, "web-1", 4000)])
            .await
            .unwrap();
        // The same rule, chain and jumps in ip6tables as in iptables.
        assert_eq!(fw.rule_lines(), fw.rule_lines_v6());
        assert_eq!(fw.rule_lines_v6().len(), 4, "{:?}", fw.rule_lines_v6());
        fw.count_in(Family::V4, "gear-count:web-1", 2);
        fw.count_in(Family::V6, "gear-count:web-1", 3);
        assert_eq!(listing(&fw).await.unwrap().counted(&a), Some(5));
        // A rule missing in one family only is put back there.
        fw.tables
            .lock()
            .unwrap()
            .retain(|(ns, _), _| !ns.contains("V6"));
        sync_one(&fw, &a, &[rule(Kind::Count, "web-1", 4000)])
            .await
            .unwrap();
        assert_eq!(fw.rule_lines(), fw.rule_lines_v6());
        sync_one(&fw, &a, &[]).await.unwrap();
        assert_eq!(listing(&fw).await.unwrap().of(&a).count(), 0);
        assert_eq!(fw.rule_lines_v6().len(), 3, "only the jumps stay");
    }

    #[tokio::test]
    async fn a_host_without_ipv6_gets_ipv4_rules_only() {
        let fw = FakeFirewall {
            no_ipv6: true,
            ..Default::default()
        };
        let a: ContainerId = "web-1".parse().unwrap();
        sync_one(&fw, &a, &[rule(Kind::Hold, "web-1", 4000)])
            .await
            .unwrap();
        assert_eq!(listing(&fw).await.unwrap().of(&a).count(), 1);
        assert!(fw.rule_lines_v6().is_empty());
    }
}
