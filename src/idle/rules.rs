//! The idler's iptables rules, as data: rendering, parsing `iptables-save -c`, and planning
//! one `iptables-restore --noflush` script. Pure: no I/O.
//!
//! Everything lives in one chain of the `security` table, [`CHAIN`]. That table runs after
//! the `filter` table and after firewalld's (nftables, filter priority + 10), and after
//! routing and its reverse-path filter, so the rules only see packets the host's firewall
//! let through. It is jumped to from `INPUT` (connections to the host: a stopped container's
//! port, docker-proxy), and from `FORWARD` and `OUTPUT` for connections Docker's DNAT sent on
//! to a container (from other hosts, and the host's own to its non-loopback addresses).
//! DNAT has already changed the destination there, so a rule matches the *original*
//! destination port, the published host port, in the connection's conntrack entry. Per
//! published port of a container there is one rule, tagged with the container:
//!
//! - `gear-idle:<id>` holds the first SYN of a connection to an idle container: NFQUEUE with
//!   `--queue-bypass`, so when no idler listens the packet goes on (and meets a refusal)
//!   instead of being dropped;
//! - `gear-count:<id>` has no target: its packet counter is how the idler sees traffic to a
//!   running container with an idle policy.
//!
//! Only the original direction of a connection counts (`--ctdir ORIGINAL`), and only
//! connections *to* this host jump to the chain (INPUT, or DNAT), so a container of this
//! host, or the host itself, connecting to the same port number on another host is not
//! mistaken for a client.

use std::collections::BTreeMap;

use crate::id::ContainerId;
use crate::port::PortNumber;

/// The table the idler's rules are in.
pub const TABLE: &str = "security";

/// The idler's chain in [`TABLE`].
pub const CHAIN: &str = "GEAR-IDLE";

/// Only connections that Docker's DNAT sent on jump from `FORWARD` and `OUTPUT`.
const DNAT: &str = "-m conntrack --ctstate DNAT";

/// The built-in chains that jump to [`CHAIN`], each with the match before its `-j`.
pub const HOOKS: [(&str, &str); 3] = [("INPUT", ""), ("FORWARD", DNAT), ("OUTPUT", DNAT)];

/// Where the idler's rules were before they moved to [`TABLE`]: the `raw` table, jumped to
/// from these chains. [`retire_raw`] takes them away.
pub const RAW_HOOKS: [&str; 2] = ["PREROUTING", "OUTPUT"];

/// A hook's jump, as `iptables-save` prints it after `-A HOOK `.
fn jump(condition: &str) -> String {
    if condition.is_empty() {
        format!("-j {CHAIN}")
    } else {
        format!("{condition} -j {CHAIN}")
    }
}

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
            "-p tcp -m conntrack --ctorigdstport {} --ctdir ORIGINAL{} -m comment --comment \"{}{}\"",
            self.port,
            match self.kind {
                Kind::Hold => " -m tcp --tcp-flags FIN,SYN,RST,ACK SYN",
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

/// What `iptables-save -t security -c` says about the idler's rules.
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

/// Reads the output of `iptables-save -t security [-c]`. Lines that are not the idler's are
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
        if HOOKS
            .iter()
            .any(|(hook, cond)| *hook == words[0] && words[1..].join(" ") == jump(cond))
        {
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
    let port = after("--ctorigdstport")?.parse().ok()?;
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
        for (hook, cond) in HOOKS {
            if !listing.jumps.iter().any(|j| j == hook) {
                lines.push(format!("-I {hook} 1 {}", jump(cond)));
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
    Some(format!("*{TABLE}\n{}\nCOMMIT\n", lines.join("\n")))
}

/// The script that takes the idler's chain out of the `raw` table, where it was before,
/// given `iptables-save -t raw`; `None` when it is not there. Left there, its hold rules
/// would still wake containers for packets the firewall drops.
pub fn retire_raw(saved: &str) -> Option<String> {
    if !saved.lines().any(|l| l.starts_with(&format!(":{CHAIN} "))) {
        return None;
    }
    let mut lines: Vec<String> = RAW_HOOKS
        .iter()
        .filter(|hook| {
            saved.lines().any(|l| {
                let l = l.split_once("] ").map_or(l, |(_, rest)| rest);
                l == format!("-A {hook} -j {CHAIN}")
            })
        })
        .map(|hook| format!("-D {hook} -j {CHAIN}"))
        .collect();
    lines.push(format!("-F {CHAIN}"));
    lines.push(format!("-X {CHAIN}"));
    Some(format!("*raw\n{}\nCOMMIT\n", lines.join("\n")))
}

#[cfg(test)]
mod tests;
