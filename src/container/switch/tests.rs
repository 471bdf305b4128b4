//! Switches against fake systemd, Docker and firewall; the new container's readiness is a
//! real listener on 127.0.0.1 (its "bridge address" in the fake).

use std::sync::Mutex;

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::fake::FakeDocker;
use crate::idle::firewall::listing;
use crate::idle::rules::Kind;

/// Socket tables that show `open` established connections to local port `port`.
#[derive(Debug)]
struct Tables {
    port: u16,
    open: Mutex<usize>,
}

impl SocketTables for Tables {
    fn tables(&self, _pid: u32) -> anyhow::Result<Vec<String>> {
        let mut t = String::from("  sl  local_address rem_address   st\n");
        for i in 0..*self.open.lock().unwrap() {
            t.push_str(&format!(
                "   {i}: 0100007F:{:04X} 0100007F:{:04X} 01 00000000:00000000\n",
                self.port,
                50000 + i
            ));
        }
        Ok(vec![t])
    }
}

async fn host(
    dir: &std::path::Path,
    extra: &str,
) -> (Host<Fake>, tokio::net::TcpListener, ContainerId) {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    let h = fake_host(dir, docker);
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = app.local_addr().unwrap().port();
    let body =
        format!(r#"{{"Image":"img","Started":true,"Ports":[{{"Internal":{port}}}]{extra}}}"#);
    let id: ContainerId = "web-1".parse().unwrap();
    h.install(&id, serde_json::from_str(&body).unwrap(), None)
        .await
        .unwrap();
    h.docker.run_on_loopback("ctr-web-1", 7);
    (h, app, id)
}

/// An update to image `bad` (present), started, whose unit fails every start (the old
/// spec's too).
fn failing_update(h: &Host<Fake>, port: u16) -> InstallRequest {
    h.docker.images.lock().unwrap().insert("bad".into());
    h.systemd
        .failing
        .lock()
        .unwrap()
        .push("ctr-web-1.service".into());
    serde_json::from_str(&format!(
        r#"{{"Image":"bad","Started":true,"Ports":[{{"Internal":{port}}}]}}"#
    ))
    .unwrap()
}

fn hold_scripts(h: &Host<Fake>) -> usize {
    h.firewall
        .host_scripts()
        .iter()
        .filter(|script| script.contains("-A GEAR-IDLE") && script.contains("gear-idle:web-1"))
        .count()
}

#[tokio::test]
async fn a_restart_of_a_running_container_holds_its_ports_until_the_new_one_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), "").await;
    assert!(h.switchable(&id).await.unwrap());
    let port = app.local_addr().unwrap().port();
    let tables = Tables {
        port,
        open: Mutex::new(0),
    };
    let lock = h.lock(&id).await.unwrap();
    let done = h.switch_locked(&lock, &tables, None).await.unwrap();
    assert_eq!(done.cut, 0);
    let calls = h.systemd.calls.lock().unwrap().join("\n");
    assert!(calls.contains("restart ctr-web-1.service"), "{calls}");
    assert!(
        calls.contains("gear-idler.service"),
        "the idler must hold: {calls}"
    );
    assert_eq!(hold_scripts(&h), 1, "the ports were held once");
    // Afterwards: no hold, no mark; the idler's waiting wake finds it awake.
    let l = listing(&h.firewall).await.unwrap();
    assert!(l.rules.keys().all(|r| r.kind != Kind::Hold), "{l:?}");
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
}

#[tokio::test]
async fn open_connections_drain_until_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), r#","DrainTimeout":"300ms""#).await;
    let port = app.local_addr().unwrap().port();
    let tables = Tables {
        port,
        open: Mutex::new(2),
    };
    let lock = h.lock(&id).await.unwrap();
    let done = h.switch_locked(&lock, &tables, None).await.unwrap();
    assert_eq!(done.cut, 2, "two were still open");
    assert!(done.drained >= Duration::from_millis(300), "{done:?}");
    assert!(done.held >= done.drained);
}

/// Socket tables where the host (this process's namespace) shows one connection on
/// `port` for the first `reads` looks, and the container shows none: one docker-proxy
/// accepted and has not passed on yet.
#[derive(Debug)]
struct AtHost {
    port: u16,
    reads: Mutex<usize>,
}

impl SocketTables for AtHost {
    fn tables(&self, pid: u32) -> anyhow::Result<Vec<String>> {
        let mut t = String::from("  sl  local_address rem_address   st\n");
        let mut reads = self.reads.lock().unwrap();
        if pid == std::process::id() && *reads > 0 {
            *reads -= 1;
            t.push_str(&format!(
                "   0: 0100007F:{:04X} 0100007F:C350 01 00000000:00000000\n",
                self.port
            ));
        }
        Ok(vec![t])
    }
}

