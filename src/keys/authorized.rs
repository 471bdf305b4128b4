//! What `gear-keys USER` prints for sshd: the keys of login `ctr-ID`, each restricted to
//! one forced command (`gear-enter`) and to forwarding the container's published ports.
//!
//! stdout is sshd's protocol (sshd_config(5), `AuthorizedKeysCommand`: the output is read
//! as `authorized_keys` lines, and a non-zero exit status discards it all). So a user that
//! is not a container's prints nothing and still exits 0, and a broken key file is
//! reported on stderr and skipped: it never takes the other keys with it.

use std::io::Write;

use super::store;
use crate::accounts::container_of;
use crate::container::spec::ContainerSpec;
use crate::paths::Paths;

/// The forced command of every container key: asks the root helper for a session in the
/// login's container (see `docs/ssh.md`).
pub const ENTER: &str = "/usr/libexec/gear/gear-enter";

/// Prints the authorized keys of `user` on `out`; reasons for printing fewer go to `err`.
pub fn print_for(
    paths: &Paths,
    user: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    let Some(id) = container_of(user) else {
        return writeln!(err, "{user}: not a container's login");
    };
    let spec = match ContainerSpec::load(paths, &id) {
        Ok(spec) => spec,
        Err(e) => return writeln!(err, "{user}: {e:#}"),
    };
    if spec.user.as_ref().is_none_or(|u| u.name != user) {
        return writeln!(err, "{user}: container {id} is not isolated (no login)");
    }
    let options = options(&spec);
    let mut text = String::new();
    for key in store::read(paths, &id, err) {
        text.push_str(&format!("{options} {key}\n"));
    }
    // One write: sshd sees all the keys or, if the pipe breaks, an error.
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The options in front of each key. `restrict` turns off everything (forwarding of
/// ports, agent and X11, pty, ~/.ssh/rc) and what follows turns back on only what a
/// container login needs: a pty when the client asks for one, and forwarding to the
/// container's published host ports.
pub fn options(spec: &ContainerSpec) -> String {
    let mut o = format!("command=\"{ENTER}\",restrict,pty");
    let mut ports: Vec<u16> = spec.ports_in_use().map(|p| u16::from(p.external)).collect();
    ports.sort_unstable();
    ports.dedup();
    if !ports.is_empty() {
        o.push_str(",port-forwarding");
        for p in ports {
            o.push_str(&format!(
                ",permitopen=\"127.0.0.1:{p}\",permitopen=\"localhost:{p}\""
            ));
        }
    }
    o
}
