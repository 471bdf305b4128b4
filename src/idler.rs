//! `gear-idler`'s loop: every tick it reconciles the firewall with the marks and policies
//! on disk and idles containers that have been quiet long enough; every held SYN wakes the
//! container that publishes its port, and is let go once that container answers.
//!
//! One task owns all state; idling and waking run in tasks of their own (each under the
//! container's lock) and report back as [`Event`]s, so held packets are released exactly
//! once, all together, when their container's wake ends.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::container::host::{Host, Parts};
use crate::container::idling::{Woken, hold_rules, running_rules};
use crate::container::lock::Lock;
use crate::container::ports::{PortNumber, PortRange, Ports};
use crate::container::spec::ContainerSpec;
use crate::container::spec::cache::SpecCache;
use crate::container::unit::docker_name;
use crate::docker::Docker;
use crate::id::{ContainerId, UNIT_PATTERN};
use crate::idle::connections::{self, ProcNet, SocketTables};
use crate::idle::firewall;
use crate::idle::policy::{self, Tracker};
use crate::idle::queue::{Held, PacketQueue};
use crate::idle::wakes::{WakeBudget, WakeLimits};
use crate::idle::{IdleMode, marked, unmark};
use crate::systemd::{Systemd, notify};

/// How the idler runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often traffic is measured and rules reconciled.
    pub tick: Duration,
    /// How long a wake may take before held packets are let go anyway.
    pub wake_timeout: Duration,
    /// After a failed wake, connections are refused at once for this long (no start storm).
    pub retry_after: Duration,
    /// How many wakes connections may cause, per source and overall.
    pub wakes: WakeLimits,
}

/// What an idle or wake task reports.
#[derive(Debug)]
pub enum Event {
    /// A wake ended (the error is already formatted for the journal).
    Woken {
        /// The container.
        id: ContainerId,
        /// How it ended.
        outcome: Result<Woken, String>,
        /// When its first packet came.
        since: Instant,
    },
    /// An idle ended.
    Idled {
        /// The container.
        id: ContainerId,
        /// `None` when it was idled, else why not.
        error: Option<String>,
    },
}

/// The idler's state.
#[derive(Debug)]
pub struct Idler<P: Parts> {
    host: Arc<Host<P>>,
    opts: Options,
    tracker: Tracker,
    /// Containers being woken, with the packets waiting for them.
    waking: HashMap<ContainerId, Vec<u64>>,
    /// Containers being idled.
    busy: HashSet<ContainerId>,
    /// When a container last failed to wake.
    failed: HashMap<ContainerId, Instant>,
    /// The wakes connections caused lately.
    budget: WakeBudget,
    /// Until when a refused wake is not said again in the journal.
    quiet_until: Option<Instant>,
    /// Where open connections to a container are seen.
    sockets: Box<dyn SocketTables>,
    /// Frozen idle containers by (bridge address, internal port), as of the last tick: a
    /// SYN Docker's DNAT already sent on carries these, not the published port.
    frozen: HashMap<(IpAddr, u16), ContainerId>,
    /// Such SYNs found in no map yet, with when they came and whether a tick has looked
    /// since: a container frozen since the last tick is in the next one's map; a stopped
    /// container being woken has DNAT rules before it listens, so SYNs for it can come
    /// this way too, and wait until no wake is under way.
    unresolved: Vec<(Held, Instant, bool)>,
    events: UnboundedSender<Event>,
    /// The specs a tick looks at, read again only when they change.
    specs: SpecCache,
}

impl<P: Parts> Idler<P> {
    /// An idler, and the receiver of its tasks' events.
    pub fn new(host: Arc<Host<P>>, opts: Options) -> (Idler<P>, UnboundedReceiver<Event>) {
        let (events, rx) = unbounded_channel();
        let wakes = opts.wakes;
        let idler = Idler {
            host,
            opts,
            tracker: Tracker::new(),
            waking: HashMap::new(),
            busy: HashSet::new(),
            failed: HashMap::new(),
            budget: WakeBudget::new(wakes),
            quiet_until: None,
            sockets: Box::new(ProcNet),
            frozen: HashMap::new(),
            unresolved: Vec::new(),
            events,
            specs: SpecCache::default(),
        };
        (idler, rx)
    }

