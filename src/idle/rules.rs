//! The idler's iptables rules, as data: rendering, parsing `iptables-save -c`, and planning
//! one `iptables-restore --noflush` script. Pure: no I/O.
//!
//! Everything lives in one chain of the `raw` table, [`CHAIN`], jumped to from `PREROUTING`
//! (traffic from other hosts and from containers) and `OUTPUT` (the host's own), so the
//! rules see a packet before conntrack and Docker's DNAT, with the published host port still
//! in it. Per published port of a container there is one rule, tagged with the container:
//!
//! - `gear-idle:<id>` holds the first SYN of a connection to an idle container: NFQUEUE with
//!   `--queue-bypass`, so when no idler listens the packet goes on (and meets a refusal)
//!   instead of being dropped;
//! - `gear-count:<id>` has no target: its packet counter is how the idler sees traffic to a
//!   running container with an idle policy.
//!
//! Only packets for local addresses match (`addrtype LOCAL`): a container of this host that
//! connects to the same port number on another host is not mistaken for a client.

use std::collections::BTreeMap;

use crate::container::ports::PortNumber;
use crate::id::ContainerId;

/// The idler's chain in the `raw` table.
pub const CHAIN: &str = "GEAR-IDLE";

/// The built-in chains that jump to [`CHAIN`].
pub const HOOKS: [&str; 2] = ["PREROUTING", "OUTPUT"];

/// The NFQUEUE number held SYNs wait in (gear-api's port number: easy to recognise).
pub const QUEUE: u16 = 43273;

/// What a rule is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Holds SYNs to an idle container in the queue.
    Hold,
    /// Counts packets to a running container.
    Count,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Hold => "gear-idle:",
            Kind::Count => "gear-count:",
        }
    }
}

/// One rule: its kind, its container and the published host port it watches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// Hold or count.
    pub kind: Kind,
    /// The container it belongs to (its tag).
    pub id: ContainerId,
    /// The host port.
    pub port: PortNumber,
}

impl Rule {
    /// The rule after `-A CHAIN `, spelt exactly as `iptables-save` prints it back, so that
    /// `-D` with the same text finds it.
    pub fn spec(&self) -> String {
        let m = format!(
            "-p tcp -m tcp --dport {}{} -m addrtype --dst-type LOCAL -m comment --comment \"{}{}\"",
            self.port,
            match self.kind {
                Kind::Hold => " --tcp-flags FIN,SYN,RST,ACK SYN",
                Kind::Count => "",
            },
            self.kind.tag(),
            self.id
        );
        match self.kind {
            Kind::Hold => format!("{m} -j NFQUEUE --queue-num {QUEUE} --queue-bypass"),
            Kind::Count => m,
        }
    }
}

/// What `iptables-save -t raw -c` says about the idler's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// [`CHAIN`] exists.
    pub chain: bool,
    /// The hooks that already jump to it.
    pub jumps: Vec<String>,
    /// The idler's rules, with their packet counters.
    pub rules: BTreeMap<Rule, u64>,
}

impl Listing {
    /// The packets counted for `id` so far (`None` if it has no counting rule).
    pub fn counted(&self, id: &ContainerId) -> Option<u64> {
        let mut counts = self
            .rules
            .iter()
            .filter(|(r, _)| r.kind == Kind::Count && &r.id == id)
            .map(|(_, n)| *n)
            .peekable();
        counts.peek()?;
        Some(counts.sum())
    }

    /// The rules of `id`.
    pub fn of<'a>(&'a self, id: &'a ContainerId) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.keys().filter(move |r| &r.id == id)
    }
}

/// Reads the output of `iptables-save -t raw [-c]`. Lines that are not the idler's are
/// skipped: the rest of the table belongs to others.
pub fn parse_save(text: &str) -> Listing {
    let mut listing = Listing::default();
    for line in text.lines() {
        if line.starts_with(&format!(":{CHAIN} ")) {
            listing.chain = true;
            continue;
        }
        // `[packets:bytes] -A ...` with -c, `-A ...` without.
        let (packets, rule) = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
            Some((counters, rest)) => (
                counters
                    .split(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
                rest,
            ),
            None => (0, line),
        };
        let Some(rest) = rule.strip_prefix("-A ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if HOOKS.contains(&words[0]) && words[1..] == ["-j", CHAIN] {
            listing.jumps.push(words[0].to_string());
        } else if words[0] == CHAIN
            && let Some(rule) = parse_rule(&words)
        {
            *listing.rules.entry(rule).or_default() += packets;
        }
    }
    listing
}

fn parse_rule(words: &[&str]) -> Option<Rule> {
    let after = |flag: &str| {
        let i = words.iter().position(|w| *w == flag)?;
        words.get(i + 1).map(|w| w.trim_matches('"'))
    };
    let comment = after("--comment")?;
    let port = after("--dport")?.parse().ok()?;
    let (kind, id) = if let Some(id) = comment.strip_prefix(Kind::Hold.tag()) {
        (Kind::Hold, id)
    } else {
        (Kind::Count, comment.strip_prefix(Kind::Count.tag())?)
    };
    Some(Rule {
        kind,
        id: id.parse().ok()?,
        port,
    })
}

