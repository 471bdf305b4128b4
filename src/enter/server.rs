//! `gear-enterd`: one SSH session, as root, on the connection `gear-enter.socket` accepted.
//! Whom it serves is decided by the caller's uid (`SO_PEERCRED`) alone.

use std::io::{BufRead as _, BufReader, IoSliceMut, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, getsockopt, recvmsg, sockopt};
use nix::unistd::{Pid, User};

use super::{Hello, MAX_HELLO, WINDOW_CHANGED, answer};
use crate::accounts::{ContainerUser, container_of};
use crate::container::spec::ContainerSpec;
use crate::container::unit::docker_name;
use crate::docker::DOCKER;
use crate::id::ContainerId;
use crate::paths::Paths;

/// Serves the session on `conn` and answers with its exit status (or why there is none).
pub fn serve(paths: &Paths, conn: &UnixStream) {
    let result = session(paths, conn);
    if let Err(e) = &result {
        log::warn!("session refused: {e:#}");
    }
    let mut conn = conn;
    conn.write_all(answer(&result).as_bytes()).ok();
}

fn session(paths: &Paths, conn: &UnixStream) -> anyhow::Result<i32> {
    let uid = getsockopt(conn, sockopt::PeerCredentials)
        .context("reading the caller's credentials")?
        .uid();
    // Read the request whole before any answer, so an early refusal does not close the
    // socket on unread data (the caller would see a reset instead of the reason).
    let (hello, [stdin, stdout, stderr]) = receive(conn)?;
    let (id, user) = container_of_uid(paths, uid)?;
    let tty = nix::unistd::isatty(&stdin).unwrap_or(false);
    log::info!(
        "session for {} in container {id} (uid {uid}, tty {tty}): {}",
        user.name,
        hello.command.as_deref().unwrap_or("login shell")
    );
    let mut child = Command::new(DOCKER)
        .args(exec_args(&id, &user, tty, &hello))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .context("running docker exec")?;
    let pid = Pid::from_raw(child.id() as i32);
    let done = Arc::new(AtomicBool::new(false));
    let watch = conn.try_clone()?;
    let ended = done.clone();
    std::thread::spawn(move || relay(watch, pid, &ended));
    let status = child.wait()?;
    done.store(true, Ordering::SeqCst);
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Passes window changes on to `docker exec`, and ends it if `gear-enter` goes away.
fn relay(mut conn: UnixStream, pid: Pid, done: &AtomicBool) {
    let mut buf = [0u8; 64];
    // Until end of file (gear-enter is gone) or an error.
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if buf[..n].contains(&WINDOW_CHANGED) && !done.load(Ordering::SeqCst) {
            kill(pid, Signal::SIGWINCH).ok();
        }
    }
    if !done.load(Ordering::SeqCst) {
        kill(pid, Signal::SIGTERM).ok();
    }
}

/// The one container whose user has `uid`: the login `ctr-ID` of that uid, whose spec
/// records the same uid. Anything else (root, other users, a reused uid) is refused.
fn container_of_uid(paths: &Paths, uid: u32) -> anyhow::Result<(ContainerId, ContainerUser)> {
    let refuse = || anyhow::anyhow!("uid {uid} is not the user of a container");
    let name = User::from_uid(uid.into())?.ok_or_else(refuse)?.name;
    let id = container_of(&name).ok_or_else(refuse)?;
    let spec = ContainerSpec::load(paths, &id).map_err(|_| refuse())?;
    match spec.user {
        Some(user) if user.uid == uid && user.name == name => Ok((id, user)),
        _ => Err(refuse()),
    }
}

/// `docker exec` as the container's user: the command through `sh -c`, or a login shell.
pub fn exec_args(id: &ContainerId, user: &ContainerUser, tty: bool, hello: &Hello) -> Vec<String> {
    let mut args = vec!["exec".to_string(), "-i".into()];
    if tty {
        args.push("-t".into());
        if let Some(term) = hello.term.as_deref().filter(|t| is_term_name(t)) {
            args.extend(["-e".into(), format!("TERM={term}")]);
        }
    }
    args.extend(["-u".into(), format!("{}:{}", user.uid, user.gid)]);
    args.push(docker_name(id));
    match &hello.command {
        Some(cmd) => args.extend(["/bin/sh".into(), "-c".into(), cmd.clone()]),
        None => args.extend(["/bin/sh".into(), "-l".into()]),
    }
    args
}

fn is_term_name(t: &str) -> bool {
    t.len() < 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// Reads the [`Hello`] line and the three descriptors sent with it.
fn receive(conn: &UnixStream) -> anyhow::Result<(Hello, [OwnedFd; 3])> {
    let mut buf = vec![0u8; MAX_HELLO];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let (n, raw) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receiving the session")?;
        let mut raw = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                raw.extend(fds);
            }
        }
        (msg.bytes, raw)
    };
    // SAFETY: the kernel has just installed these descriptors in this process for this
    // message (SCM_RIGHTS); nothing else refers to them, so each is owned exactly once.
    #[allow(unsafe_code)]
    let owned: Vec<OwnedFd> = raw
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let fds: [OwnedFd; 3] = owned
        .try_into()
        .map_err(|v: Vec<OwnedFd>| anyhow::anyhow!("expected 3 descriptors, got {}", v.len()))?;
    buf.truncate(n);
    if !buf.contains(&b'\n') {
        // The rest of a long line, after the part that came with the descriptors.
        let mut rest = Vec::new();
        BufReader::new(conn.take((MAX_HELLO - n) as u64)).read_until(b'\n', &mut rest)?;
        buf.extend(rest);
    }
    let hello =
        serde_json::from_slice(buf.trim_ascii_end()).context("reading the session's request")?;
    Ok((hello, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_as_the_user_in_its_container() {
        let id: ContainerId = "web-1".parse().unwrap();
        let user = ContainerUser {
            name: "ctr-web-1".into(),
            uid: 990,
            gid: 991,
        };
        let hello = Hello {
            command: Some("cat /etc/hostname; exit 3".into()),
            term: Some("xterm".into()),
        };
        assert_eq!(
            exec_args(&id, &user, false, &hello),
            [
                "exec",
                "-i",
                "-u",
                "990:991",
                "ctr-web-1",
                "/bin/sh",
                "-c",
                "cat /etc/hostname; exit 3"
            ]
        );
        let login = Hello {
            command: None,
            term: Some("xterm-256color".into()),
        };
        assert_eq!(
            exec_args(&id, &user, true, &login),
            [
                "exec",
                "-i",
                "-t",
                "-e",
                "TERM=xterm-256color",
                "-u",
                "990:991",
                "ctr-web-1",
                "/bin/sh",
                "-l"
            ]
        );
        let odd = Hello {
            command: None,
            term: Some("x -e Y".into()),
        };
        assert!(
            !exec_args(&id, &user, true, &odd)
                .iter()
                .any(|a| a.starts_with("TERM"))
        );
    }

    #[test]
    fn descriptors_and_hello_cross_the_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let line = b"{\"Command\":\"true\"}\n";
        let fds = [0, 1, 2];
        nix::sys::socket::sendmsg::<()>(
            a.as_raw_fd(),
            &[std::io::IoSlice::new(line)],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let (hello, fds) = receive(&b).unwrap();
        assert_eq!(hello.command.as_deref(), Some("true"));
        assert_eq!(fds.len(), 3);
        // Credentials come from the kernel: here, our own uid.
        let cred = getsockopt(&b, sockopt::PeerCredentials).unwrap();
        assert_eq!(cred.uid(), nix::unistd::getuid().as_raw());
    }
}
