//! Tests of `spec`.

use super::*;

#[test]
fn images() {
    for ok in [
        "busybox",
        "gear-test/httpd:latest",
        "reg:5000/a/b@sha256:abc",
        "a_b.c",
    ] {
        assert_eq!(ok.parse::<Image>().unwrap().as_str(), ok);
    }
    for bad in ["", "-rm", "a b", "a\nb", "a;b", "x$y", "%n"] {
        assert!(bad.parse::<Image>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn slices_take_geard_names() {
    assert_eq!(
        "container-small".parse::<SliceName>().unwrap().as_str(),
        "container-small.slice"
    );
    assert_eq!(
        "web.slice".parse::<SliceName>().unwrap().as_str(),
        "web.slice"
    );
    for bad in ["", ".slice", "a/b", "a.b", "-x", "a\n"] {
        assert!(bad.parse::<SliceName>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn slice_cgroup_paths_nest_like_systemd() {
    let path = |s: &str| s.parse::<SliceName>().unwrap().cgroup_path();
    assert_eq!(path("container"), "/container.slice");
    assert_eq!(
        path("container-small.slice"),
        "/container.slice/container-small.slice"
    );
    assert_eq!(path("a-b-c"), "/a.slice/a-b.slice/a-b-c.slice");
}

#[test]
fn limits() {
    assert_eq!("512M".parse::<Memory>().unwrap().bytes(), 512 << 20);
    assert_eq!("1G".parse::<Memory>().unwrap().to_string(), "1G");
    assert!("1K".parse::<Memory>().is_err());
    assert!("lots".parse::<Memory>().is_err());
    assert_eq!("0.5".parse::<Cpus>().unwrap().to_string(), "0.50");
    assert_eq!("2".parse::<Cpus>().unwrap().to_string(), "2");
    assert_eq!(".25".parse::<Cpus>().unwrap().to_string(), "0.25");
    for bad in ["0", "", ".", "1.234", "-1", "x"] {
        assert!(bad.parse::<Cpus>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn install_request_is_geard_compatible() {
    let req: InstallRequest = serde_json::from_str(
        r#"{"Image": "pmorie/sti-html-app", "Started":true, "Ports":[{"Internal":8080}]}"#,
    )
    .unwrap();
    assert!(req.started);
    assert_eq!(req.ports.len(), 1);
    assert!(serde_json::from_str::<InstallRequest>(r#"{"Image":"a","Startd":true}"#).is_err());
    assert!(serde_json::from_str::<InstallRequest>(r#"{"Image":"a\nb"}"#).is_err());
}

#[test]
fn geards_install_body_is_accepted_whole() {
    // What geard's Go client sends: every field, the id repeated, the options off.
    let body = r#"{"Id":"web-1","Image":"gear-test/httpd","Started":true,"Isolate":false,
        "Simple":false,"SocketActivation":false,"SkipSocketProxy":false,
        "Ports":[{"Internal":8080,"External":0}],
        "Environment":{"Id":"web-1","Variables":[{"Name":"A","Value":"B"}]},
        "NetworkLinks":null,"VolumeConfig":null,"SystemdSlice":"container-small"}"#;
    let req: InstallRequest = serde_json::from_str(body).unwrap();
    req.check().unwrap();
    assert_eq!(req.systemd_slice.unwrap().as_str(), "container-small.slice");
    // Not sent back: gear's own client never sends geard's options.
    let again = serde_json::to_string(&InstallRequest::new("a".parse().unwrap())).unwrap();
    assert_eq!(again, r#"{"Image":"a","Started":false,"Ports":[]}"#);
    let empty_volumes = r#"{"Image":"a","VolumeConfig":{"Volumes":[],"VolumeMounts":null}}"#;
    let req = serde_json::from_str::<InstallRequest>(empty_volumes).unwrap();
    req.check().unwrap();
    assert_eq!(
        req.all_volumes(),
        None,
        "an empty VolumeConfig keeps the volumes"
    );
}

#[test]
fn volumes_come_in_geards_form_and_gears() {
    let body = r#"{"Image":"a","Volumes":[{"Target":"/data"},{"Source":"/srv","Target":"/www","ReadOnly":true}],
        "VolumeConfig":{"Volumes":[{"Path":"/logs"}]}}"#;
    let req: InstallRequest = serde_json::from_str(body).unwrap();
    req.check().unwrap();
    let all = req.all_volumes().unwrap();
    let targets: Vec<&str> = all.iter().map(|v| v.target.as_str()).collect();
    assert_eq!(targets, ["/data", "/www", "/logs"]);
    let twice = r#"{"Image":"a","Volumes":[{"Target":"/data"}],"VolumeConfig":{"Volumes":[{"Path":"/data"}]}}"#;
    let err = serde_json::from_str::<InstallRequest>(twice)
        .unwrap()
        .check()
        .unwrap_err();
    assert!(
        err.to_string().contains("two volumes are mounted at /data"),
        "{err}"
    );
    for bad in [
        r#"{"Image":"a","Volumes":[{"Target":"data"}]}"#,
        r#"{"Image":"a","Volumes":[{"Target":"/a/../etc"}]}"#,
        r#"{"Image":"a","Volumes":[{"Target":"/data","Mode":"x"}]}"#,
    ] {
        assert!(
            serde_json::from_str::<InstallRequest>(bad).is_err(),
            "{bad}"
        );
    }
    // An empty list is asked for: it removes the volumes.
    let none: InstallRequest = serde_json::from_str(r#"{"Image":"a","Volumes":[]}"#).unwrap();
    assert_eq!(none.all_volumes(), Some(vec![]));
}

#[test]
fn geard_options_that_ask_for_something_unsupported_are_refused_by_name() {
    for (body, named) in [
        (r#"{"Image":"a","Simple":true}"#, "Simple"),
        (
            r#"{"Image":"a","SocketActivation":true}"#,
            "SocketActivation",
        ),
    ] {
        let req: InstallRequest = serde_json::from_str(body).unwrap();
        let err = req.check().unwrap_err().to_string();
        assert!(
            err.contains(named) && err.contains("not supported"),
            "{err}"
        );
    }
    // Fields neither geard nor gear knows stay refused.
    assert!(serde_json::from_str::<InstallRequest>(r#"{"Image":"a","Imgae":"b"}"#).is_err());
}

#[test]
fn slice_names_are_valid_systemd_slices() {
    for ok in ["container", "container-small", "a_b-c.slice"] {
        assert!(ok.parse::<SliceName>().is_ok(), "{ok}");
    }
    for bad in ["container-", "-a", "a--b", "a-.slice", "", ".slice", "a b"] {
        assert!(bad.parse::<SliceName>().is_err(), "{bad} accepted");
    }
}

#[test]
fn isolate_is_carried_out_now() {
    let req: InstallRequest = serde_json::from_str(r#"{"Image":"a","Isolate":true}"#).unwrap();
    assert!(req.isolate);
    req.check().unwrap();
}

#[test]
fn host_ports_below_1024_are_refused_unless_relaxed() {
    let low: InstallRequest =
        serde_json::from_str(r#"{"Image":"a","Ports":[{"Internal":80,"External":80}]}"#).unwrap();
    let err = low.check().unwrap_err().to_string();
    assert!(
        err.contains("host port 80") && err.contains("--relax privileged-ports"),
        "{err}"
    );
    let asked: InstallRequest = serde_json::from_str(
        r#"{"Image":"a","Ports":[{"Internal":80,"External":80}],"Relax":["privileged-ports"]}"#,
    )
    .unwrap();
    asked.check().unwrap();
    // A container port below 1024 on an allocated host port needs nothing.
    let internal: InstallRequest =
        serde_json::from_str(r#"{"Image":"a","Ports":[{"Internal":80}]}"#).unwrap();
    internal.check().unwrap();
    assert!(serde_json::from_str::<InstallRequest>(r#"{"Image":"a","Relax":["root"]}"#).is_err());
    assert!(serde_json::from_str::<InstallRequest>(r#"{"Image":"a","PidsLimit":0}"#).is_err());
}
