//! The API layer against fake systemd, Docker and firewall: how idling composes with start,
//! stop, restart, delete and purge, and what each answer carries.

use std::path::Path;

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::ContainerInfo;
use crate::docker::fake::FakeDocker;
use crate::idle::{IdleMode, marked};

/// `web-1` installed and running with an idle policy, its port published.
async fn host(dir: &Path) -> (Arc<Host<Fake>>, ContainerId) {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    let host = Arc::new(fake_host(dir, docker));
    let id: ContainerId = "web-1".parse().unwrap();
    let body =
        r#"{"Image":"img","Started":true,"Ports":[{"Internal":8080}],"Idle":{"After":"5s"}}"#;
    let reply = execute(
        &host,
        Request::Install {
            id: id.clone(),
            body: serde_json::from_str(body).unwrap(),
            progress: false,
        },
    )
    .await
    .unwrap();
    assert!(matches!(reply, Reply::Json(StatusCode::OK, _)));
    host.docker.containers.lock().unwrap().insert(
        "ctr-web-1".into(),
        ContainerInfo {
            running: true,
            ..Default::default()
        },
    );
    (host, id)
}

/// Idles `id` through the API, as `gear idle` does.
async fn idle_now(host: &Arc<Host<Fake>>, id: &ContainerId, mode: Option<IdleMode>) -> Reply {
    let req = Request::Idle {
        id: id.clone(),
        mode,
    };
    execute(host, req).await.unwrap()
}

fn json(reply: Reply) -> serde_json::Value {
    match reply {
        Reply::Json(_, v) => v,
        Reply::Document(body) => serde_json::from_slice(&body).unwrap(),
        other => panic!("not JSON: {other:?}"),
    }
}

fn hold_rules(host: &Host<Fake>) -> usize {
    host.firewall
        .rule_lines()
        .iter()
        .filter(|l| l.contains("NFQUEUE"))
        .count()
}

async fn no_rules(host: &Host<Fake>) -> bool {
    crate::idle::firewall::listing(&host.firewall)
        .await
        .unwrap()
        .rules
        .is_empty()
}

fn wanted(host: &Host<Fake>, id: &ContainerId) -> bool {
    host.paths.active_wants_dir().join(id.unit_name()).exists()
}

#[tokio::test]
async fn idle_then_start_is_awake_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    let idle = json(idle_now(&host, &id, None).await);
    let status: reply::Status = serde_json::from_value(idle).unwrap();
    assert_eq!(status.idle, Some(IdleMode::Stop));
    assert_eq!(status.state.active_state, "inactive");
    assert!(hold_rules(&host) > 0);
    assert!(!wanted(&host, &id));
    // Idling needs the idler, and gear made sure it runs.
    assert_eq!(host.systemd.active_state("gear-idler.service"), "active");

    let started = json(execute(&host, Request::Start(id.clone())).await.unwrap());
    let status: reply::Status = serde_json::from_value(started).unwrap();
    assert_eq!(status.idle, None);
    assert_eq!(status.state.active_state, "active");
    assert_eq!(status.unit, "ctr-web-1.service");
    assert_eq!(status.main_pid, Some(4242));
    assert_eq!(hold_rules(&host), 0, "{:?}", host.firewall.rule_lines());
    assert!(wanted(&host, &id));
}

#[tokio::test]
async fn stop_of_an_idle_container_means_no_wake() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    idle_now(&host, &id, Some(IdleMode::Freeze)).await;
    host.docker
        .containers
        .lock()
        .unwrap()
        .get_mut("ctr-web-1")
        .unwrap()
        .paused = true;
    execute(&host, Request::Stop(id.clone())).await.unwrap();
    assert_eq!(marked(&host.paths, &id).unwrap(), None);
    assert!(no_rules(&host).await, "{:?}", host.firewall.rule_lines());
    assert!(!wanted(&host, &id));
    // Thawed before the stop: `docker stop` wants a running container.
    assert!(
        host.docker
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("unpause"))
    );
    assert_eq!(host.systemd.active_state("ctr-web-1.service"), "inactive");
}

