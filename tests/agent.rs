//! The real `gear-api` and `gear` binaries on the host, where no systemd runs: routing,
//! JSON errors, body limits, the CLI's messages and exit codes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A `gear-api` on a free loopback port, pointed at a D-Bus socket that does not exist.
struct Agent {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gear-api"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("GEAR_ROOT", root.path())
            .stderr(std::process::Stdio::null())
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}/no-bus", root.path().display()),
            )
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gear-api did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent {
            child,
            port,
            _root: root,
        }
    }

    /// Sends a raw HTTP/1.0 request; returns (status, body).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // A refused body may be cut short by the server; that is fine here.
        let _ = s.write_all(body);
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp[9..12].parse().unwrap();
        let body = resp.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    fn gear(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gear"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn errors_are_json_with_fitting_status() {
    let agent = Agent::start();
    let (status, body) = agent.http("GET", "/nope", b"");
    assert_eq!(status, 404);
    assert_eq!(body, "{\"Message\":\"no such resource: /nope\"}\n");
    let (status, body) = agent.http("PATCH", "/containers", b"");
    assert_eq!(status, 405);
    assert!(
        body.contains("method PATCH is not allowed on /containers"),
        "{body}"
    );
    let (status, _) = agent.http("GET", "/containers?all=maybe", b"");
    assert_eq!(status, 400);
    // No systemd here: the agent stays up and says what is missing.
    let (status, body) = agent.http("GET", "/containers", b"");
    assert_eq!(status, 500);
    assert!(body.contains("connecting to the system D-Bus"), "{body}");
}

#[test]
fn oversized_bodies_are_refused_and_the_agent_lives_on() {
    let agent = Agent::start();
    let (status, body) = agent.http("PUT", "/containers", &vec![b'x'; 20 * 1024 * 1024]);
    assert_eq!(status, 413);
    assert!(body.contains("larger than 1048576 bytes"), "{body}");
    assert_eq!(agent.http("GET", "/nope", b"").0, 404);
}

#[test]
fn list_units_reports_each_host_and_fails_when_one_does() {
    let agent = Agent::start();
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let live = format!("127.0.0.1:{}", agent.port);
    let out = agent.gear(&["list-units", &live, &format!("127.0.0.1:{dead}")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("error: {live}: connecting to the system D-Bus")),
        "{stderr}"
    );
    assert!(lines[1].contains("cannot reach the gear agent"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HOST  ID  ACTIVE  SUB  LOAD  JOB\n"
    );

    let out = agent.gear(&["list-units", "--json", &live]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["Host"], live.as_str());
    assert!(json[0]["Error"].as_str().unwrap().contains("D-Bus"));
}

#[test]
fn cli_rejects_bad_hosts_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_gear"))
        .args(["list-units", "host:99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'99999' is not a port"), "{stderr}");
}

#[test]
fn agent_refuses_to_start_without_a_socket() {
    let out = Command::new(env!("CARGO_BIN_EXE_gear-api"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no socket from systemd"));
}
