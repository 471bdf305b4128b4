//! Tests of `request`.

use super::*;

fn parse(method: Method, target: &str) -> Result<Request, Error> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Request::parse(&method, path, query, b"")
}

#[test]
fn every_request_round_trips_through_http() {
    // Richer values than the examples: links, bodies, log options, the other flags.
    let id: ContainerId = "my_app.1".parse().unwrap();
    let body: InstallRequest = serde_json::from_str(
        r#"{"Image":"gear-test/httpd","Started":true,"Ports":[{"Internal":8080}]}"#,
    )
    .unwrap();
    for req in [
        Request::CreateRepo {
            id: "my_app-2".parse().unwrap(),
            source: Some("https://example.com/a?x=1&y=%2F#f".parse().unwrap()),
            progress: false,
        },
        Request::CreateRepo {
            id: "my_app-2".parse().unwrap(),
            source: None,
            progress: false,
        },
        Request::Archive {
            id: "my_app-2".parse().unwrap(),
            git_ref: "feature/login".parse().unwrap(),
            format: crate::git::refname::ArchiveFormat::Zip,
        },
        Request::ListContainers { all: true },
        Request::SetLinks(vec![ContainerLinks {
            id: id.clone(),
            network_links: vec!["127.0.0.2:8081:9.8.23.14:8080".parse().unwrap()],
        }]),
        Request::Install {
            id: id.clone(),
            body: body.clone(),
            progress: false,
        },
        Request::Install {
            id: id.clone(),
            body,
            progress: true,
        },
        Request::Delete {
            id: id.clone(),
            volumes: false,
        },
        Request::Delete {
            id: id.clone(),
            volumes: true,
        },
        Request::PullImage("reg:5000/a/b:1".parse().unwrap()),
        Request::RunJob(
            serde_json::from_str(
                r#"{"Image":"a","Arguments":["x"],"Volumes":[{"Source":"/srv","Target":"/s"}],"VolumesFrom":"db-1","Timeout":"5s"}"#,
            )
            .unwrap(),
        ),
        Request::Log {
            id: id.clone(),
            opts: LogOptions {
                lines: 7,
                follow: false,
                timeout: Duration::from_secs(3),
            },
        },
        Request::SetEnvironment {
            id: id.clone(),
            body: serde_json::from_str(r#"{"Variables":[{"Name":"A","Value":"b c"}]}"#).unwrap(),
            reset: true,
        },
        Request::SetEnvironment {
            id: id.clone(),
            body: Default::default(),
            reset: false,
        },
        Request::Idle {
            id: id.clone(),
            mode: Some(IdleMode::Freeze),
        },
        Request::SetIdlePolicy {
            id: id.clone(),
            policy: Some(serde_json::from_str(r#"{"After":"5m","Mode":"freeze"}"#).unwrap()),
        },
    ]
    .into_iter()
    // One request of every route and method, so a new route is round-tripped too.
    .chain(Request::examples())
    {
        let (path, query) = match req.path_and_query().split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (req.path_and_query(), None),
        };
        let body = req.body().unwrap_or_default();
        let back = Request::parse(&req.method(), &path, query.as_deref(), &body).unwrap();
        assert_eq!(back, req);
    }
}

#[test]
fn repository_routes_refuse_bad_ids_refs_and_sources() {
    let bad = |m: Method, target: &str| match parse(m, target) {
        Err(Error::BadRequest(msg)) => msg,
        other => panic!("{target}: {other:?}"),
    };
    assert!(bad(Method::GET, "/repository/app1/archive/--output=x").contains("starts with '-'"));
    assert!(bad(Method::GET, "/repository/app1/archive/main..dev").contains("'..'"));
    assert!(bad(Method::GET, "/repository/app1/archive/").contains("empty"));
    assert!(bad(Method::GET, "/repository/app1/archive/v1?format=rar").contains("zip or tar.gz"));
    assert!(bad(Method::PUT, "/repository/App1").contains("lowercase"));
    assert!(bad(Method::PUT, "/repository/app1?source=ext::sh%20-c%20id").contains("refused"));
    assert!(bad(Method::PUT, "/repository/app1?source=--upload-pack=id").contains("'-'"));
    assert!(bad(Method::GET, "/keys?container=web-1&repository=app1").contains("repository=ID"));
    assert_eq!(
        parse(Method::GET, "/keys?repository=app1").unwrap(),
        Request::ListRepoKeys("app1".parse().unwrap())
    );
    assert_eq!(
        parse(Method::PUT, "/repository/app1?source=%2Fsrv%2Fgit%2Fa").unwrap(),
        Request::CreateRepo {
            id: "app1".parse().unwrap(),
            source: Some("/srv/git/a".parse().unwrap()),
            progress: false,
        }
    );
    assert!(matches!(
        parse(Method::POST, "/repository/app1"),
        Err(Error::MethodNotAllowed { .. })
    ));
}

#[test]
fn list_containers_query() {
    assert_eq!(
        parse(Method::GET, "/containers?all=true").unwrap(),
        Request::ListContainers { all: true }
    );
    assert_eq!(
        parse(Method::GET, "/containers/").unwrap(),
        Request::ListContainers { all: false }
    );
    assert!(matches!(
        parse(Method::GET, "/containers?all=maybe"),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn container_routes_validate_ids_and_bodies() {
    assert!(matches!(
        parse(Method::GET, "/container/ab/status"),
        Err(Error::InvalidId(_))
    ));
    assert!(matches!(
        parse(Method::PUT, "/container/web-1"),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        Request::parse(
            &Method::PUT,
            "/container/web-1",
            None,
            br#"{"Image":"a b"}"#
        ),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        parse(Method::GET, "/container/web-1/started"),
        Err(Error::MethodNotAllowed { .. })
    ));
    assert!(matches!(
        parse(Method::GET, "/container/web-1/nope"),
        Err(Error::NoRoute(_))
    ));
}

#[test]
fn idle_routes_validate_mode_and_policy() {
    assert!(matches!(
        parse(Method::PUT, "/container/web-1/idle?mode=nap"),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        parse(Method::GET, "/container/web-1/idle"),
        Err(Error::MethodNotAllowed { .. })
    ));
    assert!(matches!(
        Request::parse(
            &Method::PUT,
            "/container/web-1/idle-policy",
            None,
            br#"{"After":"100ms"}"#
        ),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn unknown_routes_and_methods() {
    assert!(matches!(
        parse(Method::GET, "/nope"),
        Err(Error::NoRoute(_))
    ));
    assert!(matches!(
        parse(Method::POST, "/containers"),
        Err(Error::MethodNotAllowed { .. })
    ));
}

#[test]
fn volume_routes() {
    assert_eq!(
        parse(Method::DELETE, "/container/web-1?volumes=1").unwrap(),
        Request::Delete {
            id: "web-1".parse().unwrap(),
            volumes: true
        }
    );
    assert!(parse(Method::DELETE, "/container/web-1?volumes=x").is_err());
    assert_eq!(
        parse(Method::GET, "/volumes").unwrap(),
        Request::Volumes(None)
    );
    assert!(matches!(
        parse(Method::POST, "/volumes"),
        Err(Error::MethodNotAllowed { .. })
    ));
    assert!(matches!(
        parse(Method::GET, "/volumes/a"),
        Err(Error::InvalidId(_))
    ));
    let bad = br#"{"Image":"a","Volumes":[{"Target":"/data/.."}]}"#;
    let err = Request::parse(&Method::PUT, "/container/web-1", None, bad).unwrap_err();
    assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST);
}
