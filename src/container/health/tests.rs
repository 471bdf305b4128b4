//! Health checks against fake systemd and Docker and a real HTTP server on 127.0.0.1 (the
//! container's "bridge address" in the fake).

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::fake::FakeDocker;

/// A server answering every request with the status in `status`.
async fn server(status: Arc<AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let code = status.load(Ordering::SeqCst);
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.0 {code} X\r\n\r\n").as_bytes())
                .await;
        }
    });
    port
}

async fn host(dir: &std::path::Path, port: u16, restart: &str) -> (Host<Fake>, ContainerId) {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    let h = fake_host(dir, docker);
    let body = format!(
        r#"{{"Image":"img","Started":true,"Restart":"{restart}","Ports":[{{"Internal":{port}}}],
            "Health":{{"Http":"/health","Interval":"5s","Failures":3}}}}"#
    );
    let id: ContainerId = "web-1".parse().unwrap();
    h.install(&id, serde_json::from_str(&body).unwrap(), None)
        .await
        .unwrap();
    h.docker.run_on_loopback("ctr-web-1", 7);
    (h, id)
}

#[tokio::test]
async fn passing_checks_write_nothing_and_failures_in_a_row_ask_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let status = Arc::new(AtomicU16::new(200));
    let port = server(status.clone()).await;
    let (h, id) = host(dir.path(), port, "on-failure").await;
    let mut checker = Checker::default();
    let mut now = Instant::now();
    let round = async |checker: &mut Checker, now: &mut Instant| {
        *now += Duration::from_secs(5);
        checker.round(&h, *now).await.unwrap()
    };
    for _ in 0..3 {
        assert!(round(&mut checker, &mut now).await.is_empty());
    }
    assert!(!h.paths.health_file(&id).exists(), "a passing check wrote");
    // Not due yet: not checked (a failure now would not count).
    status.store(503, Ordering::SeqCst);
    assert!(checker.round(&h, now).await.unwrap().is_empty());
    assert!(HealthState::load(&h.paths, &id).is_none());
    assert!(round(&mut checker, &mut now).await.is_empty());
    let s = HealthState::load(&h.paths, &id).unwrap();
    assert!(!s.passing);
    assert_eq!(s.failures, 1);
    assert!(
        s.last_failure.contains("answered 503"),
        "{}",
        s.last_failure
    );
    assert!(round(&mut checker, &mut now).await.is_empty());
    let failing = round(&mut checker, &mut now).await;
    assert_eq!(
        failing,
        [Failing {
            id: id.clone(),
            restart: true
        }]
    );
    assert_eq!(HealthState::load(&h.paths, &id).unwrap().restarts, 1);
    // It passes again: written once, then never while it passes.
    status.store(200, Ordering::SeqCst);
    assert!(round(&mut checker, &mut now).await.is_empty());
    let s = HealthState::load(&h.paths, &id).unwrap();
    assert!(s.passing);
    assert_eq!(s.failures, 0);
    assert!(s.last_failure.contains("503"), "the last failure is kept");
    std::fs::remove_file(h.paths.health_file(&id)).unwrap();
    round(&mut checker, &mut now).await;
    assert!(!h.paths.health_file(&id).exists(), "a passing check wrote");
}

#[tokio::test]
async fn a_stopped_container_is_not_checked_and_restart_no_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let status = Arc::new(AtomicU16::new(500));
    let port = server(status.clone()).await;
    let (h, id) = host(dir.path(), port, "no").await;
    let mut checker = Checker::default();
    let mut now = Instant::now();
    let mut failing = vec![];
    for _ in 0..3 {
        now += Duration::from_secs(5);
        failing = checker.round(&h, now).await.unwrap();
    }
    assert_eq!(
        failing,
        [Failing {
            id: id.clone(),
            restart: false
        }]
    );
    assert_eq!(HealthState::load(&h.paths, &id).unwrap().restarts, 0);
    std::fs::remove_file(h.paths.health_file(&id)).unwrap();
    h.stop(&id).await.unwrap();
    now += Duration::from_secs(5);
    checker.round(&h, now).await.unwrap();
    assert!(
        !h.paths.health_file(&id).exists(),
        "a stopped container was checked"
    );
}

#[test]
fn checks_are_bounded() {
    let check = |json: serde_json::Value| {
        serde_json::from_value::<HealthCheck>(json)
            .unwrap()
            .resolve([PortNumber::try_from(80).unwrap()])
    };
    assert!(check(serde_json::json!({"Interval": "500ms"})).is_err());
    assert!(check(serde_json::json!({"Failures": 0})).is_err());
    let c = check(serde_json::json!({"Http": "/h"})).unwrap();
    assert_eq!(c.port, Some(PortNumber::try_from(80).unwrap()));
    assert_eq!(
        (c.interval(), c.failures()),
        (DEFAULT_INTERVAL, DEFAULT_FAILURES)
    );
}
