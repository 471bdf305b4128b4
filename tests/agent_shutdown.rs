//! The real `gear-api` finishes an install whose client went away before it exits on idle:
//! a fake Docker engine on a Unix socket pulls slowly, the client hangs up after the first
//! progress line, and the agent must carry the install past the pull before it exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake engine saw, in order, with when.
type Seen = Arc<Mutex<Vec<(String, Instant)>>>;

fn respond(mut s: std::os::unix::net::UnixStream, seen: &Seen) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers; gear's client sends no body to these calls.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let target = line.split(' ').nth(1).unwrap_or_default().to_string();
    seen.lock().unwrap().push((target.clone(), Instant::now()));
    let head = |status: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n")
    };
    if target.starts_with("/images/create") {
        // A slow pull: progress, a pause, more progress.
        let _ = write!(s, "{}Transfer-Encoding: chunked\r\n\r\n", head("200 OK"));
        for (i, pause) in [(1, 0u64), (2, 1500)] {
            std::thread::sleep(Duration::from_millis(pause));
            let msg = format!("{{\"status\":\"step {i}\"}}\n");
            let _ = write!(s, "{:x}\r\n{msg}\r\n", msg.len());
            let _ = s.flush();
        }
        let _ = write!(s, "0\r\n\r\n");
        seen.lock().unwrap().push(("pulled".into(), Instant::now()));
    } else if target == "/info" {
        let body = r#"{"CgroupDriver":"cgroupfs"}"#;
        let _ = write!(
            s,
            "{}Content-Length: {}\r\n\r\n{body}",
            head("200 OK"),
            body.len()
        );
    } else {
        let body = r#"{"message":"no such thing"}"#;
        let _ = write!(
            s,
            "{}Content-Length: {}\r\n\r\n{body}",
            head("404 Not Found"),
            body.len()
        );
    }
}

#[test]
fn an_install_whose_client_left_finishes_before_the_agent_exits() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("docker.sock");
    let engine = UnixListener::bind(&socket).unwrap();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in engine.incoming().flatten() {
            let seen = seen2.clone();
            std::thread::spawn(move || respond(s, &seen));
        }
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_gear-api"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--exit-idle-time",
            "200ms",
        ])
        .env("GEAR_ROOT", root.path())
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}/no-bus", root.path().display()),
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        assert!(Instant::now() < deadline, "gear-api did not listen");
        std::thread::sleep(Duration::from_millis(20));
    };
    let body = r#"{"Image":"slow/pull:1"}"#;
    write!(
        client,
        "PUT /container/web-1?progress=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read until the first progress line, then hang up mid-pull.
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("Progress") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "the answer ended before any progress");
        got.extend_from_slice(&buf[..n]);
    }
    drop(client);
    let left = Instant::now();

    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        assert!(
            left.elapsed() < Duration::from_secs(20),
            "the agent never exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let exited = Instant::now();
    assert!(status.success(), "{status}");
    let seen = seen.lock().unwrap();
    let at = |what: &str| seen.iter().find(|(t, _)| t == what).map(|(_, at)| *at);
    let pulled = at("pulled").expect("the pull was cut off when the client left");
    assert!(
        pulled > left && exited > pulled,
        "the agent exited before the pull ended"
    );
    // The install went on after the pull: it asked for the cgroup driver next.
    assert!(
        at("/info").is_some(),
        "the install stopped after the pull: {seen:?}"
    );
}
