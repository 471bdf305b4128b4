//! TLS between `gear` and an agent with a certificate from `gear init-tls`: a pinned
//! fingerprint lets the CLI in, a wrong one stops it before it sends anything, and plain
//! loopback HTTP (geard's curl) keeps working beside TLS on the same port.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{Agent, AgentOptions};

fn agent() -> Agent {
    Agent::start(AgentOptions {
        init_tls: true,
        ..Default::default()
    })
}

/// The fingerprint `gear init-tls` prints for the agent's certificate (it keeps it).
fn fingerprint(agent: &Agent) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gear"))
        .arg("init-tls")
        .env("GEAR_ROOT", agent.root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exists: kept"), "{stderr}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs `gear ARGS` with a home whose hosts file is `hosts`.
fn gear(home: &std::path::Path, hosts: &str, args: &[&str]) -> Output {
    let dir = home.join(".config/gear");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    std::fs::set_permissions(dir.join("hosts"), std::fs::Permissions::from_mode(0o600)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_gear"))
        .args(args)
        .env("HOME", home)
        .env_remove("GEAR_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn a_pinned_agent_is_reached_over_tls_and_a_wrong_pin_is_refused() {
    let agent = agent();
    let fp = fingerprint(&agent);
    assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 95, "{fp}");
    let home = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{}", agent.port);

    let out = gear(
        home.path(),
        &format!("{target} fingerprint={fp} token=0123456789abcdef0123\n"),
        &["list-units", &target],
    );
    // No D-Bus behind the agent: its error proves the request went through.
    agent.assert_reached_by_list(&String::from_utf8_lossy(&out.stderr));

    let wrong = format!("SHA256:{}", ["AB"; 32].join(":"));
    let out = gear(
        home.path(),
        &format!("{target} fingerprint={wrong}\n"),
        &["list-units", &target],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("its certificate {fp} is not the one pinned")),
        "{stderr}"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        agent.stderr().matches("GET /containers").count(),
        1,
        "{}",
        agent.stderr()
    );
}

#[test]
fn plain_loopback_http_still_works_beside_tls() {
    let agent = agent();
    let (status, body) = agent.http("GET", "/nope", "", b"");
    assert_eq!(status, 404, "{body}");
    // And the CLI speaks plain HTTP to loopback when it has no pin.
    let home = tempfile::tempdir().unwrap();
    let out = gear(
        home.path(),
        "",
        &["list-units", &format!("127.0.0.1:{}", agent.port)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("connecting to the system D-Bus"),
        "{stderr}"
    );
}

#[test]
fn a_hosts_file_with_tokens_others_can_read_stops_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/gear");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts"), "web1 token=0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(dir.join("hosts"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gear"))
        .args(["list-units", "127.0.0.1:1"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{out:?}"
    );
}