    /// The same idler, seeing open connections through `sockets`.
    pub fn with_sockets(mut self, sockets: impl SocketTables) -> Idler<P> {
        self.sockets = Box::new(sockets);
        self
    }

    /// How many connections to the services of `spec` are open: established TCP
    /// connections in its container's network namespace whose local port is one of its
    /// internal ports. A container Docker does not run has none.
    async fn open_connections(&self, spec: &ContainerSpec) -> anyhow::Result<usize> {
        let info = self.host.docker.inspect(&docker_name(&spec.id)).await?;
        let Some(pid) = info.filter(|c| c.running && c.pid > 0).map(|c| c.pid) else {
            return Ok(0);
        };
        let ports = spec.ports_in_use().map(|p| p.internal.get()).collect();
        Ok(connections::open_to(&self.sockets.tables(pid)?, &ports))
    }

    /// A held SYN: let it go unless it is for an idle container, which it then wakes.
    pub fn packet(&mut self, held: Held, queue: &impl PacketQueue) {
        let owner = if held.translated {
            let found = held
                .dest
                .and_then(|dest| self.frozen.get(&(dest, held.port)).cloned());
            if found.is_none() {
                // Frozen since the last tick, or for a container being woken: kept.
                return self.unresolved.push((held, Instant::now(), false));
            }
            found
        } else {
            PortNumber::try_from(held.port)
                .ok()
                .and_then(|port| self.owner(port))
                .map(|(id, _internal)| id)
        };
        self.wake_for(owner, held, queue);
    }

    /// Looks up again the SYNs [`Idler::packet`] could not place (`ticked`: a tick has
    /// just made the map). One still unknown goes on once a tick has looked and no wake
    /// is under way, or after `--wake-timeout`.
    pub fn retry_unresolved(&mut self, queue: &impl PacketQueue, ticked: bool) {
        for (held, since, looked) in std::mem::take(&mut self.unresolved) {
            let looked = looked || ticked;
            let owner = held
                .dest
                .and_then(|dest| self.frozen.get(&(dest, held.port)).cloned());
            let waiting =
                !looked || (!self.waking.is_empty() && since.elapsed() < self.opts.wake_timeout);
            if owner.is_none() && waiting {
                self.unresolved.push((held, since, looked));
            } else {
                self.wake_for(owner, held, queue);
            }
        }
    }

