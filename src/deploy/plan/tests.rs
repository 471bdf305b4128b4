//! Tests of `plan`.

use super::*;

fn fixture(name: &str) -> Deployment {
    let path = format!("{}/deployment/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Deployment::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hosts(names: &[&str]) -> Vec<HostAddr> {
    names.iter().map(|h| h.parse().unwrap()).collect()
}

fn id(s: &str) -> ContainerId {
    s.parse().unwrap()
}

fn placement(p: &Plan) -> Vec<(String, String)> {
    p.instances
        .iter()
        .map(|i| (i.id.to_string(), i.host.to_string()))
        .collect()
}

#[test]
fn simple_deploy_spreads_and_links_by_port() {
    let d = fixture("simple_deploy.json");
    let p = plan(&d, &hosts(&["h1", "h2"]), &BTreeMap::new()).unwrap();
    assert_eq!(
        placement(&p),
        [("web-1".into(), "h1".into()), ("web-2".into(), "h2".into())]
    );
    let t = |i: &str| p.targets[&(id(i), PortNumber::try_from(8080).unwrap())].clone();
    assert_eq!(
        (t("web-1").host, t("web-1").port.get()),
        (Ipv4Addr::new(127, 0, 0, 1), 8080)
    );
    assert_eq!(
        (t("web-2").host, t("web-2").port.get()),
        (Ipv4Addr::new(127, 0, 0, 1), 8081)
    );
    let port = |n: u16| PortNumber::try_from(n).unwrap();
    let externals = BTreeMap::from([
        ((id("web-1"), port(8080)), port(4001)),
        ((id("web-2"), port(8080)), port(4002)),
    ]);
    let links: Vec<String> = network_links(&p.instances[0], &p, &externals)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        links,
        ["127.0.0.1:8080:localhost:4001", "127.0.0.1:8081:h2:4002"]
    );
}

#[test]
fn replica_set_members_get_non_local_addresses_with_the_same_port() {
    let d = fixture("replica_set.json");
    let p = plan(&d, &hosts(&["h1", "h2"]), &BTreeMap::new()).unwrap();
    assert_eq!(
        placement(&p),
        [
            ("db-1".into(), "h1".into()),
            ("db-2".into(), "h2".into()),
            ("db-3".into(), "h1".into())
        ]
    );
    let addrs: Vec<String> = p
        .targets
        .values()
        .map(|t| format!("{}:{}", t.host, t.port.get()))
        .collect();
    assert_eq!(
        addrs,
        ["192.168.1.1:8080", "192.168.1.2:8080", "192.168.1.3:8080"]
    );
    assert!(
        p.instances
            .iter()
            .all(|i| i.links.len() == 3 && i.env[0].value == "rs0")
    );
}

#[test]
fn redeploy_keeps_hosts_and_addresses_and_removes_what_is_gone() {
    let mut d = fixture("replica_set.json");
    let first = plan(&d, &hosts(&["h1", "h2"]), &BTreeMap::new()).unwrap();
    let existing: BTreeMap<ContainerId, HostAddr> = first
        .instances
        .iter()
        .map(|i| (i.id.clone(), i.host.clone()))
        .collect();
    let again = plan(&d, &hosts(&["h2", "h1"]), &existing).unwrap();
    assert_eq!(placement(&again), placement(&first));
    d.containers[0].count = 2;
    let fewer = plan(&d, &hosts(&["h1", "h2"]), &existing).unwrap();
    assert_eq!(fewer.remove, [(id("db-3"), "h1".parse().unwrap())]);
    // Dropping a host moves nothing else and re-places its instances.
    let one = plan(&d, &hosts(&["h1"]), &existing).unwrap();
    assert_eq!(
        placement(&one),
        [("db-1".into(), "h1".into()), ("db-2".into(), "h1".into())]
    );
}

#[test]
fn recorded_addresses_are_kept() {
    let mut d = fixture("simple_deploy.json");
    d.instances = vec![super::super::Instance {
        id: "web-2".into(),
        image: "x".into(),
        from: "web".into(),
        on: Some("h2".into()),
        ports: vec![super::super::InstancePort {
            internal: PortNumber::try_from(8080).unwrap(),
            external: 4002,
            target: Some(Target {
                host: Ipv4Addr::new(127, 0, 0, 1),
                port: PortNumber::try_from(8080).unwrap(),
            }),
        }],
    }];
    let p = plan(&d, &hosts(&["h1", "h2"]), &BTreeMap::new()).unwrap();
    let port = PortNumber::try_from(8080).unwrap();
    assert_eq!(p.targets[&(id("web-2"), port)].port.get(), 8080);
    assert_eq!(p.targets[&(id("web-1"), port)].port.get(), 8081);
}

#[test]
fn refuses_what_cannot_work() {
    let d = fixture("simple_deploy.json");
    assert_eq!(
        plan(&d, &hosts(&["localhost", "h2"]), &BTreeMap::new()),
        Err(InvalidDeployment::LocalhostAmongMany)
    );
    let mut bad = d.clone();
    bad.containers[0].links[0].to = "nope".into();
    assert!(matches!(
        plan(&bad, &hosts(&["h1"]), &BTreeMap::new()),
        Err(InvalidDeployment::LinkTarget { .. })
    ));
    let mut bad = d.clone();
    bad.containers[0].name = "a-very-long-container-name".into();
    assert!(matches!(
        plan(&bad, &hosts(&["h1"]), &BTreeMap::new()),
        Err(InvalidDeployment::InstanceId(_))
    ));
    let mut bad = d.clone();
    bad.containers[0].affinity = Some("h9".into());
    assert!(matches!(
        plan(&bad, &hosts(&["h1"]), &BTreeMap::new()),
        Err(InvalidDeployment::Affinity { .. })
    ));
    let mut pinned = d;
    pinned.containers[0].affinity = Some("h2".into());
    let p = plan(&pinned, &hosts(&["h1", "h2"]), &BTreeMap::new()).unwrap();
    assert!(p.instances.iter().all(|i| i.host.to_string() == "h2"));
}

#[test]
fn instances_files_round_trip() {
    let text = r#"{"containers":[{"name":"web","image":"a","count":1}],"instances":[{"id":"web-1","image":"a","from":"web","on":"h1","ports":[{"internal":80,"external":4000,"target":{"host":"127.0.0.1","port":80}}]}]}"#;
    let d = Deployment::parse(text).unwrap();
    assert_eq!(Deployment::parse(&d.to_json()).unwrap(), d);
    assert!(d.to_json().contains("\"Instances\": ["));
    assert!(Deployment::parse(r#"{"RandomizeIds": true}"#).is_err());
}