#[tokio::test]
async fn purge_leaves_nothing_that_wakes_or_starts_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    idle_now(&host, &id, None).await;
    let stopped = json(execute(&host, Request::StopAll).await.unwrap());
    let stopped: reply::Stopped = serde_json::from_value(stopped).unwrap();
    assert_eq!(stopped.stopped, std::slice::from_ref(&id));
    assert_eq!(marked(&host.paths, &id).unwrap(), None);
    assert_eq!(hold_rules(&host), 0);
    assert!(!wanted(&host, &id));
    assert!(
        !host.paths.container_lock(&id).exists(),
        "a lock file stays behind"
    );
}

#[tokio::test]
async fn purge_waits_for_an_operation_in_flight_and_then_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    // Another process (the idler) holds the container: purge must not slip in between.
    let held = host.try_lock(&id).unwrap().unwrap();
    let h2 = host.clone();
    let purge = tokio::spawn(async move { execute(&h2, Request::StopAll).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!purge.is_finished());
    // What the idler does while it holds the lock: it idles the container.
    host.idle_locked(&held, IdleMode::Stop).await.unwrap();
    drop(held);
    purge.await.unwrap().unwrap();
    assert_eq!(
        marked(&host.paths, &id).unwrap(),
        None,
        "a purged container would wake"
    );
    assert_eq!(hold_rules(&host), 0);
}

#[tokio::test]
async fn a_busy_container_answers_409_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    let _held = host.try_lock(&id).unwrap().unwrap();
    let err = execute(&host, Request::Stop(id.clone())).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::CONFLICT);
    assert!(err.to_string().contains("busy"), "{err}");
}

#[tokio::test]
async fn delete_of_an_idle_container_removes_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    idle_now(&host, &id, None).await;
    let deleted = json(
        execute(
            &host,
            Request::Delete {
                id: id.clone(),
                volumes: false,
            },
        )
        .await
        .unwrap(),
    );
    assert_eq!(deleted, serde_json::json!({"Id": "web-1", "Deleted": true}));
    assert_eq!(marked(&host.paths, &id).unwrap(), None);
    assert!(no_rules(&host).await);
    assert!(!host.paths.spec_file(&id).exists());
    let again = execute(&host, Request::Delete { id, volumes: false })
        .await
        .unwrap_err();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_clears_what_a_half_done_install_left() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(fake_host(dir.path(), FakeDocker::default()));
    let id: ContainerId = "half-1".parse().unwrap();
    // An install killed after its ports and environment, before its spec and unit.
    crate::container::ports::Ports::new(&host.paths, host.port_range)
        .reserve(&id, &[serde_json::from_str(r#"{"Internal":80}"#).unwrap()])
        .unwrap();
    Environment::new().store(&host.paths, &id).unwrap();
    execute(
        &host,
        Request::Delete {
            id: id.clone(),
            volumes: false,
        },
    )
    .await
    .unwrap();
    let ports = crate::container::ports::Ports::new(&host.paths, host.port_range);
    assert!(ports.reserved(&id).unwrap().is_empty());
    assert!(!host.paths.env_file(&id).exists());
}

#[tokio::test]
async fn links_answer_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    let link: crate::links::NetworkLink = "8081:10.1.2.3:80".parse().unwrap();
    let set = |links: Vec<crate::links::NetworkLink>| {
        Request::SetLinks(vec![crate::api::request::ContainerLinks {
            id: id.clone(),
            network_links: links,
        }])
    };
    // Running, but Docker gives it no gateway: the links cannot be applied, so they are
    // not stored either.
    let err = execute(&host, set(vec![link.clone()])).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err.to_string().contains("not changed"), "{err}");
    assert!(host.spec(&id).unwrap().links.is_empty());
    // With a gateway and a process, they are applied in its namespace and stored.
    host.docker.containers.lock().unwrap().insert(
        "ctr-web-1".into(),
        ContainerInfo {
            running: true,
            pid: 42,
            gateway: Some("10.213.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
    let linked: reply::Linked =
        serde_json::from_value(json(execute(&host, set(vec![link.clone()])).await.unwrap()))
            .unwrap();
    assert_eq!((linked.linked.len(), linked.applied.len()), (1, 1));
    assert_eq!(host.spec(&id).unwrap().links, std::slice::from_ref(&link));
    // Stopped: stored for its next start, not applied.
    host.docker.containers.lock().unwrap().clear();
    let linked: reply::Linked =
        serde_json::from_value(json(execute(&host, set(vec![])).await.unwrap())).unwrap();
    assert_eq!((linked.linked.len(), linked.applied.len()), (1, 0));
    assert!(host.spec(&id).unwrap().links.is_empty());
}

#[tokio::test]
async fn an_update_keeps_a_running_containers_ports_until_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    let old = host.spec(&id).unwrap().ports[0];
    let body =
        r#"{"Image":"img","Ports":[{"Internal":9090,"External":4099}],"Idle":{"After":"5s"}}"#;
    execute(
        &host,
        Request::Install {
            id: id.clone(),
            body: serde_json::from_str(body).unwrap(),
            progress: false,
        },
    )
    .await
    .unwrap();
    let spec = host.spec(&id).unwrap();
    assert_eq!(spec.retired_ports, [old]);
    let store = crate::container::ports::Ports::new(&host.paths, host.port_range);
    assert_eq!(
        store.reserved(&id).unwrap().len(),
        2,
        "the old port was taken away"
    );
    // Its traffic still counts on the old port, so a busy container is not idled.
    let rules = crate::container::idling::running_rules(&spec);
    assert!(rules.iter().any(|r| r.port == old.external), "{rules:?}");
    execute(&host, Request::Restart(id.clone())).await.unwrap();
    assert!(host.spec(&id).unwrap().retired_ports.is_empty());
    let held = store.reserved(&id).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].internal.get(), 9090);
}

