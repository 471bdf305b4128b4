use super::*;

fn id(s: &str) -> ContainerId {
    s.parse().unwrap()
}

#[test]
fn the_same_id_gets_the_same_level() {
    let a = pick(&id("web-1"), []).unwrap();
    assert_eq!(pick(&id("web-1"), []).unwrap(), a);
    // A fixed hash: the same level on every host and every build.
    assert_eq!(a.to_string(), pick(&id("web-1"), &[]).unwrap().to_string());
}

#[test]
fn levels_have_two_distinct_categories_in_range() {
    for n in [0, 1, 1022, 1023, PAIRS / 2, PAIRS - 1] {
        let l = McsLevel::nth(n);
        assert!(l.low < l.high && l.high < CATEGORIES, "{n}: {l}");
    }
    assert_eq!(McsLevel::nth(0).to_string(), "s0:c0,c1");
    assert_eq!(McsLevel::nth(1022).to_string(), "s0:c0,c1023");
    assert_eq!(McsLevel::nth(1023).to_string(), "s0:c1,c2");
    assert_eq!(McsLevel::nth(PAIRS - 1).to_string(), "s0:c1022,c1023");
}

#[test]
fn many_containers_get_unique_levels() {
    let mut taken = vec![];
    for n in 0..2000 {
        let level = pick(&id(&format!("ctr-{n:04}")), &taken).unwrap();
        assert!(
            !taken.contains(&level),
            "ctr-{n:04} got {level}, already taken"
        );
        taken.push(level);
    }
}

#[test]
fn a_collision_takes_the_next_free_level() {
    let first = pick(&id("db-1"), []).unwrap();
    let second = pick(&id("db-1"), [&first]).unwrap();
    assert_ne!(first, second);
    let third = pick(&id("db-1"), [&first, &second]).unwrap();
    assert!(third != first && third != second);
    // Wrapping past the last pair.
    let all_but_first: Vec<McsLevel> = (1..PAIRS).map(McsLevel::nth).collect();
    assert_eq!(pick(&id("db-1"), &all_but_first), Some(McsLevel::nth(0)));
    let all: Vec<McsLevel> = (0..PAIRS).map(McsLevel::nth).collect();
    assert_eq!(pick(&id("db-1"), &all), None);
}

#[test]
fn levels_parse_and_print_alike() {
    let l: McsLevel = "s0:c12,c345".parse().unwrap();
    assert_eq!(l.to_string(), "s0:c12,c345");
    assert_eq!(l.docker_option(), "label=level:s0:c12,c345");
    for bad in [
        "",
        "s0",
        "s0:c1",
        "s0:c2,c1",
        "s0:c1,c1",
        "s0:c1,c1024",
        "s1:c1,c2",
        "s0:c+1,c2",
        "s0:1,2",
    ] {
        assert!(bad.parse::<McsLevel>().is_err(), "{bad}");
    }
}

#[test]
fn selinux_is_enabled_when_selinuxfs_has_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Selinux::at(dir.path()), Selinux::Disabled);
    std::fs::write(dir.path().join("enforce"), "1").unwrap();
    assert_eq!(Selinux::at(dir.path()), Selinux::Enabled);
}

// The reservation store.

use crate::paths::Paths;

/// A spec on disk, as an install before the store existed left it.
fn write_spec(paths: &Paths, name: &str, level: McsLevel) {
    let json = format!(r#"{{"Id":"{name}","Image":"img","Ports":[],"SELinuxLevel":"{level}"}}"#);
    std::fs::create_dir_all(paths.specs_dir()).unwrap();
    std::fs::write(paths.spec_file(&id(name)), json).unwrap();
}

/// `count` pairs of ids whose walks start at the same level.
fn colliding_ids(count: usize) -> Vec<(ContainerId, ContainerId)> {
    let mut seen = std::collections::HashMap::new();
    let mut pairs = vec![];
    for n in 0.. {
        let this = id(&format!("ctr-{n}"));
        let start = walk(&this).next().unwrap();
        if let Some(first) = seen.insert(start, this.clone()) {
            pairs.push((first, this));
            if pairs.len() == count {
                break;
            }
        }
    }
    pairs
}

#[test]
fn a_reserve_takes_the_ids_level_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let levels = Levels::new(&paths);
    let got = levels.reserve(&id("web-1")).unwrap().unwrap();
    assert_eq!(got.level, pick(&id("web-1"), []).unwrap());
    assert!(got.created);
    assert_eq!(levels.owner(got.level).unwrap().as_deref(), Some("web-1"));
    // Again (an install that failed before its commit, retried): the same, not made again.
    let again = levels.reserve(&id("web-1")).unwrap().unwrap();
    assert_eq!((again.level, again.created), (got.level, false));
    assert_eq!(
        levels.all().unwrap(),
        vec![(got.level, "web-1".to_string())]
    );
}

