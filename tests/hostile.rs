//! The real `gear-api` against clients that hold on to it: idle and slow connections, more
//! connections than it serves, file descriptors running out, log readers that stop reading.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Agent, AgentOptions, closed_within};

const UNIT: &str = "var/lib/containers/units/ctr-web-1.service";

#[test]
fn idle_slow_and_kept_alive_connections_are_closed_after_the_header_timeout() {
    let agent = Agent::start(AgentOptions {
        args: vec!["--header-timeout", "1s"],
        ..Default::default()
    });
    let start = Instant::now();
    // Sends nothing at all.
    let mut idle = agent.connect();
    // Sends half a request head, then nothing.
    let mut slow = agent.connect();
    slow.write_all(b"GET /containers HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    for (what, s) in [("idle", &mut idle), ("slow", &mut slow)] {
        let t = closed_within(s, Duration::from_secs(8));
        assert!(t.is_some(), "the {what} connection is still open after 8 s");
        let open_for = start.elapsed();
        assert!(
            open_for >= Duration::from_millis(900),
            "{what}: {open_for:?}"
        );
    }
    // One whole request on a kept-alive connection is answered; then the connection is
    // closed when no next request comes.
    let mut kept = agent.connect();
    kept.write_all(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 404");
    let answered = Instant::now();
    assert!(
        closed_within(&mut kept, Duration::from_secs(8)).is_some(),
        "the kept-alive connection is still open after 8 s"
    );
    assert!(answered.elapsed() >= Duration::from_millis(900));
}

#[test]
fn connections_beyond_the_cap_wait_until_one_ends() {
    let agent = Agent::start(AgentOptions {
        args: vec!["--max-connections", "2"],
        ..Default::default()
    });
    let held: Vec<_> = (0..2).map(|_| agent.connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = agent.connect();
    waiting.write_all(b"GET /nope HTTP/1.0\r\n\r\n").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 12];
    assert!(
        waiting.read_exact(&mut buf).is_err(),
        "a third connection was served while two were held"
    );
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[9..], b"404");
}

#[test]
fn running_out_of_file_descriptors_neither_spins_nor_floods_the_log() {
    // 32 descriptors, 60 idle clients: accept fails with EMFILE while they are held. Before
    // the back-off this spun a full core and logged a line per failure (about 30 000 lines
    // a second in a debug build).
    let agent = Agent::start(AgentOptions {
        nofile: Some(32),
        ..Default::default()
    });
    let held: Vec<_> = (0..60).map(|_| agent.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let cpu = agent.cpu_seconds();
    std::thread::sleep(Duration::from_secs(2));
    let used = agent.cpu_seconds() - cpu;
    assert!(used < 0.3, "the agent used {used:.2} s of CPU in 2 s");
    let log = agent.stderr();
    let failures = log.matches("accept failed").count();
    assert!(failures <= 2, "{failures} accept failures logged");
    assert!(
        failures >= 1,
        "no descriptor ran out; the test proves nothing:\n{log}"
    );
    // Once the clients leave, the agent answers again.
    drop(held);
    let start = Instant::now();
    assert_eq!(agent.http("GET", "/nope", "", b"").0, 404);
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// An agent whose journalctl prints lines as fast as it can, forever, after writing its
/// process id to `journalctl.pid` under the root.
fn agent_with_endless_log(max_followers: &str) -> Agent {
    Agent::start(AgentOptions {
        args: vec!["--max-log-followers", max_followers],
        env: vec![("GEAR_JOURNALCTL", "{root}/journalctl".into())],
        files: vec![(UNIT, "[Service]\n")],
        programs: vec![(
            "journalctl",
            "#!/bin/sh\necho $$ > \"$GEAR_ROOT/journalctl.pid\"\nexec yes 'a line of the log of web-1'\n",
        )],
        ..Default::default()
    })
}

#[test]
fn a_log_reader_that_stops_reading_is_cut_off_at_its_timeout() {
    let agent = agent_with_endless_log("4");
    let mut s = agent.connect();
    s.write_all(b"GET /container/web-1/log?timeout=1s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    // Read nothing: the agent's writes back up, and hyper stops polling the answer.
    std::thread::sleep(Duration::from_millis(500));
    let pid = std::fs::read_to_string(agent.path("journalctl.pid")).unwrap();
    let proc = format!("/proc/{}", pid.trim());
    assert!(std::path::Path::new(&proc).exists());
    // Timeout (1 s) plus the grace (5 s) plus slack.
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        !std::path::Path::new(&proc).exists()
            || std::fs::read_to_string(format!("{proc}/stat"))
                .unwrap_or_default()
                .contains(") Z "),
        "journalctl still runs 8 s after a 1 s log answer began"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).is_some(),
        "the connection is still open"
    );
}

#[test]
fn log_followers_beyond_the_cap_are_refused_until_one_ends() {
    let agent = agent_with_endless_log("1");
    let mut first = agent.connect();
    first
        .write_all(b"GET /container/web-1/log?timeout=20s HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).unwrap();
    assert_eq!(&head[9..], b"200");
    let (status, body) = agent.http("GET", "/container/web-1/log", "", b"");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("1 log answers are streaming already"),
        "{body}"
    );
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = agent.connect();
        s.write_all(b"GET /container/web-1/log?timeout=1s HTTP/1.0\r\n\r\n")
            .unwrap();
        s.read_exact(&mut head).unwrap();
        if &head[9..] == b"200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower's slot was not given back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reads_with_a_request_id_are_answered_afresh_and_never_kept() {
    let spec = |port: u16| {
        format!(
            r#"{{"Id":"web-1","Image":"gear-test/httpd","Ports":[{{"Internal":8080,"External":{port}}}]}}"#
        )
    };
    let agent = Agent::start(AgentOptions {
        files: vec![(UNIT, "[Service]\n")],
        ..Default::default()
    });
    let spec_file = agent.path("var/lib/containers/specs/web-1.json");
    std::fs::create_dir_all(spec_file.parent().unwrap()).unwrap();
    std::fs::write(&spec_file, spec(4000)).unwrap();
    let rid = "X-Request-Id: read-1\r\n";
    let (status, body) = agent.http("GET", "/container/web-1/ports", rid, b"");
    assert_eq!((status, body.contains("4000")), (200, true), "{body}");
    std::fs::write(&spec_file, spec(4001)).unwrap();
    let (status, body) = agent.http("GET", "/container/web-1/ports", rid, b"");
    assert_eq!(
        (status, body.contains("4001")),
        (200, true),
        "a stale read: {body}"
    );
    let kept = std::fs::read_dir(agent.path("run/gear/requests"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(kept, 0, "a read's answer was kept");
}

#[test]
fn ipv4_loopback_clients_of_a_dual_stack_socket_count_as_loopback() {
    // On `[::]` an IPv4 client's address is `::ffff:127.0.0.1`, which was taken for a remote
    // host and refused without a token.
    let agent = Agent::start(AgentOptions {
        dual_stack: true,
        ..Default::default()
    });
    let (status, body) = agent.http("GET", "/nope", "", b"");
    assert_eq!(status, 404, "{body}");
}