#[tokio::test]
async fn a_connection_docker_proxy_accepted_before_the_hold_is_drained_too() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), "").await;
    let published = h.spec(&id).unwrap().ports[0].external.get();
    let tables = AtHost {
        port: published,
        reads: Mutex::new(3),
    };
    let lock = h.lock(&id).await.unwrap();
    let done = h.switch_locked(&lock, &tables, None).await.unwrap();
    assert_eq!(done.cut, 0);
    // Three looks saw it open, DRAIN_POLL apart.
    assert!(done.drained >= DRAIN_POLL * 3, "{done:?}");
    assert_eq!(*tables.reads.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_failed_restart_lets_the_held_connections_go_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), "").await;
    let port = app.local_addr().unwrap().port();
    h.systemd
        .failing
        .lock()
        .unwrap()
        .push("ctr-web-1.service".into());
    let tables = Tables {
        port,
        open: Mutex::new(0),
    };
    let lock = h.lock(&id).await.unwrap();
    let err = h.switch_locked(&lock, &tables, None).await.unwrap_err();
    assert!(matches!(err, Error::Job { .. }), "{err}");
    let l = listing(&h.firewall).await.unwrap();
    assert!(l.rules.keys().all(|r| r.kind != Kind::Hold), "{l:?}");
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
}

#[tokio::test]
async fn a_stopped_or_idle_container_or_one_without_ports_is_not_switched() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _app, id) = host(dir.path(), "").await;
    h.stop(&id).await.unwrap();
    assert!(!h.switchable(&id).await.unwrap());
    h.start(&id).await.unwrap();
    mark(&h.paths, &id, IdleMode::Freeze).unwrap();
    assert!(!h.switchable(&id).await.unwrap());
}

#[tokio::test]
async fn an_update_with_start_of_a_running_container_switches_and_one_without_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), "").await;
    let port = app.local_addr().unwrap().port();
    h.docker.images.lock().unwrap().insert("img2".into());
    let restarts = |h: &Host<Fake>| {
        h.systemd
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.as_str() == "restart ctr-web-1.service")
            .count()
    };
    let body = |img: &str, started: bool| {
        serde_json::from_str(&format!(
            r#"{{"Image":"{img}","Started":{started},"Ports":[{{"Internal":{port}}}]}}"#
        ))
        .unwrap()
    };
    // The same spec again: nothing to do.
    h.install(&id, body("img", true), None).await.unwrap();
    assert_eq!(restarts(&h), 0);
    // Another image, not started: at the next start.
    h.install(&id, body("img2", false), None).await.unwrap();
    assert_eq!(restarts(&h), 0);
    // Another image, started: now, by a switch.
    h.install(&id, body("img", true), None).await.unwrap();
    assert_eq!(restarts(&h), 1);
    assert_eq!(hold_scripts(&h), 1);
}

#[tokio::test]
async fn an_update_whose_container_fails_puts_the_old_spec_back_under_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), "").await;
    let port = app.local_addr().unwrap().port();
    // Every start of the unit fails here, the old spec's too: both reasons are given.
    let body = failing_update(&h, port);
    let err = h.install(&id, body, None).await.unwrap_err().to_string();
    assert!(err.contains("and so did the rollback"), "{err}");
    assert_eq!(
        h.spec(&id).unwrap().image.as_str(),
        "img",
        "the old spec is back"
    );
    let versions = h.history(&id).unwrap().versions;
    let images: Vec<&str> = versions.iter().map(|v| v.spec.image.as_str()).collect();
    assert_eq!(images, ["img", "bad", "img"]);
    assert_eq!(
        hold_scripts(&h),
        1,
        "one hold for the update and its rollback"
    );
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
}

#[tokio::test]
async fn an_undone_update_runs_the_old_image_by_its_recorded_id_not_a_re_pointed_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (h, app, id) = host(dir.path(), "").await;
    let port = app.local_addr().unwrap().port();
    // Version 1 ran an image the tag "img" no longer names (a later pull re-pointed it).
    let path = h.paths.history_file(&id);
    let text = std::fs::read_to_string(&path).unwrap();
    let before = crate::docker::fake::fake_id("img");
    assert!(text.contains(&before), "{text}");
    std::fs::write(&path, text.replace(&before, "sha256:old")).unwrap();
    h.docker.images.lock().unwrap().insert("sha256:old".into());
    let body = failing_update(&h, port);
    h.install(&id, body, None).await.unwrap_err();
    assert_eq!(
        h.spec(&id).unwrap().image.as_str(),
        "sha256:old",
        "the image version 1 ran, not what the tag names now"
    );
}
