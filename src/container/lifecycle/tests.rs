//! Tests of `lifecycle`.

use std::path::Path;

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::container::spec::InstallRequest;
use crate::docker::fake::FakeDocker;
use crate::netfilter::Namespace;

fn host(dir: &Path) -> Host<Fake> {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    docker.pullable.lock().unwrap().insert("remote/img".into());
    fake_host(dir, docker)
}

fn req(json: &str) -> InstallRequest {
    serde_json::from_str(json).unwrap()
}

fn id(s: &str) -> ContainerId {
    s.parse().unwrap()
}

#[tokio::test]
async fn install_start_stop_delete() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    let done = h
        .install(
            &web,
            req(r#"{"Image":"img","Started":true,"Ports":[{"Internal":8080}]}"#),
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.ports.len(), 1);
    assert!(h.is_installed(&web));
    let unit = std::fs::read_to_string(h.paths.unit_file(&web)).unwrap();
    assert!(unit.starts_with(unit::GENERATED_HEADER));
    assert!(unit.contains(&format!(
        "\"--publish\" \"{}:8080\"",
        done.ports[0].external
    )));
    let wants = h.paths.active_wants_dir().join(web.unit_name());
    assert_eq!(std::fs::read_link(&wants).unwrap(), h.paths.unit_file(&web));
    assert_eq!(h.systemd.active_state("ctr-web-1.service"), "active");

    h.stop(&web).await.unwrap();
    assert!(!wants.exists());
    assert_eq!(h.systemd.active_state("ctr-web-1.service"), "inactive");

    h.delete(&web, false).await.unwrap();
    assert!(!h.is_installed(&web));
    assert!(!h.paths.spec_file(&web).exists());
    assert!(Ports::new(&h.paths, h.port_range).all().unwrap().is_empty());
    assert!(matches!(
        h.delete(&web, false).await,
        Err(Error::NotInstalled(_))
    ));
    assert!(
        h.docker
            .calls
            .lock()
            .unwrap()
            .contains(&"rm ctr-web-1".to_string())
    );
}

