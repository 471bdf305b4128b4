//! Tests of the unit steps, against a fake engine and firewall.

use super::*;
use crate::docker::ContainerInfo;
use crate::docker::fake::FakeDocker;
use crate::netfilter::fake::FakeFirewall;

/// A state directory, its paths, container `web-1` and a fake engine.
fn setup() -> (tempfile::TempDir, Paths, ContainerId, FakeDocker) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    (dir, paths, "web-1".parse().unwrap(), FakeDocker::default())
}

fn running(docker: &FakeDocker, name: &str) {
    docker.containers.lock().unwrap().insert(
        name.into(),
        ContainerInfo {
            running: true,
            pid: 7,
            gateway: Some("10.213.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
}

#[tokio::test]
async fn a_start_removes_a_leftover_only_when_the_marker_says_so() {
    let (_dir, paths, id, docker) = setup();
    prepare(&paths, &docker, &id, None).await.unwrap();
    assert!(
        docker.calls.lock().unwrap().is_empty(),
        "a clean start asks nothing"
    );
    assert!(paths.started_marker(&id).exists());
    // The marker survived (the last stop never finished): the leftover goes first.
    running(&docker, "ctr-web-1");
    prepare(&paths, &docker, &id, None).await.unwrap();
    assert_eq!(*docker.calls.lock().unwrap(), ["rm ctr-web-1"]);
    assert!(paths.started_marker(&id).exists());
}

#[tokio::test]
async fn started_waits_for_the_container_then_applies_links() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let id: ContainerId = "web-1".parse().unwrap();
    let mut spec: crate::container::spec::ContainerSpec = serde_json::from_value(
        serde_json::json!({"Id": "web-1", "Image": "gear-test/httpd:latest"}),
    )
    .unwrap();
    let docker = FakeDocker::default();
    let fw = FakeFirewall::default();
    let write = |spec: &crate::container::spec::ContainerSpec| {
        let path = paths.spec_file(&id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(spec).unwrap()).unwrap();
    };
    write(&spec);
    // Not running: the start fails, and no link is tried.
    let err = started(&paths, &docker, &fw, &id, || false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ended while starting"), "{err}");
    running(&docker, "ctr-web-1");
    // Running without links: nothing runs in its namespace.
    started(&paths, &docker, &fw, &id, || true).await.unwrap();
    assert!(fw.scripts.lock().unwrap().is_empty());
    spec.links = vec!["9000:10.1.2.3:80".parse().unwrap()];
    write(&spec);
    started(&paths, &docker, &fw, &id, || true).await.unwrap();
    let (ns, _, _) = fw.scripts.lock().unwrap()[0].clone();
    assert_eq!(ns, crate::netfilter::Namespace::Of(7));
}

#[tokio::test]
async fn with_a_probe_started_returns_only_once_the_container_answers() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let id: ContainerId = "web-1".parse().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let spec = serde_json::json!({"Id": "web-1", "Image": "scratch-app",
        "Ready": {"Port": port, "Timeout": "1s"}});
    let path = paths.spec_file(&id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, spec.to_string()).unwrap();
    let docker = FakeDocker::default();
    running(&docker, "ctr-web-1");
    docker
        .containers
        .lock()
        .unwrap()
        .get_mut("ctr-web-1")
        .unwrap()
        .ip = Some("127.0.0.1".parse().unwrap());
    let fw = FakeFirewall::default();
    // Nothing listens: the start fails at the probe's timeout, saying why.
    let err = started(&paths, &docker, &fw, &id, || true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not ready within 1s"), "{err}");
    let why = std::fs::read_to_string(paths.not_ready(&id)).unwrap();
    assert!(why.starts_with("not ready within 1s"), "{why}");
    // It listens after 300 ms: the start ends then.
    let listener = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        drop(l);
    });
    let t = std::time::Instant::now();
    started(&paths, &docker, &fw, &id, || true).await.unwrap();
    assert!(t.elapsed() >= std::time::Duration::from_millis(250));
    assert!(!paths.not_ready(&id).exists());
    listener.abort();
}

#[tokio::test]
async fn remove_clears_the_marker() {
    let (_dir, paths, id, docker) = setup();
    running(&docker, "ctr-web-1");
    prepare(&paths, &docker, &id, None).await.unwrap();
    remove(&paths, &docker, &id, true, MainEnd::Unknown)
        .await
        .unwrap();
    assert_eq!(
        *docker.calls.lock().unwrap(),
        ["oom? ctr-web-1", "rm ctr-web-1"]
    );
    assert!(!paths.started_marker(&id).exists());
    assert_eq!(last_end(&paths, &id), None);
    // Removing again (no container, no marker) is fine.
    remove(&paths, &docker, &id, true, MainEnd::Unknown)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_run_the_kernel_killed_for_memory_is_recorded_until_the_next_one_ends() {
    let (_dir, paths, id, docker) = setup();
    docker.oom_killed.lock().unwrap().insert("ctr-web-1".into());
    prepare(&paths, &docker, &id, None).await.unwrap();
    remove(&paths, &docker, &id, true, MainEnd::Unknown)
        .await
        .unwrap();
    assert_eq!(last_end(&paths, &id).as_deref(), Some("oom-kill"));
    docker.oom_killed.lock().unwrap().clear();
    prepare(&paths, &docker, &id, None).await.unwrap();
    remove(&paths, &docker, &id, true, MainEnd::Unknown)
        .await
        .unwrap();
    assert_eq!(last_end(&paths, &id), None);
}

#[tokio::test]
async fn with_the_engine_down_a_stop_asks_nothing_and_the_next_start_cleans_up() {
    let (_dir, paths, id, docker) = setup();
    prepare(&paths, &docker, &id, None).await.unwrap();
    remove(&paths, &docker, &id, false, MainEnd::Unknown)
        .await
        .unwrap();
    assert!(
        docker.calls.lock().unwrap().is_empty(),
        "the engine was asked"
    );
    assert!(paths.started_marker(&id).exists(), "the marker must stay");
    running(&docker, "ctr-web-1");
    prepare(&paths, &docker, &id, None).await.unwrap();
    assert_eq!(*docker.calls.lock().unwrap(), ["rm ctr-web-1"]);
}

#[tokio::test]
async fn after_docker_run_ended_by_itself_a_stop_asks_the_engine_nothing() {
    let (_dir, paths, id, docker) = setup();
    docker.oom_killed.lock().unwrap().insert("ctr-web-1".into());
    prepare(&paths, &docker, &id, None).await.unwrap();
    // Stopped by SIGTERM (docker-init's 143), or the program's own exit: `--rm` is done.
    for status in [143, 0, 1] {
        remove(&paths, &docker, &id, true, MainEnd::Exited(status))
            .await
            .unwrap();
    }
    assert!(
        docker.calls.lock().unwrap().is_empty(),
        "the engine was asked"
    );
    assert!(!paths.started_marker(&id).exists());
    // 137 may be the kernel's kill for memory: the events say so.
    prepare(&paths, &docker, &id, None).await.unwrap();
    remove(&paths, &docker, &id, true, MainEnd::Exited(137))
        .await
        .unwrap();
    assert_eq!(
        *docker.calls.lock().unwrap(),
        ["oom? ctr-web-1", "rm ctr-web-1"]
    );
    assert_eq!(last_end(&paths, &id).as_deref(), Some("oom-kill"));
    // The next clean end clears that record.
    prepare(&paths, &docker, &id, None).await.unwrap();
    remove(&paths, &docker, &id, true, MainEnd::Exited(0))
        .await
        .unwrap();
    assert_eq!(last_end(&paths, &id), None);
}

#[test]
fn only_an_exit_docker_run_makes_after_removal_counts_as_removed() {
    let end = |c, s| MainEnd::from_systemd(c, s);
    assert_eq!(end(Some("exited"), Some("143")), MainEnd::Exited(143));
    assert!(end(Some("exited"), Some("143")).container_removed());
    assert!(end(Some("exited"), Some("0")).container_removed());
    for status in ["125", "126", "127", "137"] {
        assert!(!end(Some("exited"), Some(status)).container_removed());
    }
    // Killed (systemd's SIGKILL after its stop timeout, kill -9), or nothing said.
    assert_eq!(end(Some("killed"), Some("KILL")), MainEnd::Unknown);
    assert_eq!(end(Some("dumped"), Some("ABRT")), MainEnd::Unknown);
    assert_eq!(end(None, None), MainEnd::Unknown);
    assert!(!MainEnd::Unknown.container_removed());
}

#[test]
fn the_engine_runs_while_its_pid_file_names_a_live_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("docker.pid");
    assert!(engine_running(&pid_file), "no pid file says nothing");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    assert!(engine_running(&pid_file));
    std::fs::write(&pid_file, format!("{}\n", u32::MAX)).unwrap();
    assert!(!engine_running(&pid_file), "a dead engine's pid file");
}

#[tokio::test]
async fn the_post_step_waits_until_this_runs_prepare_is_done() {
    let (_dir, paths, id, docker) = setup();
    let wait = |main| {
        tokio::time::timeout(
            std::time::Duration::from_millis(100),
            wait_prepared(&paths, &id, main, || true),
        )
    };
    // A marker an earlier run left (or none): still preparing.
    assert!(wait(41).await.is_err());
    prepare(&paths, &docker, &id, Some(41)).await.unwrap();
    assert!(wait(42).await.is_err(), "another run's mark passed");
    wait(41).await.unwrap().unwrap();
    // The main process ended before it was done: the wait ends, failing.
    let err = wait_prepared(&paths, &id, 42, || false).await.unwrap_err();
    assert!(err.to_string().contains("ended while preparing"), "{err}");
}

#[test]
fn a_process_is_alive_until_it_is_reaped_or_a_zombie() {
    assert!(process_alive(std::process::id()));
    assert!(!process_alive(u32::MAX));
}
