//! A firewall in memory: tables per namespace and family that understand the lines gear's restore
//! scripts use (`:CHAIN` declares and flushes a chain, `-A`, `-I HOOK 1`, `-D`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::{Family, Firewall, Namespace};

/// One table: its user chains and its rules with packet counters.
#[derive(Debug, Default, Clone)]
pub struct Table {
    /// Declared user chains.
    pub chains: BTreeSet<String>,
    /// `(packets, "-A CHAIN ...")`, in order.
    pub lines: Vec<(u64, String)>,
}

/// The recording fake.
#[derive(Debug, Default)]
pub struct FakeFirewall {
    /// Tables by namespace and name.
    pub tables: Mutex<BTreeMap<(String, String), Table>>,
    /// Every restore script applied, with its namespace and family.
    pub scripts: Mutex<Vec<(Namespace, Family, String)>>,
    /// A host without IPv6 (`has(V6)` is false).
    pub no_ipv6: bool,
    /// Namespaces where `route_localnet` was turned on.
    pub localnet: Mutex<Vec<Namespace>>,
}

fn key(ns: Namespace, family: Family, table: &str) -> (String, String) {
    (format!("{ns:?} {family:?}"), table.to_string())
}

impl FakeFirewall {
    /// Adds `n` packets to every rule of the host's IPv4 `security` table whose text contains
    /// `needle`.
    pub fn count(&self, needle: &str, n: u64) {
        self.count_in(Family::V4, needle, n)
    }

    /// Adds `n` packets to every rule of the host's `security` table of `family` whose text
    /// contains `needle`.
    pub fn count_in(&self, family: Family, needle: &str, n: u64) {
        let mut tables = self.tables.lock().unwrap();
        let raw = tables
            .entry(key(Namespace::Host, family, "security"))
            .or_default();
        for (p, line) in raw.lines.iter_mut() {
            if line.contains(needle) {
                *p += n;
            }
        }
    }

    /// The rule lines of an IPv4 table, without counters.
    pub fn lines_of(&self, ns: Namespace, table: &str) -> Vec<String> {
        self.lines_in(ns, Family::V4, table)
    }

    /// The rule lines of a table of `family`, without counters.
    pub fn lines_in(&self, ns: Namespace, family: Family, table: &str) -> Vec<String> {
        let tables = self.tables.lock().unwrap();
        tables
            .get(&key(ns, family, table))
            .map(|t| t.lines.iter().map(|(_, l)| l.clone()).collect())
            .unwrap_or_default()
    }

    /// The rule lines of the host's IPv4 `security` table (the idler's).
    pub fn rule_lines(&self) -> Vec<String> {
        self.lines_of(Namespace::Host, "security")
    }

    /// The rule lines of the host's IPv6 `security` table.
    pub fn rule_lines_v6(&self) -> Vec<String> {
        self.lines_in(Namespace::Host, Family::V6, "security")
    }

    /// The IPv4 restore scripts applied in the host's namespace.
    pub fn host_scripts(&self) -> Vec<String> {
        let scripts = self.scripts.lock().unwrap();
        scripts
            .iter()
            .filter(|(ns, f, _)| *ns == Namespace::Host && *f == Family::V4)
            .map(|(_, _, s)| s.clone())
            .collect()
    }
}

impl Firewall for FakeFirewall {
    fn has(&self, family: Family) -> bool {
        family == Family::V4 || !self.no_ipv6
    }

    async fn save(&self, ns: Namespace, family: Family, table: &str) -> anyhow::Result<String> {
        anyhow::ensure!(self.has(family), "no {family} on this host");
        let tables = self.tables.lock().unwrap();
        let mut out = format!("*{table}\n");
        if let Some(t) = tables.get(&key(ns, family, table)) {
            for chain in &t.chains {
                out.push_str(&format!(":{chain} - [0:0]\n"));
            }
            for (p, line) in &t.lines {
                out.push_str(&format!("[{p}:{}] {line}\n", p * 60));
            }
        }
        Ok(out + "COMMIT\n")
    }

    async fn restore(&self, ns: Namespace, family: Family, script: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.has(family), "no {family} on this host");
        self.scripts
            .lock()
            .unwrap()
            .push((ns, family, script.to_string()));
        let mut tables = self.tables.lock().unwrap();
        // All or nothing: work on copies, store them at the end.
        let mut work: BTreeMap<String, Table> = BTreeMap::new();
        let mut table = String::new();
        for l in script.lines() {
            if let Some(name) = l.strip_prefix('*') {
                table = name.to_string();
                let current = tables
                    .get(&key(ns, family, name))
                    .cloned()
                    .unwrap_or_default();
                work.entry(table.clone()).or_insert(current);
                continue;
            }
            let t = work
                .get_mut(&table)
                .ok_or_else(|| anyhow::anyhow!("a rule before any *table line: {l}"))?;
            if let Some(decl) = l.strip_prefix(':') {
                let chain = decl.split(' ').next().unwrap_or_default().to_string();
                let prefix = format!("-A {chain} ");
                t.lines.retain(|(_, x)| !x.starts_with(&prefix));
                t.chains.insert(chain);
            } else if let Some(rest) = l.strip_prefix("-D ") {
                let want = format!("-A {rest}");
                let i = t
                    .lines
                    .iter()
                    .position(|(_, x)| *x == want)
                    .ok_or_else(|| anyhow::anyhow!("no such rule: {rest}"))?;
                t.lines.remove(i);
            } else if let Some(rest) = l.strip_prefix("-I ") {
                let (hook, target) = rest
                    .split_once(" 1 ")
                    .ok_or_else(|| anyhow::anyhow!("unexpected insert: {l}"))?;
                t.lines.insert(0, (0, format!("-A {hook} {target}")));
            } else if l.starts_with("-A ") {
                t.lines.push((0, l.to_string()));
            }
        }
        for (name, t) in work {
            tables.insert(key(ns, family, &name), t);
        }
        Ok(())
    }

    async fn allow_route_localnet(&self, ns: Namespace) -> anyhow::Result<()> {
        self.localnet.lock().unwrap().push(ns);
        Ok(())
    }
}