#[tokio::test]
async fn stop_all_stops_and_unlinks_every_container() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    for name in ["web-1", "web-2"] {
        h.install(&id(name), req(r#"{"Image":"img","Started":true}"#), None)
            .await
            .unwrap();
    }
    let stopped = h.stop_all().await.unwrap();
    assert_eq!(stopped, [id("web-1"), id("web-2")]);
    assert_eq!(h.systemd.active_state("ctr-web-2.service"), "inactive");
    assert!(
        !h.paths
            .active_wants_dir()
            .join("ctr-web-1.service")
            .exists()
    );
    assert!(h.is_installed(&id("web-1")));
}

#[tokio::test]
async fn links_are_kept_across_reinstalls_and_applied_to_a_running_container() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    h.install(
        &web,
        req(r#"{"Image":"img","NetworkLinks":[{"FromPort":80,"ToHost":"h2","ToPort":4000}]}"#),
        None,
    )
    .await
    .unwrap();
    h.install(&web, req(r#"{"Image":"img"}"#), None)
        .await
        .unwrap();
    assert_eq!(h.spec(&web).unwrap().links.len(), 1);
    // Not running: stored only.
    h.set_links(&web, vec![]).await.unwrap();
    assert!(h.firewall.scripts.lock().unwrap().is_empty());
    let gateway = std::net::Ipv4Addr::new(10, 0, 0, 1);
    h.docker.containers.lock().unwrap().insert(
        "ctr-web-1".into(),
        crate::docker::ContainerInfo {
            running: true,
            pid: 7,
            gateway: Some(gateway),
            ..Default::default()
        },
    );
    h.set_links(&web, vec!["127.0.0.2:81:10.0.0.9:4001".parse().unwrap()])
        .await
        .unwrap();
    let rules = h.firewall.lines_of(Namespace::Of(7), "nat");
    assert!(
        rules
            .iter()
            .any(|r| r.contains("--to-destination 10.0.0.9:4001")),
        "{rules:?}"
    );
    assert!(matches!(h.spec(&id("nope")), Err(Error::NotInstalled(_))));
}

#[tokio::test]
async fn unpullable_image_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let err = h
        .install(
            &id("web-1"),
            req(r#"{"Image":"no/such","Ports":[{"Internal":80}]}"#),
            None,
        )
        .await;
    assert!(
        matches!(err, Err(Error::ImageUnavailable { .. })),
        "{err:?}"
    );
    assert!(!h.is_installed(&id("web-1")));
    assert!(Ports::new(&h.paths, h.port_range).all().unwrap().is_empty());
    // A pullable one is pulled first.
    h.install(&id("web-2"), req(r#"{"Image":"remote/img"}"#), None)
        .await
        .unwrap();
    assert!(
        h.docker
            .calls
            .lock()
            .unwrap()
            .contains(&"pull remote/img".to_string())
    );
}

#[tokio::test]
async fn delete_leaves_neighbours_alone() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    for name in ["web-1", "we_b.2"] {
        h.install(&id(name), req(r#"{"Image":"img","Ports":[{"Internal":80}],"Environment":{"Variables":[{"Name":"A","Value":"1"}]}}"#), None)
            .await
            .unwrap();
    }
    h.delete(&id("web-1"), false).await.unwrap();
    let other = id("we_b.2");
    assert!(h.is_installed(&other));
    assert!(h.paths.env_file(&other).exists());
    assert_eq!(
        Ports::new(&h.paths, h.port_range)
            .reserved(&other)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn environment_is_patched_in_order_or_reset() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    let env = |text: &str| Environment::parse(text).unwrap();
    assert_eq!(h.environment(&web).unwrap(), None);
    h.set_environment(&web, env("A=1\nB=2\n"), false)
        .await
        .unwrap();
    let got = h
        .set_environment(&web, env("B=3\nC=4\n"), false)
        .await
        .unwrap();
    assert_eq!(got.render(), "A=1\nB=3\nC=4\n");
    let got = h.set_environment(&web, env("Z=9\n"), true).await.unwrap();
    assert_eq!(h.environment(&web).unwrap(), Some(got));
    // An install without variables keeps them.
    h.install(&web, req(r#"{"Image":"img"}"#), None)
        .await
        .unwrap();
    assert_eq!(h.environment(&web).unwrap().unwrap().render(), "Z=9\n");
}

#[tokio::test]
async fn reinstall_keeps_ports_and_operations_need_an_installed_container() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    let body = r#"{"Image":"img","Ports":[{"Internal":8080}]}"#;
    let first = h.install(&web, req(body), None).await.unwrap();
    let second = h.install(&web, req(body), None).await.unwrap();
    assert_eq!(first.ports, second.ports);
    assert!(matches!(
        h.start(&id("nope")).await,
        Err(Error::NotInstalled(_))
    ));
    assert!(matches!(h.spec(&id("nope")), Err(Error::NotInstalled(_))));
}

#[tokio::test]
async fn an_install_that_fails_before_its_unit_is_written_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    // The unit cannot be written (as on a full disk): a file where its directory goes.
    let units = h.paths.units_dir();
    std::fs::create_dir_all(units.parent().unwrap()).unwrap();
    std::fs::write(&units, "").unwrap();
    let body = r#"{"Image":"img","Ports":[{"Internal":8080}],"Environment":{"Variables":[{"Name":"A","Value":"1"}]}}"#;
    h.install(&web, req(body), None).await.unwrap_err();
    assert!(!h.is_installed(&web));
    let ports = Ports::new(&h.paths, h.port_range);
    assert!(ports.all().unwrap().is_empty(), "a port stayed reserved");
    assert!(!h.paths.env_file(&web).exists());
    assert!(!h.paths.spec_file(&web).exists());
    // Once the disk is usable again, the same install works.
    std::fs::remove_file(&units).unwrap();
    h.install(&web, req(body), None).await.unwrap();
    assert!(h.is_installed(&web));
}

#[tokio::test]
async fn a_failed_first_install_keeps_an_environment_set_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    let env = crate::container::environment::Environment::parse("A=kept\n").unwrap();
    h.set_environment(&web, env, true).await.unwrap();
    let units = h.paths.units_dir();
    std::fs::create_dir_all(units.parent().unwrap()).unwrap();
    std::fs::write(&units, "").unwrap();
    h.install(&web, req(r#"{"Image":"img"}"#), None)
        .await
        .unwrap_err();
    assert_eq!(h.environment(&web).unwrap().unwrap().render(), "A=kept\n");
}

#[tokio::test]
async fn owned_volumes_outlive_updates_and_a_delete_without_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let body = format!(
        r#"{{"Image":"img","Volumes":[{{"Target":"/data"}},{{"Source":"{}","Target":"/www","ReadOnly":true}}]}}"#,
        site.display()
    );
    h.install(&web, req(&body), None).await.unwrap();
    let data = h.paths.container_volumes(&web).join("data");
    assert!(data.is_dir());
    let unit = std::fs::read_to_string(h.paths.unit_file(&web)).unwrap();
    assert!(unit.contains(&format!(
        "\"--mount\" \"type=bind,source={},target=/data\"",
        data.display()
    )));
    assert!(unit.contains(&format!(
        "\"type=bind,source={},target=/www,readonly\"",
        site.display()
    )));
    std::fs::write(data.join("kept"), "1").unwrap();

    // An update without volumes keeps them; the data is untouched.
    h.install(&web, req(r#"{"Image":"img"}"#), None)
        .await
        .unwrap();
    assert_eq!(h.spec(&web).unwrap().volumes.len(), 2);
    assert!(data.join("kept").exists());

    let left = h.delete(&web, false).await.unwrap();
    assert_eq!(left.kept, vec!["/data".parse().unwrap()]);
    assert!(data.join("kept").exists());
    // Re-installed with the same volume: the data is back.
    h.install(
        &web,
        req(r#"{"Image":"img","Volumes":[{"Target":"/data"}]}"#),
        None,
    )
    .await
    .unwrap();
    assert!(data.join("kept").exists());
    let left = h.delete(&web, true).await.unwrap();
    assert_eq!(left.removed, vec!["/data".parse().unwrap()]);
    assert!(!h.paths.container_volumes(&web).exists());
}

#[tokio::test]
async fn a_refused_bind_mount_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    // Missing; the host's /etc; a directory holding gear's state.
    let root = dir.path().display().to_string();
    for source in ["/no/such/dir", "/etc", root.as_str()] {
        let body = format!(
            r#"{{"Image":"remote/img","Volumes":[{{"Target":"/data"}},{{"Source":"{source}","Target":"/x"}}]}}"#
        );
        let err = h.install(&web, req(&body), None).await.unwrap_err();
        assert!(matches!(err, Error::Volume(_)), "{source}: {err}");
    }
    assert!(!h.is_installed(&web));
    assert!(!h.paths.spec_file(&web).exists());
    assert!(!h.paths.volumes_dir().exists());
    assert!(
        h.docker.calls.lock().unwrap().is_empty(),
        "nothing was pulled"
    );
    // The agent's flag allows the host's own paths.
    let mut h = h;
    h.allow_system_mounts = true;
    let body =
        r#"{"Image":"img","Volumes":[{"Source":"/etc","Target":"/host-etc","ReadOnly":true}]}"#;
    h.install(&web, req(body), None).await.unwrap();
}

#[tokio::test]
async fn isolate_makes_a_user_the_container_runs_as_and_delete_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    h.install(&web, req(r#"{"Image":"img","Isolate":true}"#), None)
        .await
        .unwrap();
    let user = ContainerSpec::load(&h.paths, &web).unwrap().user.unwrap();
    assert_eq!(user.name, "ctr-web-1");
    assert!(h.accounts.users.lock().unwrap().contains_key("ctr-web-1"));
    assert!(h.paths.home_dir(&web).is_dir());
    let unit = std::fs::read_to_string(h.paths.unit_file(&web)).unwrap();
    assert!(
        unit.contains(&format!("\"--user\" \"{}:{}\"", user.uid, user.gid)),
        "{unit}"
    );
    // Installing again keeps the same user.
    h.install(&web, req(r#"{"Image":"img","Isolate":true}"#), None)
        .await
        .unwrap();
    assert_eq!(
        ContainerSpec::load(&h.paths, &web).unwrap().user,
        Some(user)
    );
    crate::keys::store::add(
        &h.paths,
        &web,
        &[crate::keys::PublicKey::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPduUq53I4BsVcweySlwHvi28un2tEbulTTOc5bL851",
        )
        .unwrap()],
    )
    .unwrap();
    h.delete(&web, false).await.unwrap();
    assert!(h.accounts.users.lock().unwrap().is_empty());
    assert!(!h.paths.home_dir(&web).exists());
    assert!(!h.paths.keys_of(&web).exists());
}

#[tokio::test]
async fn an_update_without_isolate_removes_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let web = id("web-1");
    h.install(&web, req(r#"{"Image":"img","Isolate":true}"#), None)
        .await
        .unwrap();
    h.install(&web, req(r#"{"Image":"img"}"#), None)
        .await
        .unwrap();
    assert!(h.accounts.users.lock().unwrap().is_empty());
    assert_eq!(ContainerSpec::load(&h.paths, &web).unwrap().user, None);
    let unit = std::fs::read_to_string(h.paths.unit_file(&web)).unwrap();
    assert!(!unit.contains("--user"));
}