#[tokio::test]
async fn an_update_of_a_stopped_container_releases_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    execute(&host, Request::Stop(id.clone())).await.unwrap();
    let body = r#"{"Image":"img","Ports":[{"Internal":9090}]}"#;
    execute(
        &host,
        Request::Install {
            id: id.clone(),
            body: serde_json::from_str(body).unwrap(),
            progress: false,
        },
    )
    .await
    .unwrap();
    assert!(host.spec(&id).unwrap().retired_ports.is_empty());
    let store = crate::container::ports::Ports::new(&host.paths, host.port_range);
    assert_eq!(store.reserved(&id).unwrap().len(), 1);
}

#[tokio::test]
async fn a_start_enables_the_boot_target_once() {
    let dir = tempfile::tempdir().unwrap();
    let (host, id) = host(dir.path()).await;
    let enables = |h: &Host<Fake>| {
        h.systemd
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "enable container-active.target")
            .count()
    };
    assert_eq!(
        enables(&host),
        1,
        "{:?}",
        host.systemd.calls.lock().unwrap()
    );
    // Once enabled (the link exists), a start costs no further call.
    let link = host.paths.boot_wants_dir().join("container-active.target");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::write(&link, "").unwrap();
    execute(&host, Request::Restart(id)).await.unwrap();
    assert_eq!(enables(&host), 1);
}

/// `PUT /keys` for `ids` with geard's body.
fn put_keys(ids: &[&str], key: &str) -> Request {
    let perms: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"Type":"container","With":"{id}"}}"#))
        .collect();
    let body = format!(
        r#"{{"Keys":[{{"Type":"authorized_keys","Value":"{key}"}}],"Permissions":[{}]}}"#,
        perms.join(",")
    );
    Request::parse(&hyper::Method::PUT, "/keys", None, body.as_bytes()).unwrap()
}