    /// Wakes `owner` for `held`, or lets `held` go.
    fn wake_for(&mut self, owner: Option<ContainerId>, held: Held, queue: &impl PacketQueue) {
        let Some(id) = owner else {
            // Not a gear port (a stale rule; the next tick removes it).
            return queue.release(vec![held.token]);
        };
        if let Some(waiting) = self.waking.get_mut(&id) {
            return waiting.push(held.token);
        }
        let idle = matches!(marked(&self.host.paths, &id), Ok(Some(_)));
        let recently_failed = self
            .failed
            .get(&id)
            .is_some_and(|t| t.elapsed() < self.opts.retry_after);
        if !idle || recently_failed {
            return queue.release(vec![held.token]);
        }
        // A scan over many ports, or a flood from many (spoofed) addresses, must not start
        // every idle container: past the budget the SYN goes on to a refusal.
        let now = Instant::now();
        if let Err(why) = self.budget.spend(held.source, now) {
            if self.quiet_until.is_none_or(|t| now >= t) {
                log::warn!(
                    "not waking {id} for a connection to port {}: {why}; refused (said at most once per {:?})",
                    held.port,
                    self.opts.wakes.window
                );
                self.quiet_until = Some(now + self.opts.wakes.window);
            }
            return queue.release(vec![held.token]);
        }
        log::info!("waking {id}: connection to port {}", held.port);
        self.waking.insert(id.clone(), vec![held.token]);
        let (host, events, timeout) = (
            self.host.clone(),
            self.events.clone(),
            self.opts.wake_timeout,
        );
        tokio::spawn(async move {
            let since = Instant::now();
            let lock = match host.lock(&id).await {
                Ok(lock) => lock,
                Err(e) => {
                    let outcome = Err(format!("{e:#}"));
                    let _ = events.send(Event::Woken { id, outcome, since });
                    return;
                }
            };
            // Every published port must answer before held connections go, not only the
            // one this SYN was for: a client may use several.
            let outcome = match host.spec(&id) {
                Ok(spec) => host.wake(&lock, &spec.ports, timeout).await,
                Err(e) => Err(e),
            }
            .map_err(|e| format!("{e:#}"));
            let woke = matches!(outcome, Ok(Woken::Ready | Woken::NotReady));
            // Packets go first; the rules change after, still under the lock.
            let _ = events.send(Event::Woken { id, outcome, since });
            if woke && let Err(e) = host.after_wake(&lock).await {
                log::warn!("{}: updating rules after the wake: {e:#}", lock.id());
            }
        });
    }

    /// The frozen idle containers among `ids`, by (bridge address, internal port).
    async fn frozen_addresses(
        &self,
        ids: &BTreeSet<ContainerId>,
    ) -> HashMap<(IpAddr, u16), ContainerId> {
        let mut frozen = HashMap::new();
        for id in ids {
            if !matches!(marked(&self.host.paths, id), Ok(Some(IdleMode::Freeze))) {
                continue;
            }
            let (Ok(spec), Ok(Some(info))) = (
                self.host.spec(id),
                self.host.docker.inspect(&docker_name(id)).await,
            ) else {
                continue;
            };
            if let Some(ip) = info.ip {
                for p in spec.ports_in_use() {
                    frozen.insert((ip, p.internal.get()), id.clone());
                }
            }
        }
        frozen
    }

    /// Who publishes `port`.
    fn owner(&self, port: PortNumber) -> Option<(ContainerId, PortNumber)> {
        match Ports::new(&self.host.paths, PortRange::default()).owner(port) {
            Ok(owner) => owner,
            Err(e) => {
                log::warn!("looking up port {port}: {e:#}");
                None
            }
        }
    }

    /// A task's report.
    pub fn event(&mut self, event: Event, queue: &impl PacketQueue) {
        match event {
            Event::Woken { id, outcome, since } => {
                let waiting = self.waking.remove(&id).unwrap_or_default();
                let (n, ms) = (waiting.len(), since.elapsed().as_millis());
                queue.release(waiting);
                self.tracker.forget(&id);
                match outcome {
                    Ok(Woken::Ready) => log::info!("woke {id} in {ms} ms; {n} held SYN(s) let go"),
                    Ok(Woken::NotReady) => log::warn!(
                        "woke {id}, but its port did not answer within {:?}; {n} held SYN(s) let go",
                        self.opts.wake_timeout
                    ),
                    Ok(Woken::WasAwake) => log::info!("{id} was no longer idle; {n} SYN(s) let go"),
                    Err(e) => {
                        log::error!(
                            "waking {id} failed: {e}; {n} connection(s) refused; it stays idle, the next try after {:?}",
                            self.opts.retry_after
                        );
                        self.failed.insert(id, Instant::now());
                    }
                }
                // SYNs that came through the DNAT rules of a container being woken.
                self.retry_unresolved(queue, false);
            }
            Event::Idled { id, error } => {
                self.busy.remove(&id);
                self.tracker.forget(&id);
                if let Some(e) = error {
                    log::warn!("idling {id}: {e}");
                }
            }
        }
    }

