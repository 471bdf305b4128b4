//! What `gear-keys USER` prints for sshd: the keys of login `ctr-ID`, each restricted to
//! one forced command (`gear-enter`) and to forwarding the container's published ports;
//! and the keys of repository login `git-ID`, each forced to `gear-git-shell` with its
//! access.
//!
//! stdout is sshd's protocol (sshd_config(5), `AuthorizedKeysCommand`: the output is read
//! as `authorized_keys` lines, and a non-zero exit status discards it all). So a user that
//! is not a container's prints nothing and still exits 0, and a broken key file is
//! reported on stderr and skipped: it never takes the other keys with it.

use std::io::Write;

use super::{repos, store};
use crate::accounts::container_of;
use crate::container::spec::ContainerSpec;
use crate::id::RepoId;
use crate::paths::Paths;

/// The forced command of every container key: asks the root helper for a session in the
/// login's container (see `docs/ssh.md`).
pub const ENTER: &str = "/usr/libexec/gear/gear-enter";

/// The forced command of every repository key, followed by `read` or `write`: it runs
/// only git's programs, on the login's own repository (docs/git.md).
pub const GIT_SHELL: &str = "/usr/libexec/gear/gear-git-shell";

/// Prints the authorized keys of `user` on `out`; reasons for printing fewer go to `err`.
pub fn print_for(
    paths: &Paths,
    user: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    if let Some(repo) = RepoId::from_login(user) {
        return print_repository(paths, user, &repo, out, err);
    }
    let Some(id) = container_of(user) else {
        return writeln!(err, "{user}: not a container's or a repository's login");
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

/// The keys of repository login `git-ID`: `restrict` (no pty, no forwarding of any kind,
/// no ~/.ssh/rc) and the git shell with the key's access.
fn print_repository(
    paths: &Paths,
    user: &str,
    id: &RepoId,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    if !paths.repository(id).is_dir() {
        return writeln!(err, "{user}: no repository {id}");
    }
    let mut text = String::new();
    for k in repos::read(paths, id, err) {
        text.push_str(&format!(
            "command=\"{GIT_SHELL} {}\",restrict {}\n",
            k.access.as_str(),
            k.key
        ));
    }
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