#[tokio::test]
async fn keys_need_an_isolated_container_and_are_written_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (host, web) = host(dir.path()).await;
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPduUq53I4BsVcweySlwHvi28un2tEbulTTOc5bL851 me@x";
    let iso: ContainerId = "iso-1".parse().unwrap();
    let body = r#"{"Image":"img","Isolate":true}"#;
    let install = Request::parse(
        &hyper::Method::PUT,
        "/container/iso-1",
        None,
        body.as_bytes(),
    );
    execute(&host, install.unwrap()).await.unwrap();

    // web-1 is not isolated: 409, and nothing is written for iso-1 either.
    let err = execute(&host, put_keys(&["iso-1", "web-1"], key))
        .await
        .unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::CONFLICT, "{err}");
    assert!(!host.paths.keys_of(&iso).exists());
    let err = execute(&host, put_keys(&["nope"], key)).await.unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::NOT_FOUND);

    execute(&host, put_keys(&["iso-1"], key)).await.unwrap();
    let list = Request::parse(&hyper::Method::GET, "/keys", Some("container=iso-1"), b"").unwrap();
    let Reply::Json(_, json) = execute(&host, list).await.unwrap() else {
        panic!("not JSON")
    };
    assert_eq!(
        json["Keys"][0]["Fingerprint"],
        "SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg"
    );
    assert_eq!(json["Keys"][0]["Comment"], "me@x");

    let revoke = r#"{"Fingerprints":["SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg"],"Permissions":[{"Type":"container","With":"iso-1"}]}"#;
    let del = || Request::parse(&hyper::Method::DELETE, "/keys", None, revoke.as_bytes()).unwrap();
    execute(&host, del()).await.unwrap();
    let err = execute(&host, del()).await.unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::NOT_FOUND);
    let _ = web;
}

#[test]
fn isolate_needs_a_portable_user_name() {
    let body = br#"{"Image":"img","Isolate":true}"#;
    let err = Request::parse(&hyper::Method::PUT, "/container/Web.1", None, body).unwrap_err();
    assert!(err.to_string().contains("Isolate needs"), "{err}");
}

#[tokio::test]
async fn repository_keys_need_the_repository_and_keep_their_access() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _web) = host(dir.path()).await;
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPduUq53I4BsVcweySlwHvi28un2tEbulTTOc5bL851 me@x";
    let put = |perms: &str| {
        let body = format!(
            r#"{{"Keys":[{{"Type":"authorized_keys","Value":"{key}"}}],"Permissions":[{perms}]}}"#
        );
        Request::parse(&hyper::Method::PUT, "/keys", None, body.as_bytes()).unwrap()
    };
    let app: crate::id::RepoId = "app1".parse().unwrap();
    // No repository: 404, and nothing written for the other one either.
    std::fs::create_dir_all(host.paths.repository(&app)).unwrap();
    let err = execute(
        &host,
        put(r#"{"Type":"repository","With":{"Id":"app1","Write":true}},{"Type":"repository","With":{"Id":"nope1"}}"#),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::NOT_FOUND, "{err}");
    assert!(err.to_string().contains("no repository nope1"), "{err}");
    assert!(!host.paths.repository_keys(&app).exists());

    let reply = execute(
        &host,
        put(r#"{"Type":"repository","With":{"Id":"app1","Write":true}}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        json(reply)["Repositories"][0]["Fingerprints"][0],
        "SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg"
    );
    let list =
        || Request::parse(&hyper::Method::GET, "/keys", Some("repository=app1"), b"").unwrap();
    let listed = json(execute(&host, list()).await.unwrap());
    assert_eq!(listed["Keys"][0]["Write"], true);
    assert_eq!(listed["Keys"][0]["Comment"], "me@x");
    // Read access replaces write access.
    execute(&host, put(r#"{"Type":"repository","With":"app1"}"#))
        .await
        .unwrap();
    assert_eq!(
        json(execute(&host, list()).await.unwrap())["Keys"][0]["Write"],
        false
    );

    let revoke = r#"{"Fingerprints":["SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg"],"Permissions":[{"Type":"repository","With":{"Id":"app1"}}]}"#;
    let del = || Request::parse(&hyper::Method::DELETE, "/keys", None, revoke.as_bytes()).unwrap();
    execute(&host, del()).await.unwrap();
    assert!(!host.paths.repository_keys(&app).exists());
    let err = execute(&host, del()).await.unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::NOT_FOUND);

    // The repository is listed; an archive of a missing one is 404.
    let repos = json(execute(&host, Request::ListRepos).await.unwrap());
    assert_eq!(repos["Repositories"][0]["Id"], "app1");
    assert_eq!(repos["Repositories"][0]["Login"], "git-app1");
    let err = execute(
        &host,
        Request::Archive {
            id: "nope1".parse().unwrap(),
            git_ref: "main".parse().unwrap(),
            format: Default::default(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::NOT_FOUND);
}
