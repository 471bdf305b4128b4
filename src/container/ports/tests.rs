//! Tests of `ports`.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;
use crate::id::ContainerId;
use crate::paths::Paths;

#[test]
fn ranges_parse() {
    assert_eq!(
        "4000-60000".parse::<PortRange>().unwrap(),
        PortRange::default()
    );
    assert_eq!(
        "80-80".parse::<PortRange>().unwrap(),
        PortRange {
            first: 80,
            last: 80
        }
    );
    for bad in ["", "4000", "0-10", "10-5", "a-b", "1-70000"] {
        assert!(bad.parse::<PortRange>().is_err(), "{bad:?} accepted");
    }
}

fn id(s: &str) -> ContainerId {
    s.parse().unwrap()
}

fn port(n: u16) -> PortNumber {
    PortNumber::try_from(n).unwrap()
}

fn pair(internal: u16, external: u16) -> PortPair {
    PortPair {
        internal: port(internal),
        external: port(external),
    }
}

fn reqs(list: &[&str]) -> Vec<PortRequest> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn range(first: u16, last: u16) -> PortRange {
    PortRange { first, last }
}

fn root() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    (dir, paths)
}

#[test]
fn parses_cli_mappings() {
    let r: PortRequest = "8080:0".parse().unwrap();
    assert_eq!((r.internal, r.requested_external()), (port(8080), None));
    let r: PortRequest = "8080:4000".parse().unwrap();
    assert_eq!(r.requested_external(), Some(port(4000)));
    for bad in [
        "8080",
        "a:b",
        "0:80",
        "8080:70000",
        "",
        ":",
        "+80:0",
        "80:-1",
        "80:1:2",
    ] {
        assert!(bad.parse::<PortRequest>().is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        "8080".parse::<PortRequest>(),
        Err(InvalidPort::Mapping("8080".into()))
    );
    assert_eq!(
        "8080:70000".parse::<PortRequest>(),
        Err(InvalidPort::Number("70000".into()))
    );
    assert_eq!("65535".parse::<PortNumber>(), Ok(port(65535)));
    assert!("0".parse::<PortNumber>().is_err());
}

#[test]
fn json_is_geards() {
    let r: PortRequest = serde_json::from_str(r#"{"Internal":8080}"#).unwrap();
    assert_eq!(r.external, 0);
    assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"Internal":8080}"#);
    let r: PortRequest = serde_json::from_str(r#"{"Internal":80,"External":4000}"#).unwrap();
    assert_eq!(r.requested_external(), Some(port(4000)));
    assert!(serde_json::from_str::<PortRequest>(r#"{"Internal":0}"#).is_err());
    assert!(serde_json::from_str::<PortRequest>(r#"{"Internal":1,"External":70000}"#).is_err());
    assert_eq!(
        serde_json::to_string(&pair(80, 4000)).unwrap(),
        r#"{"Internal":80,"External":4000}"#
    );
}

#[test]
fn allocates_reuses_and_releases() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, range(5000, 5009));
    let web = id("web-1");
    let pairs = ports.reserve(&web, &reqs(&["443:0", "80:0"])).unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(
        (pairs[0].internal, pairs[1].internal),
        (port(80), port(443))
    );
    assert_ne!(pairs[0].external, pairs[1].external);
    assert!(
        pairs
            .iter()
            .all(|p| (5000..=5009).contains(&p.external.get()))
    );
    assert_eq!(ports.reserved(&web).unwrap(), pairs);
    // The storage format: a symlink per host port whose target names owner and internal port.
    let link = paths.ports_dir().join(pairs[0].external.to_string());
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("web-1:80"));
    // Reserving the same again changes nothing.
    assert_eq!(
        ports.reserve(&web, &reqs(&["80:0", "443:0"])).unwrap(),
        pairs
    );
    ports.release(&web).unwrap();
    assert!(ports.reserved(&web).unwrap().is_empty());
    assert_eq!(fs::read_dir(paths.ports_dir()).unwrap().count(), 0);
    ports.release(&web).unwrap();
}

#[test]
fn reinstall_keeps_the_external_port_of_an_internal_port() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, PortRange::default());
    let web = id("web-1");
    let first = ports.reserve(&web, &reqs(&["80:0", "443:0"])).unwrap();
    let second = ports.reserve(&web, &reqs(&["80:0", "8443:0"])).unwrap();
    assert_eq!(second[0], first[0]);
    assert_eq!(second[1].internal, port(8443));
    assert_eq!(ports.all().unwrap().len(), 2, "443's port was not released");
    // An explicit new host port moves the pair and frees the old one.
    let third = ports.reserve(&web, &reqs(&["80:7000"])).unwrap();
    assert_eq!(third, vec![pair(80, 7000)]);
    assert_eq!(
        ports.all().unwrap(),
        vec![(port(7000), web.clone(), port(80))]
    );
    // A host port the container holds can be given to another of its internal ports.
    let fourth = ports.reserve(&web, &reqs(&["81:7000", "80:0"])).unwrap();
    assert_eq!(fourth[1], pair(81, 7000));
    assert_ne!(fourth[0].external, port(7000));
}

#[test]
fn a_port_taken_by_another_container_is_in_use_and_nothing_changes() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, range(5000, 5009));
    let (a, b) = (id("ctr-a"), id("ctr-b"));
    ports.reserve(&a, &reqs(&["80:6000"])).unwrap();
    ports.reserve(&b, &reqs(&["22:0"])).unwrap();
    let before = ports.all().unwrap();
    match ports.reserve(&b, &reqs(&["22:0", "80:6000"])) {
        Err(PortError::InUse { port: p, owner }) => {
            assert_eq!((p, owner.as_str()), (port(6000), "ctr-a"));
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert_eq!(ports.all().unwrap(), before);
    assert_eq!(ports.reserved(&a).unwrap(), vec![pair(80, 6000)]);
}

#[test]
fn release_leaves_other_containers_ports() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, range(5000, 5009));
    let (a, b) = (id("ctr-a"), id("ctr-b"));
    ports.reserve(&a, &reqs(&["80:0", "81:0"])).unwrap();
    let held = ports.reserve(&b, &reqs(&["80:0", "81:0"])).unwrap();
    ports.release(&a).unwrap();
    assert_eq!(ports.reserved(&b).unwrap(), held);
    assert_eq!(ports.all().unwrap().len(), 2);
}

