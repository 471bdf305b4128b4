//! The agent's local Unix socket: root needs no token on it, even when loopback TCP does,
//! and `gear` prefers it for `localhost`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::{Agent, AgentOptions};

const SOCKET: &str = "run/gear/api.sock";

fn agent(extra: &[&'static str]) -> Agent {
    let mut args = vec!["--listen-unix", "{root}/run/gear/api.sock"];
    args.extend_from_slice(extra);
    Agent::start(AgentOptions {
        args,
        files: vec![("run/gear/.keep", "")],
        ..Default::default()
    })
}

/// Sends a raw HTTP/1.0 request over the Unix socket; returns (status, body).
fn over_socket(agent: &Agent, path: &str) -> (u16, String) {
    let mut s = UnixStream::connect(agent.path(SOCKET)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    (status, resp.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[test]
fn root_needs_no_token_on_the_socket_even_when_loopback_tcp_does() {
    assert_eq!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .map(|l| l.split_whitespace().nth(1) == Some("0")),
        Some(true),
        "this test runs as root"
    );
    let agent = agent(&["--loopback-needs-token"]);
    let (status, body) = agent.http("GET", "/nope", "", b"");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("even on loopback"), "{body}");
    let (status, body) = over_socket(&agent, "/nope");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn loopback_tcp_needs_no_token_by_default() {
    let agent = agent(&[]);
    assert_eq!(agent.http("GET", "/nope", "", b"").0, 404);
    assert_eq!(over_socket(&agent, "/nope").0, 404);
}

#[test]
fn gear_uses_the_socket_for_localhost() {
    let agent = agent(&["--loopback-needs-token"]);
    // The agent's TCP port is not 43273, so only the socket can reach it as `localhost`.
    let out = Command::new(env!("CARGO_BIN_EXE_gear"))
        .args(["list-units", "localhost"])
        .env("GEAR_ROOT", agent.root.path())
        .output()
        .unwrap();
    agent.assert_reached_by_list(&String::from_utf8_lossy(&out.stderr));
}

#[test]
fn another_user_is_refused_even_when_the_socket_mode_lets_it_connect() {
    let agent = agent(&[]);
    let socket = agent.path(SOCKET);
    // A loosened mode: the kernel now lets anyone connect; SO_PEERCRED still names them.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        agent.root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
        ])
        .args([
            "--unix-socket",
            socket.to_str().unwrap(),
            "http://localhost/nope",
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("uid 65534 is neither root nor in the group"),
        "{body}"
    );
}
