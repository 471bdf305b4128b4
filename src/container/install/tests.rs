//! Tests of what `install` decides beyond `lifecycle`'s: SELinux levels and the safer
//! container defaults in the unit it writes.

use std::path::Path;

use crate::container::host::{Fake, Host, fake_host};
use crate::container::mcs::{Levels, McsLevel, Selinux};
use crate::container::spec::{ContainerSpec, InstallRequest};
use crate::docker::fake::FakeDocker;
use crate::id::ContainerId;

fn host(dir: &Path, selinux: Selinux) -> Host<Fake> {
    let docker = FakeDocker::default();
    docker.images.lock().unwrap().insert("img".into());
    let mut h = fake_host(dir, docker);
    h.selinux = selinux;
    h
}

fn req(json: &str) -> InstallRequest {
    serde_json::from_str(json).unwrap()
}

fn id(s: &str) -> ContainerId {
    s.parse().unwrap()
}

async fn install(h: &Host<Fake>, name: &str, json: &str) -> (ContainerSpec, String) {
    h.install(&id(name), req(json), None).await.unwrap();
    let spec = ContainerSpec::load(&h.paths, &id(name)).unwrap();
    let unit = std::fs::read_to_string(h.paths.unit_file(&id(name))).unwrap();
    (spec, unit)
}

