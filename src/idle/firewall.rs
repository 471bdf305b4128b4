//! The idler's rules in the host's `raw` table, read and changed through the
//! [`crate::netfilter`] seam.

use std::collections::BTreeSet;

use anyhow::Context as _;

use super::rules::{self, Listing, Rule};
use crate::id::ContainerId;
pub use crate::netfilter::Firewall;
use crate::netfilter::Namespace;

/// The idler's rules as they are now.
pub async fn listing(fw: &impl Firewall) -> anyhow::Result<Listing> {
    Ok(rules::parse_save(&fw.save(Namespace::Host, "raw").await?))
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
        match fw.restore(Namespace::Host, &script).await {
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