#[test]
fn a_failure_rolls_back_what_the_call_created() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, range(5000, 5001));
    let (a, b) = (id("ctr-a"), id("ctr-b"));
    ports.reserve(&b, &reqs(&["1:5005"])).unwrap();
    let held = ports.reserve(&a, &reqs(&["80:0"])).unwrap();
    // The first pair's entry is created, then the second pair fails.
    let err = ports.reserve(&a, &reqs(&["443:7000", "8080:5005"]));
    assert!(matches!(err, Err(PortError::InUse { .. })), "{err:?}");
    assert!(!paths.ports_dir().join("7000").exists());
    assert_eq!(ports.reserved(&a).unwrap(), held);
    // A retargeted entry is put back too.
    ports.reserve(&b, &reqs(&["1:5005", "2:0"])).unwrap();
    let err = ports.reserve(&a, &reqs(&["81:7000", "443:0", "444:0"]));
    assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
    assert!(!paths.ports_dir().join("7000").exists());
    assert_eq!(ports.reserved(&a).unwrap(), held);
    assert_eq!(ports.reserved(&b).unwrap().len(), 2);
}

#[test]
fn a_full_range_is_exhausted() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, range(5000, 5001));
    let (a, b) = (id("ctr-a"), id("ctr-b"));
    ports.reserve(&a, &reqs(&["1:0", "2:0"])).unwrap();
    let err = ports.reserve(&b, &reqs(&["80:0"]));
    assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
    let err = ports.reserve(&a, &reqs(&["1:0", "2:0", "3:0"]));
    assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
    assert_eq!(ports.reserved(&a).unwrap().len(), 2);
    // Explicit host ports need not be in the range.
    assert_eq!(
        ports.reserve(&b, &reqs(&["80:80"])).unwrap(),
        vec![pair(80, 80)]
    );
    // A port the container gives up is handed to its new internal port.
    assert_eq!(ports.reserve(&a, &reqs(&["1:0", "3:0"])).unwrap().len(), 2);
    let empty = Ports::new(&paths, range(10, 9));
    let err = empty.reserve(&b, &reqs(&["81:0"]));
    assert!(matches!(err, Err(PortError::Exhausted { .. })), "{err:?}");
}

#[test]
fn rejects_duplicates_in_one_request() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, PortRange::default());
    let a = id("ctr-a");
    let err = ports.reserve(&a, &reqs(&["80:0", "80:5000"]));
    assert!(matches!(err, Err(PortError::DuplicateInternal(p)) if p == port(80)));
    let err = ports.reserve(&a, &reqs(&["80:5000", "81:5000"]));
    assert!(matches!(err, Err(PortError::DuplicateExternal(p)) if p == port(5000)));
    assert!(ports.all().unwrap().is_empty());
}

#[test]
fn entries_that_name_no_container_hold_their_port_and_stay() {
    let (_dir, paths) = root();
    let dir = paths.ports_dir();
    fs::create_dir_all(dir.join("interfaces/1/50")).unwrap();
    symlink("garbage", dir.join("5000")).unwrap();
    fs::write(dir.join("5001"), "").unwrap();
    let ports = Ports::new(&paths, range(5000, 5002));
    let a = id("ctr-a");
    assert_eq!(
        ports.reserve(&a, &reqs(&["80:0"])).unwrap(),
        vec![pair(80, 5002)]
    );
    assert!(matches!(
        ports.reserve(&a, &reqs(&["80:5000"])),
        Err(PortError::InUse { owner, .. }) if owner == "garbage"
    ));
    ports.release(&a).unwrap();
    assert!(ports.all().unwrap().is_empty());
    assert!(dir.join("5000").symlink_metadata().is_ok());
    assert!(dir.join("5001").exists());
}

