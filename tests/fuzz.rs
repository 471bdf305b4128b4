//! Fuzzing on stable Rust: bounded random-input tests of the code that reads what clients
//! send. Each target mutates a corpus of valid inputs (byte flips, hostile tokens such as
//! newlines, `%` specifiers and huge numbers, cuts and repeats) and checks that nothing
//! panics and that what parses round-trips, so no value can smuggle a second line into a
//! unit or an env file.
//!
//! Each target runs for `GEAR_FUZZ_SECS` seconds (default 1, so `cargo test` stays quick;
//! `make fuzz` runs longer). The seed is printed; `GEAR_FUZZ_SEED=N` replays a run.

use std::str::FromStr;
use std::time::{Duration, Instant};

use gear::api::Request;
use gear::container::environment::Environment;
use gear::container::ports::{PortRange, PortRequest};
use gear::container::spec::ContainerSpec;
use gear::container::unit;
use gear::docker::CgroupDriver;
use gear::links::NetworkLink;
use gear::paths::Paths;
use gear::unit_file::UnitFile;
use hyper::Method;

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that have broken parsers and renderers before, or could.
const HOSTILE: &[&str] = &[
    "\n",
    "\r\n",
    "\0",
    "%",
    "%n",
    "%%",
    ":",
    "::",
    "/",
    "//",
    "..",
    "=",
    "\"",
    "'",
    "\\",
    "\\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "-",
    "0",
    "-1",
    "65535",
    "65536",
    "99999999999999999999",
    " ",
    "\t",
    "#",
    ";",
    "\u{feff}",
    "é",
    "\u{202e}",
    "\nExecStartPre=/bin/false\n",
    "\"Image\":\"a\\nb\"",
    "null",
    "true",
    "[]",
    "{}",
    "?",
    "&",
    "all=1",
    "follow=0",
];

/// One to four mutations of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = rng.pick(HOSTILE).as_bytes();
                v.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.below(8)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(16)).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            4 => v.truncate(at),
            _ => v.insert(at.min(v.len()), rng.next() as u8),
        }
    }
    v
}

/// A mutation of one of `seeds`.
fn mutated<S: AsRef<[u8]>>(rng: &mut Rng, seeds: &[S]) -> Vec<u8> {
    let seed = rng.pick(seeds).as_ref().to_vec();
    mutate(rng, &seed)
}

/// Runs `check` on mutated inputs until the time budget is spent. `check` says whether the
/// input was accepted (parsed); some must be, or the target tests nothing past its first check.
fn fuzz(name: &str, mut check: impl FnMut(&mut Rng) -> bool) {
    let secs: f64 = std::env::var("GEAR_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let seed = std::env::var("GEAR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("fuzz {name}: GEAR_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut runs, mut accepted) = (0u64, 0u64);
    while Instant::now() < deadline {
        accepted += u64::from(check(&mut rng));
        runs += 1;
    }
    eprintln!("fuzz {name}: {runs} inputs, {accepted} accepted");
    assert!(accepted > 0, "no input of {runs} was accepted");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn request_parser() {
    let paths: &[&str] = &[
        "/containers",
        "/containers/links",
        "/container/web-1",
        "/container/web-1/status",
        "/container/web-1/log",
        "/container/web-1/started",
        "/container/web-1/restart",
        "/container/web-1/idle",
        "/container/web-1/idle-policy",
        "/environment/we_b.2",
    ];
    let queries: &[&str] = &[
        "",
        "all=1",
        "lines=5&follow=0&timeout=2s",
        "progress=1",
        "mode=freeze",
    ];
    let bodies: &[&str] = &[
        "",
        r#"{"Image":"gear-test/httpd:latest","Started":true,"Ports":[{"Internal":8080,"External":0}],"Environment":{"Variables":[{"Name":"A","Value":"b"}]},"Memory":"256M","CPUs":"0.5"}"#,
        r#"{"Variables":[{"Name":"GREETING","Value":"hi"}]}"#,
        r#"{"Links":[{"Id":"web-1","NetworkLinks":[{"FromHost":"127.0.0.2","FromPort":8081,"ToHost":"10.0.0.5","ToPort":4000}]}]}"#,
        r#"{"Mode":"stop","After":"10m"}"#,
    ];
    let methods = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
    ];
    fuzz("request", |rng| {
        let method = rng.pick(&methods).clone();
        let path = text(&mutated(rng, paths));
        let query = text(&mutated(rng, queries));
        let body = mutated(rng, bodies);
        let Ok(req) = Request::parse(&method, &path, Some(&query), &body) else {
            return false;
        };
        // What parsed is sent again by the CLI as it is rendered: it must mean the same.
        let again = req.path_and_query();
        let (p, q) = again.split_once('?').unwrap_or((&again, ""));
        let body = req.body().unwrap_or_default();
        let reparsed = Request::parse(&req.method(), p, Some(q), &body);
        assert_eq!(
            reparsed.as_ref().ok(),
            Some(&req),
            "{method} {path}?{query}"
        );
        true
    });
}

#[test]
fn unit_renderer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/units");
    let specs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|c| std::fs::read(c.unwrap().path().join("spec.json")).unwrap())
        .collect();
    let drivers = [CgroupDriver::Cgroupfs, CgroupDriver::Systemd];
    fuzz("unit", |rng| {
        let json = mutated(rng, &specs);
        let Ok(spec) = serde_json::from_slice::<ContainerSpec>(&json) else {
            return false;
        };
        let driver = *rng.pick(&drivers);
        let Ok(unit) = unit::render(&spec, &Paths::new("/"), driver) else {
            return false;
        };
        // Parsing the text gives back exactly the model: no value added a line or a key.
        let rendered = unit.render();
        assert_eq!(
            UnitFile::parse(&rendered).as_ref().ok(),
            Some(&unit),
            "{rendered}"
        );
        true
    });
}

#[test]
fn link_port_and_environment_parsers() {
    let links = [
        "8081:10.0.0.5:4000",
        "127.0.0.2:8081:localhost:4000",
        "80:db.example:5432",
    ];
    let ports = ["8080:0", "53:4001", "1:65535"];
    let ranges = ["4000-60000", "1-1"];
    let envs = [
        "A=B\n# c\n\nB=\"x\\ny\"\n",
        "  GREETING='hi there'\n",
        "\u{feff}X=1",
    ];
    fuzz("parsers", |rng| {
        let mut accepted = false;
        let s = text(&mutated(rng, &links));
        if let Ok(link) = NetworkLink::from_str(&s) {
            accepted = true;
            assert_eq!(
                link.to_string().parse::<NetworkLink>().as_ref(),
                Ok(&link),
                "{s}"
            );
        }
        let s = text(&mutated(rng, &ports));
        if let Ok(p) = PortRequest::from_str(&s) {
            assert!(p.internal.get() > 0, "{s}");
        }
        let s = text(&mutated(rng, &ranges));
        if let Ok(r) = PortRange::from_str(&s) {
            assert_eq!(r.to_string().parse::<PortRange>(), Ok(r), "{s}");
        }
        let s = text(&mutated(rng, &envs));
        if let Ok(env) = Environment::parse(&s) {
            // One line per variable: no value carries a newline into the env file.
            let rendered = env.render();
            assert_eq!(rendered.lines().count(), env.variables().len(), "{s:?}");
        }
        if let Ok(v) = Environment::parse_assignment(&s) {
            assert!(!v.value.contains('\n') && !v.name.is_empty(), "{s:?}");
        }
        accepted
    });
}
