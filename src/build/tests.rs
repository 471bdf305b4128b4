use super::*;

#[test]
fn tags_get_latest_and_a_reversible_unit_name() {
    let t: BuildTag = "gear-test/site".parse().unwrap();
    assert_eq!(t.as_str(), "gear-test/site:latest");
    assert_eq!(
        t.unit_name(),
        "gear-build-gear\\x2dtest-site:latest.service"
    );
    let t: BuildTag = "localhost:5000/app:v1.2".parse().unwrap();
    assert_eq!(t.as_str(), "localhost:5000/app:v1.2");
    assert_eq!(t.unit_name(), "gear-build-localhost:5000-app:v1.2.service");
    // a/b and a-b are different tags, so different units.
    let (a, b): (BuildTag, BuildTag) = ("a/bb".parse().unwrap(), "a-bb".parse().unwrap());
    assert_ne!(a.unit_name(), b.unit_name());
    for bad in ["", "Site", "a@sha256:00", "-x", "a b", "a/:x", "x:"] {
        assert!(bad.parse::<BuildTag>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn sources_as_geard_reads_them_plus_repo_ids() {
    let dir: Source = "/srv/site".parse().unwrap();
    assert_eq!(dir, Source::Dir("/srv/site".into()));
    let repo: Source = "repo://site-1".parse().unwrap();
    assert_eq!(repo, Source::Repo("site-1".parse().unwrap()));
    let paths = crate::paths::Paths::new("/");
    assert_eq!(
        repo.clone_url(&paths).unwrap(),
        "/var/lib/containers/git/site-1"
    );
    for git in [
        "https://example.com/a/b",
        "git://h/x",
        "file:///srv/r.git",
        "ssh://git@h/x",
        "git@github.com:o/r.git",
        "h/x.git",
    ] {
        assert_eq!(git.parse::<Source>().unwrap(), Source::Git(git.into()));
    }
    for bad in ["", "site", "./x", "-x", "/a/../b", "repo://x", "/a\nb"] {
        assert!(bad.parse::<Source>().is_err(), "{bad:?} accepted");
    }
    assert!("feature/x".parse::<GitRef>().is_ok());
    assert!("v1.0^{}".parse::<GitRef>().is_err());
    assert!("--upload-pack=x".parse::<GitRef>().is_err());
}

#[test]
fn geards_body_is_read_and_its_unsupported_options_refused() {
    let body = r#"{"Source":"/srv/site","BaseImage":"gear-test/s2i-web","Tag":"site","RuntimeImage":"","Clean":true,"Verbose":false,"CallbackUrl":"","Name":"abc"}"#;
    let req: BuildRequest = serde_json::from_str(body).unwrap();
    assert!(req.clean);
    assert_eq!(req.tag.as_str(), "site:latest");
    req.check().unwrap();
    let with_runtime = body.replace(r#""RuntimeImage":"""#, r#""RuntimeImage":"x""#);
    let req: BuildRequest = serde_json::from_str(&with_runtime).unwrap();
    assert_eq!(req.check(), Err(InvalidBuild::Unsupported("RuntimeImage")));
    let mut req = BuildRequest::new(
        "/srv/site".parse().unwrap(),
        "b".parse().unwrap(),
        "t".parse().unwrap(),
    );
    req.r#ref = Some("main".parse().unwrap());
    assert!(req.check().is_err(), "a ref of a directory");
    assert!(serde_json::from_str::<BuildRequest>(r#"{"Source":"/x","BaseImage":"b"}"#).is_err());
}
