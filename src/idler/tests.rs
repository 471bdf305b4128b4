//! The idler's decisions against fake systemd, Docker, firewall and queue, with a given clock.

use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::ContainerInfo;
use crate::docker::fake::FakeDocker;
use crate::idle::queue::fake::FakeQueue;
use crate::idle::rules::Kind;

type TestIdler = Idler<Fake>;

struct Bed {
    idler: TestIdler,
    events: UnboundedReceiver<Event>,
    queue: FakeQueue,
    host: Arc<Host<Fake>>,
    external: u16,
    _app: tokio::net::TcpListener,
}

/// `web-1`, running, idle after 5 s, its internal port really listening on 127.0.0.1.
async fn bed(dir: &Path) -> Bed {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    docker.containers.lock().unwrap().insert(
        "ctr-web-1".into(),
        ContainerInfo {
            running: true,
            paused: false,
            ip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
    let host = Arc::new(fake_host(dir, docker));
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal = app.local_addr().unwrap().port();
    let body = format!(
        r#"{{"Image":"img","Started":true,"Ports":[{{"Internal":{internal}}}],"Idle":{{"After":"5s"}}}}"#
    );
    let id: ContainerId = "web-1".parse().unwrap();
    let done = host
        .install(&id, serde_json::from_str(&body).unwrap(), None)
        .await
        .unwrap();
    let opts = Options {
        tick: Duration::from_secs(1),
        wake_timeout: Duration::from_secs(5),
        retry_after: Duration::from_secs(60),
        wakes: WakeLimits::default(),
    };
    let (idler, events) = Idler::new(host.clone(), opts);
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let queue = FakeQueue {
        rx,
        released: Arc::new(Mutex::new(Vec::new())),
    };
    Bed {
        idler,
        events,
        queue,
        host,
        external: done.ports[0].external.get(),
        _app: app,
    }
}

impl Bed {
    async fn next_event(&mut self) {
        let e = self.events.recv().await.unwrap();
        self.idler.event(e, &self.queue);
    }

    fn released(&self) -> Vec<u64> {
        self.queue.released.lock().unwrap().clone()
    }

    fn held(&self, token: u64) -> Held {
        Held {
            token,
            port: self.external,
            source: None,
            dest: None,
            translated: false,
        }
    }

    fn held_from(&self, token: u64, source: &str) -> Held {
        Held {
            source: Some(source.parse().unwrap()),
            ..self.held(token)
        }
    }

    fn kinds(&self) -> Vec<String> {
        self.host.firewall.rule_lines()
    }
}

fn id() -> ContainerId {
    "web-1".parse().unwrap()
}

#[tokio::test]
async fn a_quiet_container_is_idled_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // First look: the counting rule appears.
    assert_eq!(b.idler.tick(at(0)).await.unwrap(), (0, 1));
    assert!(b.kinds().iter().any(|l| l.contains("gear-count:web-1")));
    b.idler.tick(at(1)).await.unwrap();
    // Traffic at 4 s keeps it up past 6 s.
    b.host.firewall.count("gear-count:web-1", 3);
    b.idler.tick(at(4)).await.unwrap();
    b.idler.tick(at(8)).await.unwrap();
    assert!(b.idler.busy.is_empty());
    assert_eq!(b.host.systemd.active_state("ctr-web-1.service"), "active");
    // Quiet from 4 s: idled at 9 s.
    b.idler.tick(at(9)).await.unwrap();
    assert!(b.idler.busy.contains(&id()));
    b.next_event().await;
    assert_eq!(b.host.systemd.active_state("ctr-web-1.service"), "inactive");
    assert_eq!(marked(&b.host.paths, &id()).unwrap(), Some(IdleMode::Stop));
    assert_eq!(b.idler.tick(at(10)).await.unwrap(), (1, 0));
    let lines = b.kinds();
    assert!(
        lines.iter().any(|l| l.contains("gear-idle:web-1")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("gear-count:web-1")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn first_syns_wake_it_and_all_go_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let lock = b.host.lock(&id()).await.unwrap();
    b.host.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    drop(lock);
    for token in 1..=3 {
        b.idler.packet(b.held(token), &b.queue);
    }
    assert!(b.released().is_empty(), "held until it answers");
    b.next_event().await;
    assert_eq!(b.released(), [1, 2, 3]);
    assert_eq!(b.host.systemd.active_state("ctr-web-1.service"), "active");
    assert_eq!(marked(&b.host.paths, &id()).unwrap(), None);
    // Once awake, SYNs go at once.
    b.idler.packet(b.held(4), &b.queue);
    assert_eq!(b.released(), [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_failed_wake_refuses_and_does_not_retry_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let lock = b.host.lock(&id()).await.unwrap();
    b.host.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    drop(lock);
    b.host
        .systemd
        .failing
        .lock()
        .unwrap()
        .push("ctr-web-1.service".into());
    b.idler.packet(b.held(1), &b.queue);
    b.next_event().await;
    assert_eq!(b.released(), [1]);
    assert_eq!(marked(&b.host.paths, &id()).unwrap(), Some(IdleMode::Stop));
    let starts = |b: &Bed| {
        let calls = b.host.systemd.calls.lock().unwrap();
        calls.iter().filter(|c| c.starts_with("start")).count()
    };
    let before = starts(&b);
    b.idler.packet(b.held(2), &b.queue);
    assert_eq!(b.released(), [1, 2]);
    assert_eq!(starts(&b), before, "no new start within retry_after");
}

#[tokio::test]
async fn other_ports_and_stopped_containers_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let other = Held {
        token: 7,
        port: 9,
        source: None,
        dest: None,
        translated: false,
    };
    b.idler.packet(other, &b.queue);
    // A stopped (not idle) container: its SYN goes on to a refusal, no start.
    b.host.stop(&id()).await.unwrap();
    b.idler.packet(b.held(8), &b.queue);
    assert_eq!(b.released(), [7, 8]);
    // Deleted: its rules go at the next look.
    b.idler.tick(Instant::now()).await.unwrap();
    b.host.delete(&id(), false).await.unwrap();
    crate::idle::firewall::sync_one(
        &b.host.firewall,
        &id(),
        &[crate::idle::rules::Rule {
            kind: Kind::Hold,
            id: id(),
            port: b.external.try_into().unwrap(),
        }],
    )
    .await
    .unwrap();
    b.idler.tick(Instant::now()).await.unwrap();
    assert!(!b.kinds().iter().any(|l| l.contains("web-1")));
}

#[tokio::test]
async fn an_open_connection_keeps_a_quiet_container_up() {
    use crate::idle::connections::fake::FakeTables;
    let dir = tempfile::tempdir().unwrap();
    let b = bed(dir.path()).await;
    let internal = b.host.spec(&id()).unwrap().ports[0].internal.get();
    b.host
        .docker
        .containers
        .lock()
        .unwrap()
        .get_mut("ctr-web-1")
        .unwrap()
        .pid = 4242;
    // One client connected to the internal port (from 10.213.0.1), no packet counted.
    let open = format!(
        "  sl  local_address rem_address   st\n   0: 0200D50A:{internal:04X} 0100D50A:B2C4 01 0\n"
    );
    let tables = FakeTables::default();
    tables.by_pid.lock().unwrap().insert(4242, vec![open]);
    let (idler, events) = Idler::new(b.host.clone(), b.idler.opts.clone());
    let mut b = Bed {
        idler: idler.with_sockets(tables),
        events,
        ..b
    };
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    b.idler.tick(at(0)).await.unwrap();
    b.idler.tick(at(5)).await.unwrap();
    b.idler.tick(at(11)).await.unwrap();
    assert!(b.idler.busy.is_empty(), "not idled while connected");
    assert_eq!(b.host.systemd.active_state("ctr-web-1.service"), "active");
    // The client goes (its socket closes): quiet for 5 s more, then idled. (The counting
    // rule appeared at 5 s; at 11 s it was due, but connected.)
    let sockets = FakeTables::default();
    sockets.by_pid.lock().unwrap().insert(4242, vec![]);
    b.idler.sockets = Box::new(sockets);
    b.idler.tick(at(12)).await.unwrap();
    b.idler.tick(at(15)).await.unwrap();
    assert!(
        b.idler.busy.is_empty(),
        "its quiet time began again at 11 s"
    );
    b.idler.tick(at(16)).await.unwrap();
    assert!(b.idler.busy.contains(&id()));
    b.next_event().await;
    assert_eq!(b.host.systemd.active_state("ctr-web-1.service"), "inactive");
}

#[tokio::test]
async fn unreadable_connections_keep_it_up() {
    use crate::idle::connections::fake::FakeTables;
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    b.host
        .docker
        .containers
        .lock()
        .unwrap()
        .get_mut("ctr-web-1")
        .unwrap()
        .pid = 4242;
    // No tables for 4242: reading fails.
    b.idler.sockets = Box::new(FakeTables::default());
    let t0 = Instant::now();
    b.idler.tick(t0).await.unwrap();
    b.idler.tick(t0 + Duration::from_secs(6)).await.unwrap();
    assert!(b.idler.busy.is_empty());
}

#[tokio::test]
async fn wakes_past_a_sources_budget_are_refused_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let opts = Options {
        tick: Duration::from_secs(1),
        wake_timeout: Duration::from_secs(5),
        retry_after: Duration::from_secs(60),
        wakes: WakeLimits {
            per_source: 1,
            overall: 10,
            window: Duration::from_secs(60),
        },
    };
    (b.idler, b.events) = Idler::new(b.host.clone(), opts);
    let idle_now = |b: &Bed| {
        let host = b.host.clone();
        async move {
            let lock = host.lock(&id()).await.unwrap();
            host.idle_locked(&lock, IdleMode::Stop).await.unwrap();
        }
    };
    let starts = |b: &Bed| {
        let calls = b.host.systemd.calls.lock().unwrap();
        calls.iter().filter(|c| c.starts_with("start")).count()
    };
    idle_now(&b).await;
    b.idler.packet(b.held_from(1, "10.0.0.9"), &b.queue);
    b.next_event().await;
    assert_eq!(b.released(), [1]);
    assert_eq!(marked(&b.host.paths, &id()).unwrap(), None);

    // The same client again: its wake is spent, so the SYN goes on at once and nothing
    // starts; the container stays idle.
    idle_now(&b).await;
    let before = starts(&b);
    b.idler.packet(b.held_from(2, "::ffff:10.0.0.9"), &b.queue);
    assert_eq!(b.released(), [1, 2]);
    assert_eq!(starts(&b), before);
    assert_eq!(marked(&b.host.paths, &id()).unwrap(), Some(IdleMode::Stop));

    // Another client still wakes it.
    b.idler.packet(b.held_from(3, "10.0.0.10"), &b.queue);
    b.next_event().await;
    assert_eq!(b.released(), [1, 2, 3]);
    assert_eq!(starts(&b), before + 1);
}

#[tokio::test]
async fn a_syn_after_dnat_finds_its_frozen_container_by_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let lock = b.host.lock(&id()).await.unwrap();
    b.host.idle_locked(&lock, IdleMode::Freeze).await.unwrap();
    drop(lock);
    // Held at FORWARD: the container's address and internal port, not the published port.
    let internal = b._app.local_addr().unwrap().port();
    let after_dnat = |token, dest: &str| Held {
        token,
        port: internal,
        source: None,
        dest: Some(dest.parse().unwrap()),
        translated: true,
    };
    // Frozen since the last tick: kept until the next one has looked.
    b.idler.packet(after_dnat(1, "127.0.0.1"), &b.queue);
    // Nobody's address: let go once a tick has looked and no wake is under way.
    b.idler.packet(after_dnat(2, "10.9.9.9"), &b.queue);
    assert!(b.released().is_empty());
    b.idler.tick(Instant::now()).await.unwrap();
    b.idler.retry_unresolved(&b.queue, true);
    assert!(b.released().is_empty(), "web-1 wakes: {:?}", b.released());
    b.next_event().await;
    assert_eq!(b.released(), [1, 2]);
    assert_eq!(marked(&b.host.paths, &id()).unwrap(), None);
}

#[tokio::test]
async fn a_syn_after_dnat_waits_while_a_stopped_container_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bed(dir.path()).await;
    let lock = b.host.lock(&id()).await.unwrap();
    b.host.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    drop(lock);
    // The first SYN wakes it; its DNAT rules come before it listens, so a second client's
    // SYN is held at FORWARD, in no map (web-1 is not frozen).
    b.idler.packet(b.held(1), &b.queue);
    let after_dnat = Held {
        token: 2,
        port: b._app.local_addr().unwrap().port(),
        source: None,
        dest: Some("127.0.0.1".parse().unwrap()),
        translated: true,
    };
    b.idler.packet(after_dnat, &b.queue);
    // A tick during the wake lets neither go.
    b.idler.tick(Instant::now()).await.unwrap();
    b.idler.retry_unresolved(&b.queue, true);
    assert!(b.released().is_empty(), "{:?}", b.released());
    // Once the wake ends, both go.
    b.next_event().await;
    assert_eq!(b.released(), [1, 2]);
}

#[tokio::test]
async fn a_clean_stop_returns_only_once_the_queue_thread_has_let_held_packets_go() {
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::idle::queue::NfQueue;

    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(fake_host(dir.path(), FakeDocker::default()));
    let opts = Options {
        tick: Duration::from_secs(60),
        wake_timeout: Duration::from_secs(5),
        retry_after: Duration::from_secs(60),
        wakes: WakeLimits::default(),
    };
    let (queue, them) = NfQueue::stand_in(1);
    // One held SYN, for a port no container publishes: the idler lets it go at once.
    them.held
        .send(Held {
            token: 1,
            port: 1,
            source: None,
            dest: None,
            translated: false,
        })
        .unwrap();
    // A queue thread slow to hand the kernel its verdict, as a busy one is.
    let asked = Arc::new(AtomicBool::new(false));
    let (asked_too, holding) = (asked.clone(), them.holding.clone());
    let thread = std::thread::spawn(move || {
        let tokens = them.releases.recv().unwrap();
        asked_too.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(tokens, [1]);
        them.holding.store(0, Ordering::SeqCst);
    });
    // The stop comes once the release was asked for, before its verdict is given.
    let shutdown = async move {
        while !asked.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    run(host, queue, opts, shutdown).await.unwrap();
    // A process that ended here with the packet still held would have it dropped.
    assert_eq!(
        holding.load(Ordering::SeqCst),
        0,
        "run returned before the verdict"
    );
    thread.join().unwrap();
}
