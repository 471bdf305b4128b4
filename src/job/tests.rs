use super::*;

fn files() -> JobFiles {
    JobFiles::of(&Paths::new("/"), "gear-job-1.service")
}

#[test]
fn the_unit_runs_docker_once_and_cleans_up_after_itself() {
    let req: JobRequest = serde_json::from_str(
        r#"{"Image":"gear-test/httpd","Arguments":["sh","-c","echo hi"],"Memory":"64M",
            "CPUs":"0.5","Timeout":"30s","Environment":{"Variables":[{"Name":"A","Value":"1"}]}}"#,
    )
    .unwrap();
    req.check().unwrap();
    let mounts = vec![("/srv/backups".into(), "/backups".to_string(), false)];
    let props = properties(&req, "gear-job-1.service", &mounts, &files());
    let exec = props
        .iter()
        .find_map(|p| match p {
            Property::Exec("ExecStart", argv, false) => Some(argv.join(" ")),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        exec,
        "/usr/bin/docker run --rm --init --name gear-job-1 --label gear.job=gear-job-1 \
         --env-file /run/gear/jobs/gear-job-1.service.env \
         --mount type=bind,source=/srv/backups,target=/backups \
         --memory 67108864 --cpus 0.50 gear-test/httpd sh -c echo hi"
    );
    assert!(props.contains(&Property::Str("Type", "oneshot".into())));
    assert!(props.contains(&Property::Str("CollectMode", "inactive-or-failed".into())));
    assert!(props.contains(&Property::U64("TimeoutStartUSec", 30_000_000)));
    assert!(props.contains(&Property::Str(
        "StandardOutputFileToAppend",
        "/run/gear/jobs/gear-job-1.service.out".into()
    )));
    // Without a timeout, none.
    let props = properties(
        &JobRequest::new("a".parse().unwrap()),
        "gear-job-2.service",
        &[],
        &files(),
    );
    assert!(props.contains(&Property::U64("TimeoutStartUSec", u64::MAX)));
}

#[test]
fn geards_body_is_accepted_and_owned_volumes_refused() {
    let req: JobRequest = serde_json::from_str(
        r#"{"Image":"busybox","Command":"/bin/echo","Arguments":["hi"],"Name":"x"}"#,
    )
    .unwrap();
    req.check().unwrap();
    let props = properties(&req, "gear-job-3.service", &[], &files());
    let Some(Property::Exec(_, argv, _)) = props
        .iter()
        .find(|p| matches!(p, Property::Exec("ExecStart", ..)))
    else {
        panic!("no ExecStart");
    };
    assert!(argv.ends_with(&[
        "--entrypoint".into(),
        "/bin/echo".into(),
        "busybox".into(),
        "hi".into()
    ]));
    let owned: JobRequest =
        serde_json::from_str(r#"{"Image":"a","Volumes":[{"Target":"/data"}]}"#).unwrap();
    assert!(matches!(owned.check(), Err(VolumeError::JobOwned(_))));
}

#[test]
fn how_a_job_ended_becomes_an_exit_code() {
    let end = |s| JobEnd::parse(s).unwrap().exit_code;
    assert_eq!(end("exited 0 success"), 0);
    assert_eq!(end("exited 3 exit-code"), 3);
    assert_eq!(end("killed TERM signal"), 143);
    assert_eq!(end("killed TERM timeout"), 124);
    assert_eq!(JobEnd::parse(""), None);
    assert_eq!(JobEnd::parse("exited x exit-code"), None);
}
