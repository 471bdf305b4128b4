//! The idle operations against fake systemd, Docker and firewall.

use std::path::Path;

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::ContainerInfo;
use crate::docker::fake::FakeDocker;
use crate::idle::firewall::listing;

type TestHost = Host<Fake>;

/// A host with `web-1` installed and running, publishing a port that really listens on
/// 127.0.0.1 (its "bridge address" in the fake), so readiness can be checked for real.
async fn host(dir: &Path, policy: bool) -> (TestHost, tokio::net::TcpListener, ContainerId) {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    let h = fake_host(dir, docker);
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = app.local_addr().unwrap().port();
    let idle = if policy {
        r#","Idle":{"After":"5s"}"#
    } else {
        ""
    };
    let body = format!(r#"{{"Image":"img","Started":true,"Ports":[{{"Internal":{port}}}]{idle}}}"#);
    let id: ContainerId = "web-1".parse().unwrap();
    h.install(&id, serde_json::from_str(&body).unwrap(), None)
        .await
        .unwrap();
    h.docker.containers.lock().unwrap().insert(
        "ctr-web-1".into(),
        ContainerInfo {
            running: true,
            paused: false,
            ip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
    (h, app, id)
}

fn wants(h: &TestHost, id: &ContainerId) -> bool {
    h.paths.active_wants_dir().join(id.unit_name()).exists()
}

fn kinds(l: &crate::idle::rules::Listing) -> Vec<Kind> {
    l.rules.keys().map(|r| r.kind).collect()
}

#[tokio::test]
async fn idle_then_wake_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), true).await;
    let lock = h.lock(&id).await.unwrap();
    let ports = h.spec(&id).unwrap().ports;

    h.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    assert_eq!(marked(&h.paths, &id).unwrap(), Some(IdleMode::Stop));
    assert!(!wants(&h, &id), "an idle container must not start at boot");
    assert_eq!(h.systemd.active_state("ctr-web-1.service"), "inactive");
    assert_eq!(kinds(&listing(&h.firewall).await.unwrap()), [Kind::Hold]);

    let woken = h.wake(&lock, &ports, Duration::from_secs(5)).await.unwrap();
    assert_eq!(woken, Woken::Ready);
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
    assert!(wants(&h, &id));
    assert_eq!(h.systemd.active_state("ctr-web-1.service"), "active");
    // Held packets may go before the rules change; then the rules become counting ones.
    assert_eq!(kinds(&listing(&h.firewall).await.unwrap()), [Kind::Hold]);
    h.after_wake(&lock).await.unwrap();
    assert_eq!(kinds(&listing(&h.firewall).await.unwrap()), [Kind::Count]);
    // Waking an awake container does nothing.
    let again = h.wake(&lock, &ports, Duration::from_secs(5)).await.unwrap();
    assert_eq!(again, Woken::WasAwake);
}

#[tokio::test]
async fn freeze_pauses_and_wake_thaws() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), false).await;
    let lock = h.lock(&id).await.unwrap();
    h.idle_locked(&lock, IdleMode::Freeze).await.unwrap();
    assert_eq!(h.systemd.active_state("ctr-web-1.service"), "active");
    assert!(h.docker.containers.lock().unwrap()["ctr-web-1"].paused);
    let ports = h.spec(&id).unwrap().ports;
    let woken = h.wake(&lock, &ports, Duration::from_secs(5)).await.unwrap();
    assert_eq!(woken, Woken::Ready);
    assert!(!h.docker.containers.lock().unwrap()["ctr-web-1"].paused);
    // Thawed, not restarted.
    let calls = h.systemd.calls.lock().unwrap().clone();
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "start ctr-web-1.service")
            .count(),
        1,
        "{calls:?}"
    );
    // Without a policy, a running container has no rules at all.
    h.after_wake(&lock).await.unwrap();
    assert!(listing(&h.firewall).await.unwrap().rules.is_empty());
}

#[tokio::test]
async fn a_failed_wake_leaves_it_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), true).await;
    let lock = h.lock(&id).await.unwrap();
    h.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    h.systemd
        .failing
        .lock()
        .unwrap()
        .push("ctr-web-1.service".into());
    let ports = h.spec(&id).unwrap().ports;
    let err = h.wake(&lock, &ports, Duration::from_secs(1)).await;
    assert!(matches!(err, Err(Error::Job { .. })), "{err:?}");
    assert_eq!(marked(&h.paths, &id).unwrap(), Some(IdleMode::Stop));
    assert!(!wants(&h, &id));
    assert_eq!(kinds(&listing(&h.firewall).await.unwrap()), [Kind::Hold]);
}

#[tokio::test]
async fn a_port_that_never_answers_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), true).await;
    drop(app);
    let lock = h.lock(&id).await.unwrap();
    h.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    let ports = h.spec(&id).unwrap().ports;
    let woken = h
        .wake(&lock, &ports, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(woken, Woken::NotReady);
}

#[tokio::test]
async fn stop_and_start_clear_the_idle_state() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), true).await;
    let lock = h.lock(&id).await.unwrap();
    h.idle_locked(&lock, IdleMode::Freeze).await.unwrap();
    drop(lock);
    h.start(&id).await.unwrap();
    let lock = h.lock(&id).await.unwrap();
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
    assert!(!h.docker.containers.lock().unwrap()["ctr-web-1"].paused);
    // Started: counting rules (it has a policy), no holding ones.
    assert_eq!(kinds(&listing(&h.firewall).await.unwrap()), [Kind::Count]);

    h.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    drop(lock);
    h.stop(&id).await.unwrap();
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
    assert!(listing(&h.firewall).await.unwrap().rules.is_empty());
}

#[tokio::test]
async fn no_ports_nothing_to_wake() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, _) = host(dir.path(), false).await;
    let id: ContainerId = "noports".parse().unwrap();
    h.install(
        &id,
        serde_json::from_str(r#"{"Image":"img"}"#).unwrap(),
        None,
    )
    .await
    .unwrap();
    let lock = h.lock(&id).await.unwrap();
    let err = h.idle_locked(&lock, IdleMode::Stop).await;
    assert!(matches!(err, Err(Error::NotIdleable(_))), "{err:?}");
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
}

#[tokio::test]
async fn a_start_that_hangs_is_given_up_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), true).await;
    let lock = h.lock(&id).await.unwrap();
    h.idle_locked(&lock, IdleMode::Stop).await.unwrap();
    h.systemd
        .hanging
        .lock()
        .unwrap()
        .push("ctr-web-1.service".into());
    let ports = h.spec(&id).unwrap().ports;
    let err = h.wake(&lock, &ports, Duration::from_millis(200)).await;
    assert!(
        matches!(&err, Err(e) if e.to_string().contains("did not start within")),
        "{err:?}"
    );
    assert_eq!(marked(&h.paths, &id).unwrap(), Some(IdleMode::Stop));
    let calls = h.systemd.calls.lock().unwrap().clone();
    assert_eq!(
        calls.last().map(String::as_str),
        Some("stop ctr-web-1.service")
    );
}