#[test]
fn concurrent_installs_get_distinct_ports() {
    let (_dir, paths) = root();
    let ports = Ports::new(&paths, range(20000, 20199));
    let requests = reqs(&[
        "1:0", "2:0", "3:0", "4:0", "5:0", "6:0", "7:0", "8:0", "9:0", "10:0",
    ]);
    let results: Vec<Vec<PortPair>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (ports, requests) = (&ports, &requests);
                s.spawn(move || {
                    ports
                        .reserve(&id(&format!("ctr-{i:02}")), requests)
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let externals: HashSet<PortNumber> = results.iter().flatten().map(|p| p.external).collect();
    assert_eq!(externals.len(), 160);
    let all = ports.all().unwrap();
    assert_eq!(all.len(), 160);
    for (i, pairs) in results.iter().enumerate() {
        assert_eq!(&ports.reserved(&id(&format!("ctr-{i:02}"))).unwrap(), pairs);
    }
}

#[test]
fn a_reserve_told_what_the_container_holds_reads_only_those_entries() {
    let (_d, paths) = root();
    let store = || Ports::new(&paths, range(5000, 5003));
    let web = id("web-1");
    let first = store().reserve(&web, &reqs(&["80:0", "443:0"])).unwrap();
    store().reserve(&id("db-1"), &reqs(&["5432:0"])).unwrap();
    let held: Vec<PortNumber> = first.iter().map(|p| p.external).collect();
    // Re-installed with what its spec publishes: the same ports, kept stable.
    let again = store()
        .holding(held.clone())
        .reserve(&web, &reqs(&["80:0", "443:0"]))
        .unwrap();
    assert_eq!(again, first);
    // A port it no longer asks for is released; a new one never takes another's.
    let fewer = store()
        .holding(held)
        .reserve(&web, &reqs(&["80:0", "8080:0"]))
        .unwrap();
    assert_eq!(fewer[0], first[0]);
    let all = store().all().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().filter(|(_, o, _)| o == &web).count() == 2);
    assert!(
        all.iter()
            .any(|(_, o, i)| o == &id("db-1") && *i == port(5432))
    );
    // A hint naming another's entry takes nothing from it.
    let db_port = all.iter().find(|(_, o, _)| o == &id("db-1")).unwrap().0;
    let web_now: Vec<PortNumber> = fewer.iter().map(|p| p.external).collect();
    store()
        .holding(web_now.into_iter().chain([db_port]))
        .reserve(&web, &reqs(&["80:0"]))
        .unwrap();
    assert!(
        store()
            .all()
            .unwrap()
            .iter()
            .any(|(e, o, _)| *e == db_port && o == &id("db-1"))
    );
    // An entry of its own the hint leaves out stays until its release.
    let (_d2, paths2) = root();
    let store2 = || Ports::new(&paths2, range(5000, 5003));
    store2().reserve(&web, &reqs(&["80:0"])).unwrap();
    store2()
        .holding([])
        .reserve(&web, &reqs(&["81:0"]))
        .unwrap();
    assert_eq!(store2().reserved(&web).unwrap().len(), 2);
    store2().release(&web).unwrap();
    assert!(store2().reserved(&web).unwrap().is_empty());
}

#[test]
fn allocations_skip_the_ports_to_avoid_but_named_ports_are_given() {
    let (_d, paths) = root();
    let avoid = Some(range(5002, 5007));
    assert_eq!(range(5000, 5009).len_without(avoid), 4);
    assert_eq!(range(5000, 5009).len_without(Some(range(1, 60000))), 0);
    assert_eq!(range(5000, 5009).len_without(Some(range(6000, 7000))), 10);
    let store = || Ports::new(&paths, range(5000, 5009)).avoiding(avoid);
    let mut got = HashSet::new();
    for n in 0..4 {
        let pairs = store()
            .reserve(&id(&format!("app-{n}")), &reqs(&["80:0"]))
            .unwrap();
        got.insert(pairs[0].external.get());
    }
    assert_eq!(got, HashSet::from([5000, 5001, 5008, 5009]));
    // Only avoided ports are left: an allocation finds none, a named one is still given.
    assert!(matches!(
        store().reserve(&id("app-9"), &reqs(&["80:0"])),
        Err(PortError::Exhausted { .. })
    ));
    let named = store().reserve(&id("app-9"), &reqs(&["80:5003"])).unwrap();
    assert_eq!(named[0].external.get(), 5003);
}

#[test]
fn the_kernels_ephemeral_range_is_read() {
    // Every Linux has it; the default is 32768-60999.
    let e = PortRange::ephemeral().expect("ip_local_port_range");
    assert!(e.len_without(None) > 0);
}