    /// Lets every waiting packet go (on the way out).
    pub fn release_all(&mut self, queue: &impl PacketQueue) {
        queue.release(self.unresolved.drain(..).map(|(h, _, _)| h.token).collect());
        for (_, waiting) in self.waking.drain() {
            queue.release(waiting);
        }
    }

    /// One look at every container at `now`: rules made to match the marks and policies,
    /// quiet containers idled. Returns (idle, watched) counts.
    ///
    /// Each container is looked at under its lock, taken before its state is read and kept
    /// until its rules are written, so a `gear idle`, `stop` or `delete` that `gear-api`
    /// finishes meanwhile is never undone by rules computed from the state before it. A
    /// container whose lock is taken is left for the next tick.
    pub async fn tick(&mut self, now: Instant) -> anyhow::Result<(usize, usize)> {
        let host = self.host.clone();
        let listing = firewall::listing(&self.host.firewall).await?;
        let installed: BTreeSet<ContainerId> =
            host.installed.get(&host.paths)?.iter().cloned().collect();
        self.frozen = self.frozen_addresses(&installed).await;
        // Containers gone while the idler was away still have rules to remove.
        let with_rules: BTreeSet<ContainerId> =
            listing.rules.keys().map(|r| r.id.clone()).collect();
        let mut candidates = BTreeSet::new();
        for id in installed.iter().chain(&with_rules) {
            if self.waking.contains_key(id) || self.busy.contains(id) {
                continue;
            }
            // No rules, no idle mark, no idle policy (most containers): nothing to do, so
            // neither its lock nor its state is needed.
            let mut idles = || {
                marked(&host.paths, id).map_or(true, |m| m.is_some())
                    || self
                        .specs
                        .get(&host.paths, id)
                        .map_or(true, |s| s.idle.is_some())
            };
            if with_rules.contains(id) || !installed.contains(id) || idles() {
                candidates.insert(id.clone());
            }
        }
        self.specs.retain(|id| installed.contains(id));
        let mut locks = HashMap::new();
        for id in candidates {
            if let Some(lock) = host.try_lock(&id)? {
                locks.insert(id, lock);
            }
        }
        // Read after the locks: no one can change these containers now.
        let active: HashSet<String> = host
            .systemd
            .list_units(UNIT_PATTERN)
            .await?
            .into_iter()
            .filter(|u| u.active_state == "active")
            .map(|u| u.name)
            .collect();
        let (mut want, mut scope) = (Vec::new(), BTreeSet::new());
        let (mut idle, mut watched) = (0, 0);
        let ids: Vec<ContainerId> = locks.keys().cloned().collect();
        for id in ids {
            let spec = match installed.contains(&id) {
                true => self.specs.get(&host.paths, &id).ok(),
                false => None,
            };
            let Some(spec) = spec else {
                scope.insert(id); // not (or no longer) installed: no rules
                continue;
            };
            let running = active.contains(&id.unit_name());
            match marked(&host.paths, &id)? {
                // Started by hand (systemctl start): running wins.
                Some(IdleMode::Stop) if running => {
                    log::info!("{id} runs although marked idle; it is no longer idle");
                    // Wanted at boot again too: a wake that crashed after its start.
                    host.want_at_boot(&id).await?;
                    unmark(&host.paths, &id)?;
                }
                Some(_) => {
                    idle += 1;
                    scope.insert(id);
                    want.extend(hold_rules(&spec));
                    continue;
                }
                None => {}
            }
            let Some(policy) = spec.idle.filter(|_| running) else {
                self.tracker.forget(&id);
                scope.insert(id);
                continue;
            };
            watched += 1;
            let quiet = self.tracker.observe(&id, listing.counted(&id), now);
            // Quiet, but a client that holds a connection open would have it cut.
            if policy::due(quiet, policy.after.get()) && !self.connected(&spec, now).await {
                // Its lock goes to the idle task, which then owns its rules.
                let lock = locks.remove(&id).expect("locked above");
                self.start_idle(lock, policy.mode, quiet);
                continue;
            }
            scope.insert(id);
            want.extend(running_rules(&spec));
        }
        self.tracker
            .retain(|id| scope.contains(id) || self.busy.contains(id));
        firewall::sync(&self.host.firewall, Some(&scope), &want).await?;
        drop(locks);
        Ok((idle, watched))
    }

