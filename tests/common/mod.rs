//! A real `gear-api` on a free loopback port for integration tests, with its state under a
//! temporary root, no D-Bus behind it, and its stderr kept in a file.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running agent; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
}

/// How to start an agent.
#[derive(Default)]
pub struct AgentOptions<'a> {
    /// Extra flags after `--listen`.
    pub args: Vec<&'a str>,
    /// Extra environment.
    pub env: Vec<(&'a str, String)>,
    /// `ulimit -n` for the agent.
    pub nofile: Option<u32>,
    /// Files to create under the root first (path relative to it, content).
    pub files: Vec<(&'a str, &'a str)>,
    /// Programs to create under the root first (path relative to it, script).
    pub programs: Vec<(&'a str, &'a str)>,
    /// Listen on every IPv6 and IPv4 address (`[::]`, dual-stack) instead of `127.0.0.1`.
    pub dual_stack: bool,
    /// Make a certificate with `gear init-tls` first, so the agent serves TLS.
    pub init_tls: bool,
}

impl Agent {
    pub fn start(opts: AgentOptions) -> Agent {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        let files = opts.files.iter().map(|f| (f, 0o644));
        for ((path, content), mode) in files.chain(opts.programs.iter().map(|p| (p, 0o755))) {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        if opts.init_tls {
            let made = Command::new(env!("CARGO_BIN_EXE_gear"))
                .arg("init-tls")
                .env("GEAR_ROOT", root.path())
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
        }
        let stderr = std::fs::File::create(root.path().join("stderr")).unwrap();
        let listen = match opts.dual_stack {
            true => format!("[::]:{port}"),
            false => format!("127.0.0.1:{port}"),
        };
        let mut cmd = Command::new("sh");
        let ulimit = opts
            .nofile
            .map(|n| format!("ulimit -n {n}; "))
            .unwrap_or_default();
        cmd.arg("-c")
            .arg(format!("{ulimit}exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_gear-api"))
            .args(["--listen", &listen])
            // `{root}` in an argument stands for the agent's root.
            .args(
                opts.args
                    .iter()
                    .map(|a| a.replace("{root}", &root.path().display().to_string())),
            )
            .env("GEAR_ROOT", root.path())
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}/no-bus", root.path().display()),
            )
            .stderr(stderr);
        for (k, v) in &opts.env {
            // `{root}` in a value stands for the agent's root.
            cmd.env(k, v.replace("{root}", &root.path().display().to_string()));
        }
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gear-api did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, port, root }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends a raw HTTP/1.0 request with these extra header lines; returns (status, body).
    pub fn http(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
        let mut s = self.connect();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        let _ = s.write_all(body);
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let resp = String::from_utf8_lossy(&resp);
        let status = resp[9..12].parse().unwrap();
        let body = resp.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.root.path().join("stderr")).unwrap()
    }

    /// Asserts that a `gear list-units` whose stderr is `gear_stderr` reached this agent:
    /// with no D-Bus behind it, its answer is that error, and it logged the request.
    pub fn assert_reached_by_list(&self, gear_stderr: &str) {
        assert!(
            gear_stderr.contains("connecting to the system D-Bus"),
            "{gear_stderr}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            self.stderr().contains("GET /containers -> 500"),
            "{}",
            self.stderr()
        );
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// CPU seconds (user + system) the agent has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long until the server closes `s`, reading (and discarding) whatever it sends;
/// `None` if it is still open after `within`.
pub fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) if start.elapsed() < within => continue,
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed());
            }
            Err(e) => {
                eprintln!("still open after {:?}: {e}", start.elapsed());
                return None;
            }
        }
    }
}
