//! Golden tests of generated container units: every `tests/fixtures/units/*/spec.json` is
//! rendered and compared with `expected/ctr-<id>.service`. Set `GEAR_BLESS=1` to rewrite
//! the expected files after an intended change (and review the diff).

use std::fs;
use std::path::Path;

use gear::container::spec::ContainerSpec;
use gear::container::unit;
use gear::docker::CgroupDriver;
use gear::paths::Paths;

#[test]
fn rendered_units_match_the_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/units");
    let mut cases = 0;
    for case in fs::read_dir(&dir).unwrap() {
        let case = case.unwrap().path();
        let spec: ContainerSpec =
            serde_json::from_slice(&fs::read(case.join("spec.json")).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        // The engine's cgroup driver: `cgroup-driver` in the case, else cgroupfs.
        let driver = match fs::read_to_string(case.join("cgroup-driver"))
            .as_deref()
            .map(str::trim)
        {
            Ok("systemd") => CgroupDriver::Systemd,
            _ => CgroupDriver::Cgroupfs,
        };
        let rendered = unit::render(&spec, &Paths::new("/"), driver)
            .unwrap()
            .render();
        let expected_path = case.join("expected").join(spec.id.unit_name());
        if std::env::var_os("GEAR_BLESS").is_some() {
            fs::write(&expected_path, &rendered).unwrap();
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        assert_eq!(
            rendered,
            expected,
            "{} differs from the golden file",
            case.display()
        );
        cases += 1;
    }
    assert!(cases >= 3, "no golden cases found in {}", dir.display());
}