#[test]
fn a_held_level_sends_the_next_id_on_to_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let levels = Levels::new(&paths);
    let (a, b) = colliding_ids(1).pop().unwrap();
    let la = levels.reserve(&a).unwrap().unwrap().level;
    let lb = levels.reserve(&b).unwrap().unwrap().level;
    assert_ne!(la, lb);
    assert_eq!(lb, pick(&b, [&la]).unwrap());
}

#[test]
fn concurrent_reserves_never_share_a_level() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    // Pairs of ids that start at the same level, each pair split over two threads.
    let (firsts, seconds): (Vec<_>, Vec<_>) = colliding_ids(8).into_iter().unzip();
    // Built first, so the threads race for levels, not for building the store.
    Levels::new(&paths).release(&id("nobody")).unwrap();
    let barrier = std::sync::Barrier::new(2);
    let mut all: Vec<(ContainerId, McsLevel)> = std::thread::scope(|s| {
        let run = |ids: Vec<ContainerId>| {
            let (paths, barrier) = (&paths, &barrier);
            s.spawn(move || {
                barrier.wait();
                ids.into_iter()
                    .map(|i| {
                        let level = Levels::new(paths).reserve(&i).unwrap().unwrap().level;
                        (i, level)
                    })
                    .collect::<Vec<_>>()
            })
        };
        let (one, two) = (run(firsts), run(seconds));
        let mut all = one.join().unwrap();
        all.extend(two.join().unwrap());
        all
    });
    let levels: std::collections::HashSet<McsLevel> = all.iter().map(|(_, l)| *l).collect();
    assert_eq!(levels.len(), 16, "{all:?}");
    all.sort();
    for (holder, level) in all {
        let owner = Levels::new(&paths).owner(level).unwrap();
        assert_eq!(owner.as_deref(), Some(holder.as_str()));
    }
}

#[test]
fn release_removes_only_the_ids_levels() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let levels = Levels::new(&paths);
    let a = levels.reserve(&id("app-a")).unwrap().unwrap().level;
    let b = levels.reserve(&id("app-b")).unwrap().unwrap().level;
    // A second entry of app-a's, as a crash before an install's commit can leave.
    let spare = pick(&id("app-a"), [&a, &b]).unwrap();
    assert!(levels.keep(&id("app-a"), spare).unwrap().created);
    levels.release(&id("app-a")).unwrap();
    assert_eq!(levels.all().unwrap(), vec![(b, "app-b".to_string())]);
    // Only the holder releases a level.
    levels.release_level(&id("app-a"), b).unwrap();
    assert_eq!(levels.owner(b).unwrap().as_deref(), Some("app-b"));
    levels.release_level(&id("app-b"), b).unwrap();
    assert!(levels.all().unwrap().is_empty());
}

#[test]
fn without_a_store_it_is_built_once_from_the_specs() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let wanted = pick(&id("app-x"), []).unwrap();
    write_spec(&paths, "app-y", wanted);
    write_spec(&paths, "app-z", McsLevel::nth(7));
    // Two containers given the same level by a race before the store: both keep it.
    write_spec(&paths, "app-w", McsLevel::nth(7));
    std::fs::write(paths.specs_dir().join("junk.json"), "not json").unwrap();
    let levels = Levels::new(&paths);
    let x = levels.reserve(&id("app-x")).unwrap().unwrap();
    assert_ne!(x.level, wanted, "app-y's level, recorded only in its spec");
    let all = levels.all().unwrap();
    assert!(all.contains(&(wanted, "app-y".to_string())), "{all:?}");
    assert!(all.iter().any(|(l, _)| *l == McsLevel::nth(7)), "{all:?}");
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(!levels.keep(&id("app-w"), McsLevel::nth(7)).unwrap().created);
    assert!(!levels.keep(&id("app-z"), McsLevel::nth(7)).unwrap().created);
    // Built in a hidden directory renamed into place: nothing of it is left beside.
    let names: Vec<String> = std::fs::read_dir(paths.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".mcs")), "{names:?}");
    // Once it exists, the specs are not read again: a level recorded behind gear's back
    // is not seen.
    let later = pick(&id("app-v"), []).unwrap();
    write_spec(&paths, "app-u", later);
    assert_eq!(levels.reserve(&id("app-v")).unwrap().unwrap().level, later);
}

#[test]
fn concurrent_builders_agree_on_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    for n in 0..50 {
        write_spec(&paths, &format!("old-{n}"), McsLevel::nth(n));
    }
    let barrier = std::sync::Barrier::new(4);
    let got: Vec<McsLevel> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (paths, barrier) = (&paths, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let new = id(&format!("new-{t}"));
                    Levels::new(paths).reserve(&new).unwrap().unwrap().level
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all = Levels::new(&paths).all().unwrap();
    assert_eq!(all.len(), 54, "{all:?}");
    for (t, level) in got.iter().enumerate() {
        assert!(all.contains(&(*level, format!("new-{t}"))), "{all:?}");
    }
    for n in 0..50 {
        assert!(
            all.contains(&(McsLevel::nth(n), format!("old-{n}"))),
            "{all:?}"
        );
    }
    let names: Vec<String> = std::fs::read_dir(paths.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".mcs")), "{names:?}");
}
