use super::*;

#[test]
fn cli_forms_parse_into_owned_volumes_and_bind_mounts() {
    let v: Volume = "/data".parse().unwrap();
    assert_eq!(v, Volume::owned("/data".parse().unwrap()));
    let v: Volume = "/srv/site:/www:ro".parse().unwrap();
    assert_eq!(v.source.unwrap().as_str(), "/srv/site");
    assert_eq!(v.target.as_str(), "/www");
    assert!(v.read_only);
    let v: Volume = "/srv/site:/www:rw".parse().unwrap();
    assert!(!v.read_only);
    let v: Volume = "/srv/site/:/www".parse().unwrap();
    assert_eq!(v.source.unwrap().as_str(), "/srv/site");
    for bad in [
        "data",
        "/a/../b",
        "/a/./b",
        "//a",
        "/",
        "/a:/b:rx",
        "/a:/b:ro:x",
        "/a b",
        "/a,b",
        "a:/b",
        "/a:b",
    ] {
        assert!(bad.parse::<Volume>().is_err(), "{bad} was accepted");
    }
}

#[test]
fn geards_volume_config_is_read_with_its_inverted_names() {
    let c: VolumeConfig = serde_json::from_str(
        r#"{"Volumes":[{"Path":"/data"}],"VolumeMounts":[{"Path":"/srv/site","HostPath":"/www","ReadOnly":true}]}"#,
    )
    .unwrap();
    let v = c.into_volumes();
    assert_eq!(v[0], Volume::owned("/data".parse().unwrap()));
    assert_eq!(v[1].source.as_ref().unwrap().as_str(), "/srv/site");
    assert_eq!(v[1].target.as_str(), "/www");
    assert!(v[1].read_only);
    assert!(serde_json::from_str::<VolumeConfig>(r#"{"Volumes":[{"Path":"rel"}]}"#).is_err());
}

#[test]
fn owned_directory_names_map_back_to_paths() {
    let t: MountPath = "/var/lib/pg".parse().unwrap();
    assert_eq!(Volume::dir_name(&t), "var+lib+pg");
    assert_eq!(Volume::target_of("var+lib+pg"), Some(t));
    assert_eq!(Volume::target_of(".."), None);
    assert!(check(&[Volume::owned("/a+b".parse().unwrap())]).is_err());
    let twice = [
        Volume::owned("/data".parse().unwrap()),
        "/srv:/data".parse().unwrap(),
    ];
    assert_eq!(check(&twice), Err(VolumeError::Duplicate("/data".into())));
}

#[test]
fn bind_mounts_must_exist_and_not_expose_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let bind = |src: &str| -> Vec<Volume> { vec![format!("{src}:/www").parse().unwrap()] };
    check_sources(&paths, &bind(site.to_str().unwrap()), false).unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        check_sources(&paths, &bind(missing.to_str().unwrap()), false),
        Err(VolumeError::NoSuchHostPath(_))
    ));
    std::fs::create_dir_all(paths.state_dir().join("specs")).unwrap();
    for refused in [
        "/etc".to_string(),
        "/etc/ssl".to_string(),
        paths.state_dir().join("specs").display().to_string(),
        // Above gear's state: it would show it.
        dir.path().display().to_string(),
    ] {
        assert!(
            matches!(
                check_sources(&paths, &bind(&refused), false),
                Err(VolumeError::Protected { .. })
            ),
            "{refused} was accepted"
        );
        check_sources(&paths, &bind(&refused), true).unwrap();
    }
    // A symlink to a protected path is refused as well.
    let link = site.join("etc-link");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    assert!(check_sources(&paths, &bind(link.to_str().unwrap()), false).is_err());
}

#[test]
fn owned_volumes_are_created_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let id: ContainerId = "web-1".parse().unwrap();
    let vols = [
        Volume::owned("/data".parse().unwrap()),
        Volume::owned("/var/lib/pg".parse().unwrap()),
        "/tmp:/host-tmp:ro".parse().unwrap(),
    ];
    create_owned(&paths, &id, &vols).unwrap();
    std::fs::write(
        paths.container_volumes(&id).join("data/file"),
        vec![7u8; 10_000],
    )
    .unwrap();
    let used = |_: &ContainerId| Some(vec!["/data".parse().unwrap()]);
    let list = store::list(&paths, None, used).unwrap().volumes;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].target.as_str(), "/data");
    assert!(list[0].in_use && !list[1].in_use);
    assert!(list[0].bytes >= 10_000, "{}", list[0].bytes);
    assert_eq!(
        list[1].host_path,
        paths.container_volumes(&id).join("var+lib+pg")
    );
    let removed = store::remove_all(&paths, &id).unwrap();
    assert_eq!(removed.len(), 2);
    assert!(!paths.container_volumes(&id).exists());
    assert!(
        store::list(&paths, Some(&id), |_| None)
            .unwrap()
            .volumes
            .is_empty()
    );
}
