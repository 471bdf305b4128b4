//! Every on-disk location gear reads or writes, derived from one root.
//!
//! Production uses `/`; tests and the binaries' `GEAR_ROOT` variable re-root everything,
//! so no other module joins `/var/lib/...` strings itself. `docs/disk-layout.md` mirrors
//! this file.

use std::path::{Path, PathBuf};

use crate::id::{ContainerId, RepoId};

/// The environment variable that moves the whole tree (for tests and development).
pub const ROOT_ENV: &str = "GEAR_ROOT";

/// All locations, relative to a root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Locations under `root` (`/` on a real host).
    pub fn new(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    /// The real host's locations, unless `GEAR_ROOT` moves them.
    pub fn system() -> Paths {
        match std::env::var_os(ROOT_ENV) {
            Some(root) if !root.is_empty() => Paths::new(root),
            _ => Paths::new("/"),
        }
    }

    /// The root everything else is under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `/var/lib/containers`: gear's state (geard's layout; Podman's `storage/` is left alone).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("var/lib/containers")
    }

    /// `/var/lib/containers/units`: the generated container unit files.
    pub fn units_dir(&self) -> PathBuf {
        self.state_dir().join("units")
    }

    /// `/var/lib/containers/units/ctr-<id>.service`: a container's unit file. Its presence
    /// is what makes a container installed.
    pub fn unit_file(&self, id: &ContainerId) -> PathBuf {
        self.units_dir().join(id.unit_name())
    }

    /// `/var/lib/containers/specs`: what each container was installed with.
    pub fn specs_dir(&self) -> PathBuf {
        self.state_dir().join("specs")
    }

    /// `/var/lib/containers/specs/<id>.json`: the install request of one container, as
    /// the agent last accepted it (image, ports, environment, limits).
    pub fn spec_file(&self, id: &ContainerId) -> PathBuf {
        self.specs_dir().join(format!("{id}.json"))
    }

    /// `/var/lib/containers/ended/<id>.not-ready`: why the last start of the container failed
    /// its readiness probe (written by `gear-step started`, removed by its next success).
    pub fn not_ready(&self, id: &ContainerId) -> PathBuf {
        self.state_dir()
            .join("ended")
            .join(format!("{id}.not-ready"))
    }

    /// `/var/lib/containers/health/<id>`: the health of a container that has failed a
    /// health check (passing now or not, failures in a row, the last failure).
    pub fn health_file(&self, id: &ContainerId) -> PathBuf {
        self.state_dir().join("health").join(id.as_str())
    }

    /// `/var/lib/containers/history/<id>.json`: the last specs one container was installed
    /// with, and the image ids they ran (`gear history`, `gear rollback`).
    pub fn history_file(&self, id: &ContainerId) -> PathBuf {
        self.state_dir().join("history").join(format!("{id}.json"))
    }

    /// `/var/lib/containers/started/<id>`: present while the Docker container of `id` may
    /// exist (set by its unit before `docker run`, cleared once the container is removed),
    /// so a start after a host crash knows to remove a leftover.
    pub fn started_marker(&self, id: &ContainerId) -> PathBuf {
        self.state_dir().join("started").join(id.as_str())
    }

    /// `/var/lib/containers/ended/<id>`: how the container's last run ended when systemd
    /// cannot tell (`oom-kill`: the kernel killed it for memory); written by its unit's
    /// stop step, absent after a run that ended otherwise.
    pub fn last_end(&self, id: &ContainerId) -> PathBuf {
        self.state_dir().join("ended").join(id.as_str())
    }

    /// `/var/lib/containers/env`: environment files, one per environment id.
    pub fn env_dir(&self) -> PathBuf {
        self.state_dir().join("env")
    }

    /// `/var/lib/containers/env/<id>`: `NAME=VALUE` lines, read by `docker run --env-file`.
    pub fn env_file(&self, id: &ContainerId) -> PathBuf {
        self.env_dir().join(id.as_str())
    }

    /// `/var/lib/containers/volumes` (mode 0700): the volumes containers own.
    pub fn volumes_dir(&self) -> PathBuf {
        self.state_dir().join("volumes")
    }

    /// `/var/lib/containers/volumes/<id>` (mode 0700): the owned volumes of `id`, one
    /// directory each, named after its path in the container (`/var/lib/pg` is
    /// `var+lib+pg`). Kept when the container is deleted, unless asked otherwise.
    pub fn container_volumes(&self, id: &ContainerId) -> PathBuf {
        self.volumes_dir().join(id.as_str())
    }

    /// `/var/lib/containers/ports`: one entry per reserved host port, named by the port.
    pub fn ports_dir(&self) -> PathBuf {
        self.state_dir().join("ports")
    }

    /// `/var/lib/containers/mcs`: one entry per SELinux MCS level a container holds, named
    /// by the level (`s0:c12,c345`), a symlink to the container's id.
    pub fn mcs_dir(&self) -> PathBuf {
        self.state_dir().join("mcs")
    }

    /// `/run/gear/requests`: answers to requests that carried an `X-Request-Id`, so a
    /// retried request is answered again instead of done again (kept until reboot).
    pub fn requests_dir(&self) -> PathBuf {
        self.root.join("run/gear/requests")
    }

    /// `/run/gear/api.sock`: the agent's local Unix socket (root, or a group given to
    /// `gear-api.socket`), which the CLI prefers for `localhost`.
    pub fn api_socket(&self) -> PathBuf {
        self.root.join("run/gear/api.sock")
    }

    /// `/run/gear/jobs` (mode 0700): the environment, output and exit status of each
    /// running one-off job (`<unit>.env`, `<unit>.out`, `<unit>.exit`), removed when the
    /// job's answer ends.
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("run/gear/jobs")
    }

    /// `/etc/gear/tokens`: bearer tokens that let other hosts use the agent (root only).
    pub fn tokens_file(&self) -> PathBuf {
        self.root.join("etc/gear/tokens")
    }

    /// `/etc/gear/tls/cert.pem`: the certificate the agent serves TLS with (`gear init-tls`).
    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("etc/gear/tls/cert.pem")
    }

    /// `/etc/gear/tls/key.pem` (mode 0600): the key of [`Paths::tls_cert`].
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("etc/gear/tls/key.pem")
    }

    /// `/var/lib/containers/idle`: the marks of idle containers.
    pub fn idle_dir(&self) -> PathBuf {
        self.state_dir().join("idle")
    }

    /// `/var/lib/containers/idle/<id>`: present while `id` is idle (stopped or frozen by
    /// the idler, woken by its first connection); holds the mode, `stop` or `freeze`. On
    /// disk, so an idle container stays idle across idler restarts and reboots.
    pub fn idle_marker(&self, id: &ContainerId) -> PathBuf {
        self.idle_dir().join(id.as_str())
    }

    /// `/run/gear/locks` (mode 0700): the lock files of containers being acted on.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("run/gear/locks")
    }

    /// `/run/gear/locks/<id>` (mode 0600): the `flock(2)` that every gear process holds for
    /// the whole of an operation on `id`; it exists only while someone holds it.
    pub fn container_lock(&self, id: &ContainerId) -> PathBuf {
        self.locks_dir().join(id.as_str())
    }

    /// `/var/lib/containers/keys`: SSH public keys, a file per container (mode 0755:
    /// `gear-keys` reads them as its own unprivileged user).
    pub fn keys_dir(&self) -> PathBuf {
        self.state_dir().join("keys")
    }

    /// `/var/lib/containers/keys/<id>`: the keys that may log in as `ctr-<id>`, one per
    /// line, mode 0644, replaced atomically.
    pub fn keys_of(&self, id: &ContainerId) -> PathBuf {
        self.keys_dir().join(id.as_str())
    }

    /// `/var/lib/containers/home/<id>`: the home of isolated container `id`'s Unix user
    /// `ctr-<id>` (owned by root, so the user cannot add keys of its own there).
    pub fn home_dir(&self, id: &ContainerId) -> PathBuf {
        self.state_dir().join("home").join(id.as_str())
    }

    /// `/var/lib/containers/git` (root, mode 0755): the Git repositories, and the home of
    /// their users (which own nothing in it, so they cannot plant keys of their own).
    pub fn repositories(&self) -> PathBuf {
        self.state_dir().join("git")
    }

    /// `/var/lib/containers/git/<id>` (mode 0700, owned by `git-<id>`): a bare repository;
    /// its `hooks/` are run by git as `git-<id>`.
    pub fn repository(&self, id: &RepoId) -> PathBuf {
        self.repositories().join(id.as_str())
    }

    /// `/var/lib/containers/keys/git/<id>`: the keys that reach repository `id`, one per
    /// line, `read` or `write` then the key (mode 0644, replaced atomically).
    pub fn repository_keys(&self, id: &RepoId) -> PathBuf {
        self.keys_dir().join("git").join(id.as_str())
    }

    /// `/run/gear/locks/git/<id>`: the `flock(2)` held while repository `id` is created,
    /// deleted or its keys change.
    pub fn repository_lock(&self, id: &RepoId) -> PathBuf {
        self.locks_dir().join("git").join(id.as_str())
    }

    /// `/run/gear/enter.sock`: where `gear-enter.socket` listens for SSH sessions that
    /// want into their container (mode 0666; the helper checks the caller's uid).
    pub fn enter_socket(&self) -> PathBuf {
        self.root.join("run/gear/enter.sock")
    }

    /// `/etc/systemd/system`: where systemd looks for administrator units.
    pub fn systemd_dir(&self) -> PathBuf {
        self.root.join("etc/systemd/system")
    }

    /// `/etc/systemd/system/container-active.target.wants`: a link here to a container's
    /// unit means "run it, and start it at boot".
    pub fn active_wants_dir(&self) -> PathBuf {
        self.systemd_dir().join("container-active.target.wants")
    }

    /// `/etc/systemd/system/multi-user.target.wants`: where enabling a unit that is
    /// `WantedBy=multi-user.target` links it (the agent checks it before enabling
    /// `container-active.target` and `gear-idler.service`).
    pub fn boot_wants_dir(&self) -> PathBuf {
        self.systemd_dir().join("multi-user.target.wants")
    }

    /// `/var/lib/containers/builds` (mode 0700): one record (`<n>.json`) and one log
    /// (`<n>.log`) per build, the newest 50 kept.
    pub fn builds_dir(&self) -> PathBuf {
        self.state_dir().join("builds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_under_the_root() {
        let p = Paths::new("/tmp/x");
        let id: ContainerId = "web-1".parse().unwrap();
        assert_eq!(
            p.unit_file(&id),
            Path::new("/tmp/x/var/lib/containers/units/ctr-web-1.service")
        );
        assert!(p.state_dir().starts_with(p.root()));
    }
}
