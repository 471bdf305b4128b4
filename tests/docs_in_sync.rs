//! Keeps the docs honest: every API route (method and path, whole) is in docs/api.md, every
//! `Paths` method in docs/disk-layout.md, and docs/containers.md shows a generated unit as
//! it is generated.

use std::fs;

fn read(path: &str) -> String {
    fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_route_is_documented() {
    let doc = read("docs/api.md");
    let examples = gear::api::Request::examples();
    for req in &examples {
        // Each route, method and path whole, as the agent parses it.
        let route = req.route();
        assert!(
            doc.contains(&format!("`{route}`")),
            "docs/api.md lacks `{route}`"
        );
        let path = req.path_and_query();
        let (path, query) = path
            .split_once('?')
            .map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
        let body = req.body().unwrap_or_default();
        let parsed = gear::api::Request::parse(&req.method(), path, query, &body).unwrap();
        assert_eq!(parsed.route(), route);
    }
    assert!(examples.len() >= 18, "an example per route and method");
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