    /// Whether a client holds a connection to `spec`'s container open; if so (or if that
    /// cannot be known) its quiet time starts again at `now`.
    async fn connected(&mut self, spec: &ContainerSpec, now: Instant) -> bool {
        let id = &spec.id;
        let open = match self.open_connections(spec).await {
            Ok(0) => return false,
            Ok(n) => format!("{n} connection(s) open"),
            // Never cut a connection that could not be seen.
            Err(e) => format!("its connections cannot be read ({e:#})"),
        };
        log::info!("{id} is quiet, but {open}: not idled");
        self.tracker.touch(id, now);
        true
    }

    fn start_idle(&mut self, lock: Lock, mode: IdleMode, quiet: Duration) {
        let id = lock.id().clone();
        self.busy.insert(id.clone());
        let (host, events) = (self.host.clone(), self.events.clone());
        tokio::spawn(async move {
            let error = match host.idle_locked(&lock, mode).await {
                Ok(()) => {
                    log::info!(
                        "idled {id} ({mode}) after {} s without traffic",
                        quiet.as_secs()
                    );
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
            drop(lock);
            let _ = events.send(Event::Idled { id, error });
        });
    }
}

/// Runs the idler until `shutdown` completes: reconciles once, reports READY, then serves.
pub async fn run<P: Parts, Q: PacketQueue>(
    host: Arc<Host<P>>,
    mut queue: Q,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let tick = opts.tick;
    firewall::retire_raw(&host.firewall).await?;
    // Health checks in a task of their own: a slow check must not delay a held SYN.
    let checks = tokio::spawn(check_health(host.clone(), tick));
    let (mut idler, mut events) = Idler::new(host, opts);
    // Hold rules first, so idle containers wake from the moment systemd calls us ready.
    let (idle, watched) = idler.tick(Instant::now()).await?;
    notify::ready(&format!("{idle} idle, {watched} watched"));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            held = queue.next() => match held {
                Some(held) => idler.packet(held, &queue),
                None => break Err(anyhow::anyhow!("the packet queue closed")),
            },
            Some(event) = events.recv() => idler.event(event, &queue),
            _ = interval.tick() => match idler.tick(Instant::now()).await {
                Ok((idle, watched)) => {
                    idler.retry_unresolved(&queue, true);
                    notify::status(&format!("{idle} idle, {watched} watched"));
                }
                Err(e) => {
                    idler.retry_unresolved(&queue, true);
                    log::warn!("reconciling: {e:#}");
                }
            },
            () = &mut shutdown => break Ok(()),
        }
    };
    notify::stopping("letting held connections go");
    idler.release_all(&queue);
    queue.drain().await;
    checks.abort();
    result
}

/// Runs the containers' health checks every `tick` (each container at its own interval)
/// and restarts those that failed too many in a row, each in a task of its own.
async fn check_health<P: Parts>(host: Arc<Host<P>>, tick: Duration) {
    let mut checker = crate::container::health::Checker::default();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let failing = match checker.round(&host, tokio::time::Instant::now()).await {
            Ok(failing) => failing,
            Err(e) => {
                log::warn!("health checks: {e:#}");
                continue;
            }
        };
        for f in failing.into_iter().filter(|f| f.restart) {
            let host = host.clone();
            tokio::spawn(async move {
                if let Err(e) = host.restart(&f.id).await {
                    log::warn!("{}: restarting after failed health checks: {e:#}", f.id);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