#[tokio::test]
async fn with_selinux_each_container_gets_its_own_level_kept_across_reinstalls() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Enabled);
    let (a, unit) = install(&h, "app-a", r#"{"Image":"img"}"#).await;
    let level = a.selinux_level.expect("a level with SELinux on");
    assert!(
        unit.contains(&format!("\"--security-opt\" \"label=level:{level}\"")),
        "{unit}"
    );

    // Stable: a re-install, even with other options, keeps it.
    let (again, _) = install(&h, "app-a", r#"{"Image":"img","Memory":"64M"}"#).await;
    assert_eq!(again.selinux_level, Some(level));

    // Unique: other containers get others.
    let mut seen = vec![level];
    for n in 0..20 {
        let (s, _) = install(&h, &format!("app-b{n}"), r#"{"Image":"img"}"#).await;
        let l = s.selinux_level.unwrap();
        assert!(!seen.contains(&l), "app-b{n} got {l} again");
        seen.push(l);
    }
}

#[tokio::test]
async fn a_level_another_containers_spec_records_is_not_handed_out_on_an_older_host() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Enabled);
    // `app-x` would get `app-y`'s level were it free: `app-y` got it from a gear that
    // kept levels only in specs, so the store is not there yet.
    let wanted = crate::container::mcs::pick(&id("app-x"), []).unwrap();
    let (mut y, _) = install(&h, "app-y", r#"{"Image":"img"}"#).await;
    y.selinux_level = Some(wanted);
    y.store(&h.paths).unwrap();
    std::fs::remove_dir_all(h.paths.mcs_dir()).unwrap();
    let (x, _) = install(&h, "app-x", r#"{"Image":"img"}"#).await;
    assert_ne!(x.selinux_level, Some(wanted));
    assert!(x.selinux_level.is_some());
    let levels = Levels::new(&h.paths);
    assert_eq!(levels.owner(wanted).unwrap().as_deref(), Some("app-y"));
    assert_eq!(
        levels.owner(x.selinux_level.unwrap()).unwrap().as_deref(),
        Some("app-x")
    );
}

#[tokio::test]
async fn once_the_store_exists_an_install_reads_no_other_spec() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Enabled);
    let (mut y, _) = install(&h, "app-y", r#"{"Image":"img"}"#).await;
    // A spec written behind gear's back claims `app-x`'s level: only the store counts, so
    // no spec was read.
    let wanted = crate::container::mcs::pick(&id("app-x"), []).unwrap();
    y.id = id("app-z");
    y.selinux_level = Some(wanted);
    y.store(&h.paths).unwrap();
    let (x, _) = install(&h, "app-x", r#"{"Image":"img"}"#).await;
    assert_eq!(x.selinux_level, Some(wanted));
}

#[tokio::test]
async fn an_installed_container_gets_its_missing_reservation_back() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Enabled);
    let (a, _) = install(&h, "app-a", r#"{"Image":"img"}"#).await;
    let level = a.selinux_level.unwrap();
    let levels = Levels::new(&h.paths);
    levels.release_level(&id("app-a"), level).unwrap();
    assert_eq!(levels.owner(level).unwrap(), None);
    let (again, _) = install(&h, "app-a", r#"{"Image":"img"}"#).await;
    assert_eq!(again.selinux_level, Some(level));
    assert_eq!(levels.owner(level).unwrap().as_deref(), Some("app-a"));
}

#[tokio::test]
async fn a_failed_install_gives_its_level_back_and_a_delete_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Enabled);
    let (a, _) = install(&h, "app-a", r#"{"Image":"img"}"#).await;
    // The unit cannot be written: the install fails after its level was reserved.
    let units = h.paths.units_dir();
    std::fs::rename(&units, dir.path().join("units-aside")).unwrap();
    std::fs::write(&units, "not a directory").unwrap();
    let failed = h
        .install(&id("app-b"), req(r#"{"Image":"img"}"#), None)
        .await;
    assert!(failed.is_err());
    let levels = Levels::new(&h.paths);
    let held = vec![(a.selinux_level.unwrap(), "app-a".to_string())];
    assert_eq!(levels.all().unwrap(), held);
    std::fs::remove_file(&units).unwrap();
    std::fs::rename(dir.path().join("units-aside"), &units).unwrap();

    let (b, _) = install(&h, "app-b", r#"{"Image":"img"}"#).await;
    h.delete(&id("app-a"), false).await.unwrap();
    let held = vec![(b.selinux_level.unwrap(), "app-b".to_string())];
    assert_eq!(levels.all().unwrap(), held);

    // A level is all a killed install left: delete takes it back all the same.
    levels.reserve(&id("app-c")).unwrap().unwrap();
    h.delete(&id("app-c"), false).await.unwrap();
    assert_eq!(levels.all().unwrap(), held);
}

#[tokio::test]
async fn without_selinux_no_level_is_chosen_or_passed() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Disabled);
    let (spec, unit) = install(&h, "app-a", r#"{"Image":"img"}"#).await;
    assert_eq!(spec.selinux_level, None);
    assert!(!unit.contains("label="), "{unit}");
    assert!(
        !String::from_utf8(spec.to_json().unwrap())
            .unwrap()
            .contains("SELinuxLevel")
    );
}

#[tokio::test]
async fn safer_defaults_are_in_the_unit_unless_relaxed() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Selinux::Disabled);
    let (_, unit) = install(&h, "app-a", r#"{"Image":"img"}"#).await;
    for opt in [
        r#""--security-opt" "no-new-privileges""#,
        r#""--cap-drop" "NET_RAW""#,
        r#""--pids-limit" "4096""#,
    ] {
        assert!(unit.contains(opt), "{opt} missing from {unit}");
    }
    let (spec, unit) = install(
        &h,
        "app-b",
        r#"{"Image":"img","Relax":["net-raw","new-privileges"],"PidsLimit":50}"#,
    )
    .await;
    assert!(!unit.contains(r#""--cap-drop" "NET_RAW""#), "{unit}");
    assert!(!unit.contains(r#""no-new-privileges""#), "{unit}");
    assert!(unit.contains(r#""--pids-limit" "50""#), "{unit}");
    // Kept in the spec, so the next render (and gear status readers) know.
    let stored = ContainerSpec::load(&h.paths, &id("app-b")).unwrap();
    assert_eq!(stored.relax, spec.relax);
    assert_eq!(stored.relax.len(), 2);
    let _: Option<McsLevel> = stored.selinux_level;
}
