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
