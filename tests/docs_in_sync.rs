//! Keeps the docs honest: every API route is in docs/api.md, every `Paths` method in
//! docs/disk-layout.md, and docs/containers.md shows a generated unit as it is generated.

use std::fs;

fn read(path: &str) -> String {
    fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_route_is_documented() {
    let source = read("src/api/request.rs");
    let doc = read("docs/api.md");
    let methods = ["GET ", "PUT ", "POST ", "PATCH ", "DELETE "];
    let mut routes = 0;
    // Each Request variant's doc comment starts with its route: /// `GET /containers...`
    for line in source.lines().map(str::trim) {
        let Some(route) = line.strip_prefix("/// `") else {
            continue;
        };
        if !methods.iter().any(|m| route.starts_with(m)) {
            continue;
        }
        let route = route.split(['`', '[', '?']).next().unwrap();
        routes += 1;
        assert!(
            doc.contains(&format!("`{route}")),
            "docs/api.md lacks `{route}`"
        );
    }
    assert!(routes > 0, "no routes found in src/api/request.rs");
}

#[test]
fn every_path_is_documented() {
    let source = read("src/paths.rs");
    let doc = read("docs/disk-layout.md");
    let mut methods = 0;
    for line in source.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub fn ") else {
            continue;
        };
        let name = rest.split('(').next().unwrap();
        if matches!(name, "new" | "system") {
            continue;
        }
        methods += 1;
        assert!(
            doc.contains(&format!("`{name}(")),
            "docs/disk-layout.md lacks `{name}()`"
        );
    }
    assert!(methods > 0);
}

#[test]
fn the_unit_in_containers_md_is_the_generated_one() {
    let golden = read("tests/fixtures/units/01-published-env-limits/expected/ctr-web-1.service");
    let start = golden.find("[Service]").unwrap();
    let end = golden[start..].find("\n\n").unwrap() + start;
    let service = &golden[start..end];
    assert!(
        read("docs/containers.md").contains(&format!("```ini\n{service}\n```")),
        "docs/containers.md does not show the [Service] section of {}",
        "tests/fixtures/units/01-published-env-limits/expected/ctr-web-1.service"
    );
}