/// The `iptables-restore --noflush` script that adds `add` and removes `remove`, given what
/// is there: rules already there are not added twice, missing ones not removed (a `-D` of
/// a missing rule would fail the whole script). The chain and its jumps are created with
/// the first rule. `None` when there is nothing to do.
pub fn plan(listing: &Listing, add: &[Rule], remove: &[Rule]) -> Option<String> {
    let mut lines = Vec::new();
    let adding: Vec<&Rule> = add
        .iter()
        .filter(|r| !listing.rules.contains_key(r))
        .collect();
    // Whenever rules are wanted, the chain and its jumps must be there too (someone may
    // have deleted a jump while our rules stayed).
    if !add.is_empty() {
        // Declared only when missing: with --noflush, declaring an existing chain flushes it.
        if !listing.chain {
            lines.push(format!(":{CHAIN} - [0:0]"));
        }
        for hook in HOOKS {
            if !listing.jumps.iter().any(|j| j == hook) {
                lines.push(format!("-I {hook} 1 -j {CHAIN}"));
            }
        }
    }
    for r in remove {
        if listing.rules.contains_key(r) && !add.contains(r) {
            lines.push(format!("-D {CHAIN} {}", r.spec()));
        }
    }
    for r in adding {
        lines.push(format!("-A {CHAIN} {}", r.spec()));
    }
    if lines.is_empty() {
        return None;
    }
    Some(format!("*raw\n{}\nCOMMIT\n", lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: Kind, id: &str, port: u16) -> Rule {
        Rule {
            kind,
            id: id.parse().unwrap(),
            port: port.try_into().unwrap(),
        }
    }

    /// What iptables-nft-save 1.8.9 printed in the test machine with both kinds installed.
    const SAVED: &str = r#"# Generated by iptables-nft-save v1.8.9 (nf_tables) on Sat Nov 28 22:50:01 2026
*raw
:PREROUTING ACCEPT [1043:91286]
:OUTPUT ACCEPT [977:88563]
:GEAR-IDLE - [0:0]
[12:1500] -A PREROUTING -j GEAR-IDLE
[40:2400] -A OUTPUT -j GEAR-IDLE
[0:0] -A PREROUTING -d 10.213.0.2/32 ! -i docker0 -j DROP
[3:180] -A GEAR-IDLE -p tcp -m tcp --dport 4000 --tcp-flags FIN,SYN,RST,ACK SYN -m addrtype --dst-type LOCAL -m comment --comment "gear-idle:web-1" -j NFQUEUE --queue-num 43273 --queue-bypass
[7:420] -A GEAR-IDLE -p tcp -m tcp --dport 4001 -m addrtype --dst-type LOCAL -m comment --comment "gear-count:we_b.2"
[5:300] -A GEAR-IDLE -p tcp -m tcp --dport 4002 -m addrtype --dst-type LOCAL -m comment --comment "gear-count:we_b.2"
[1:60] -A GEAR-IDLE -p tcp -m tcp --dport 9 -m comment --comment "someone else"
COMMIT
"#;

    #[test]
    fn parses_its_own_rules_and_counters_only() {
        let l = parse_save(SAVED);
        assert!(l.chain);
        assert_eq!(l.jumps, ["PREROUTING", "OUTPUT"]);
        assert_eq!(l.rules.len(), 3);
        assert_eq!(l.rules[&rule(Kind::Hold, "web-1", 4000)], 3);
        assert_eq!(l.counted(&"we_b.2".parse().unwrap()), Some(12));
        assert_eq!(l.counted(&"web-1".parse().unwrap()), None);
        assert_eq!(parse_save("*raw\nCOMMIT\n"), Listing::default());
    }

    #[test]
    fn rendered_rules_read_back_as_themselves() {
        for r in [
            rule(Kind::Hold, "my_app.1", 80),
            rule(Kind::Count, "web-1", 65535),
        ] {
            let line = format!("[0:0] -A {CHAIN} {}", r.spec());
            assert_eq!(parse_save(&line).rules.keys().collect::<Vec<_>>(), [&r]);
            assert!(SAVED.contains(&rule(Kind::Hold, "web-1", 4000).spec()));
        }
    }

    #[test]
    fn first_rule_creates_chain_and_jumps() {
        let script = plan(&Listing::default(), &[rule(Kind::Hold, "web-1", 4000)], &[]).unwrap();
        assert_eq!(
            script,
            "*raw\n:GEAR-IDLE - [0:0]\n-I PREROUTING 1 -j GEAR-IDLE\n-I OUTPUT 1 -j GEAR-IDLE\n\
             -A GEAR-IDLE -p tcp -m tcp --dport 4000 --tcp-flags FIN,SYN,RST,ACK SYN -m addrtype \
             --dst-type LOCAL -m comment --comment \"gear-idle:web-1\" -j NFQUEUE --queue-num 43273 \
             --queue-bypass\nCOMMIT\n"
        );
    }

    #[test]
    fn a_lost_jump_comes_back() {
        let mut l = parse_save(SAVED);
        l.jumps.retain(|j| j != "OUTPUT");
        let hold = rule(Kind::Hold, "web-1", 4000);
        assert_eq!(
            plan(&l, std::slice::from_ref(&hold), &[]).unwrap(),
            "*raw\n-I OUTPUT 1 -j GEAR-IDLE\nCOMMIT\n"
        );
    }

    #[test]
    fn plans_only_what_changes() {
        let l = parse_save(SAVED);
        let hold = rule(Kind::Hold, "web-1", 4000);
        let count = rule(Kind::Count, "web-1", 4000);
        // Already there, or already gone: nothing to do.
        assert_eq!(
            plan(
                &l,
                std::slice::from_ref(&hold),
                std::slice::from_ref(&count)
            ),
            None
        );
        let script = plan(
            &l,
            std::slice::from_ref(&count),
            std::slice::from_ref(&hold),
        )
        .unwrap();
        assert_eq!(
            script,
            format!(
                "*raw\n-D GEAR-IDLE {}\n-A GEAR-IDLE {}\nCOMMIT\n",
                hold.spec(),
                count.spec()
            )
        );
    }
}
