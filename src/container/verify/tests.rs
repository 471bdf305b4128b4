//! Verified updates against fake systemd and Docker; the container's health endpoint is a
//! real HTTP responder on 127.0.0.1 (its "bridge address" in the fake).

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::fake::FakeDocker;

/// Answers every connection on `app` with `status`, as a container's HTTP endpoint.
fn serve(app: tokio::net::TcpListener, status: u16) {
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = app.accept().await {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(format!("HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        }
    });
}

/// A running "web-1" on image "img", and the body of an update of it to "img2".
async fn host(
    dir: &std::path::Path,
    status: u16,
    verify: &str,
) -> (Host<Fake>, ContainerId, InstallRequest) {
    let docker = FakeDocker::default();
    for image in ["img", "img2"] {
        docker.images.lock().unwrap().insert(image.into());
    }
    let h = fake_host(dir, docker);
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = app.local_addr().unwrap().port();
    serve(app, status);
    let body = |img: &str| {
        serde_json::from_value::<InstallRequest>(serde_json::json!({
            "Image": img, "Started": true, "Ports": [{"Internal": port}],
            "Health": {"Http": "/health", "Interval": "1s", "Failures": 2},
            "Verify": verify,
        }))
        .unwrap()
    };
    let id: ContainerId = "web-1".parse().unwrap();
    h.install(
        &id,
        InstallRequest {
            verify: None,
            ..body("img")
        },
        None,
    )
    .await
    .unwrap();
    h.docker.run_on_loopback("ctr-web-1", 7);
    (h, id, body("img2"))
}

#[tokio::test]
async fn an_update_that_fails_its_health_checks_in_the_window_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (h, id, update) = host(dir.path(), 500, "10s").await;
    let since = std::time::Instant::now();
    let err = h.install(&id, update, None).await.unwrap_err();
    assert!(matches!(err, Error::RolledBack { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("2 health checks failed in a row"), "{text}");
    assert!(text.contains("500"), "{text}");
    // Two checks a second apart, not the whole window.
    assert!(
        since.elapsed() < Duration::from_secs(5),
        "{:?}",
        since.elapsed()
    );
    assert_eq!(
        h.spec(&id).unwrap().image.as_str(),
        "img",
        "the old version is back"
    );
    let images: Vec<String> = h
        .history(&id)
        .unwrap()
        .versions
        .iter()
        .map(|v| v.spec.image.to_string())
        .collect();
    assert_eq!(images, ["img", "img2", "img"]);
    assert_eq!(marked(&h.paths, &id).unwrap(), None);
}

#[tokio::test]
async fn an_update_that_passes_for_the_window_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (h, id, update) = host(dir.path(), 200, "2s").await;
    let since = std::time::Instant::now();
    h.install(&id, update, None).await.unwrap();
    assert!(
        since.elapsed() >= Duration::from_secs(2),
        "the whole window is watched"
    );
    assert_eq!(h.spec(&id).unwrap().image.as_str(), "img2");
}

#[tokio::test]
async fn an_update_whose_container_exits_in_the_window_is_rolled_back_and_the_lock_is_free_meanwhile()
 {
    let dir = tempfile::tempdir().unwrap();
    let (h, id, update) = host(dir.path(), 200, "30s").await;
    let h = std::sync::Arc::new(h);
    let watcher = {
        let (h, id) = (h.clone(), id.clone());
        tokio::spawn(async move { h.install(&id, update, None).await })
    };
    // While it is watched, other operations on the container are not kept waiting.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let lock = h.try_lock(&id).unwrap();
    assert!(lock.is_some(), "the lock is free while verifying");
    drop(lock);
    assert_eq!(h.spec(&id).unwrap().image.as_str(), "img2");
    h.docker
        .containers
        .lock()
        .unwrap()
        .get_mut("ctr-web-1")
        .unwrap()
        .running = false;
    let err = watcher.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("its container exited"), "{err}");
    assert_eq!(h.spec(&id).unwrap().image.as_str(), "img");
}

#[tokio::test]
async fn a_verify_window_out_of_range_is_refused() {
    let mut req = InstallRequest::new("img".parse().unwrap());
    req.verify = Some(probe::Wait(Duration::from_secs(7200)));
    assert!(req.check().unwrap_err().to_string().contains("1s to 1h"));
}
