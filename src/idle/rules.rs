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

use crate::id::ContainerId;
use crate::port::PortNumber;

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

    /// Adds what another family's table says: counters add up, the chain and a jump count
    /// only if every family has them.
    pub fn merge(&mut self, other: Listing) {
        self.chain &= other.chain;
        self.jumps.retain(|j| other.jumps.contains(j));
        for (rule, packets) in other.rules {
            *self.rules.entry(rule).or_default() += packets;
        }
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
mod tests;
