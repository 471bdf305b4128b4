//! The `gear` command line: its flags and subcommands (the man page, as clap
//! definitions) and what each subcommand does. `src/bin/gear.rs` parses and calls [`run`].

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use super::container::{each, each_json, install_each};
use super::{Remote, deploy, list, token};
use crate::api::Request;
use crate::api::reply::Status;
use crate::container::environment::{Environment, EnvironmentBody};
use crate::container::logs::LogOptions;
use crate::container::ports::PortRequest;
use crate::container::probe::ReadyProbe;
use crate::container::spec::{Cpus, Image, InstallRequest, Memory, RestartPolicy, SliceName};
use crate::links::NetworkLink;
use crate::locator::{HostAddr, Locator};

/// Install Docker images as containers supervised by systemd, on this host or many.
///
/// Every command talks to the gear agent (gear-api) on the hosts it names, in parallel.
/// A host is HOST or HOST:PORT (default port 43273); a container is HOST[:PORT]/ID.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    /// How long one agent may take to answer (default 60s). For `gear run`: how long the
    /// job may run before it is stopped (no limit by default).
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub timeout: Option<Duration>,
    /// More logging on stderr (repeat for more). Long only: `-v` names a volume, as in
    /// geard and docker.
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Check agents on other hosts against the CAs in this PEM file (for hosts without a
    /// line of their own in ~/.config/gear/hosts).
    #[arg(long, global = true, value_name = "FILE", env = "GEAR_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Speak plain HTTP to agents on other hosts that have no pinned fingerprint or CA,
    /// sending the token in the clear.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Keep at most N requests open at once, over all hosts and containers (commands on
    /// many locators, deploy).
    #[arg(long, global = true, value_name = "N",
          default_value_t = crate::api::client::DEFAULT_PARALLEL as u16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install IMAGE as a container on each LOCATOR (HOST[:PORT]/ID); update it if it exists.
    ///
    /// The container runs as the systemd unit ctr-ID.service. An update takes effect at
    /// the next start; with --start, an update of a running container takes effect now,
    /// switched without refusing a connection.
    Install(Box<InstallArgs>),
    /// Start containers (and start them at every boot).
    Start {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
    },
    /// Stop containers (and keep them stopped at boot).
    Stop {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
    },
    /// Restart containers. A running one is switched without refusing a connection: new
    /// connections wait while in-flight ones drain (--drain-timeout of install) and the new
    /// container becomes ready.
    Restart {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
    },
    /// List the kept versions of containers (their last 5 specs and images), oldest first;
    /// `*` marks the current one.
    History {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
        /// Print each agent's JSON answer, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Install a kept version of containers again, from the image it ran (no pull, no
    /// build); a running container is switched to it without refusing a connection.
    Rollback {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
        /// The version to go back to (`gear history` lists them); default: the one before
        /// the current.
        #[arg(long, value_name = "N")]
        to: Option<u32>,
    },
    /// Show the state of containers, as `systemctl status` does: unit, state and since when,
    /// main PID, memory, image, ports, links, idling, and the last lines of the log.
    Status {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
        /// Print each agent's JSON answer, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Stop every container on the hosts, and keep them stopped at boot (nothing is removed).
    Purge {
        /// Hosts (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
    },
    /// Set the network links of containers (replacing their links; none clears them).
    ///
    /// Inside each container, LOCALIP:LOCALPORT then leads to REMOTEHOST:REMOTEPORT; a
    /// running container gets the new links at once.
    Link {
        /// A link, [LOCALIP:]LOCALPORT:REMOTEHOST:REMOTEPORT (repeatable).
        #[arg(short = 'n', long = "net-link", value_name = "LINK")]
        links: Vec<NetworkLink>,
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
    },
    /// Deploy a deployment file (geard's format) over hosts, and record where each instance
    /// went in FILE.instances.json; deploying again (the same file or the instances file)
    /// changes only what differs.
    Deploy {
        /// The deployment file.
        file: std::path::PathBuf,
        /// Hosts to deploy over (default: localhost). With several, name each by an
        /// address the others reach.
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
        /// Where to write the instances file (default: NAME.instances.json here).
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Make a token that lets other hosts use this host's agent (run as root on the agent's
    /// host); it is added to /etc/gear/tokens and printed. Clients send it from $GEAR_TOKEN
    /// or ~/.config/gear/token.
    NewToken,
    /// Make a self-signed certificate for this host's agent (run as root on the agent's
    /// host) and print its SHA-256 fingerprint, for clients to pin in ~/.config/gear/hosts.
    ///
    /// The key goes to /etc/gear/tls/key.pem (0600), the certificate to cert.pem. With a
    /// certificate, the agent serves TLS and refuses plain HTTP from other hosts; restart
    /// gear-api.service to make it take a new one. An existing certificate is kept (its
    /// fingerprint is printed) unless --force.
    InitTls {
        /// Another name or address clients reach the agent by (repeatable); the host's
        /// name, localhost, 127.0.0.1 and ::1 are always in.
        #[arg(long = "name", value_name = "NAME|IP")]
        names: Vec<String>,
        /// Replace an existing certificate (clients that pinned it must pin the new one).
        #[arg(long)]
        force: bool,
    },
    /// Print a container's log (its unit's journal), following it for a while.
    Logs {
        /// The container, as HOST[:PORT]/ID.
        locator: Locator,
        /// How many past lines to start with.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
        /// Print what is there and end, without following.
        #[arg(long)]
        no_follow: bool,
        /// How long to follow new lines.
        #[arg(long = "for", value_name = "DURATION", default_value = "30s", value_parser = crate::duration::parse)]
        follow_for: Duration,
    },
    /// Print the environment (KEY=VALUE lines) of containers.
    Env {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
    },
    /// Set environment variables of containers; they apply from the next start.
    ///
    /// Arguments with '=' are variables, the others are containers:
    /// `gear set-env localhost/web-1 A=1 B=2`.
    SetEnv {
        /// Containers (HOST[:PORT]/ID) and variables (KEY=VALUE), in any order.
        #[arg(required = true, value_name = "LOCATOR|KEY=VALUE")]
        args: Vec<String>,
        /// Also read variables from a file of KEY=VALUE lines.
        #[arg(long, value_name = "FILE")]
        env_file: Option<std::path::PathBuf>,
        /// Replace the whole environment instead of updating it.
        #[arg(long)]
        reset: bool,
    },
    /// Stop containers and remove them with everything they own (unit, ports, environment);
    /// their owned volumes are kept unless --volumes is given.
    Delete {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
        /// Remove their owned volumes too (also those an earlier delete kept).
        #[arg(long)]
        volumes: bool,
    },
    /// Run IMAGE once on HOST as a transient systemd unit (not an installed container),
    /// printing its output as it comes; exits with its exit code (124 after --timeout).
    ///
    /// Nothing is left behind: no unit, no Docker container, after it ends, fails, times out
    /// or is interrupted (Ctrl-C stops it).
    Run(super::job::RunArgs),
    /// Build an image from source on HOST, printing the build's log as it comes: the
    /// builder image's source-to-image scripts (or the source's Dockerfile) turn SOURCE
    /// into TAG.
    ///
    /// gear build SOURCE BUILDER_IMAGE TAG [HOST[:PORT]]. SOURCE is a directory on HOST,
    /// repo://ID or a git URL. The build runs in its own unit, gear-build-<TAG>.service: an
    /// interrupted client leaves it running. Exits 1 when the build failed (TAG keeps its
    /// previous image). With --on-push, sets up push to deploy on repository ID instead.
    #[command(
        override_usage = "gear build [OPTIONS] SOURCE BUILDER_IMAGE TAG [HOST[:PORT]]\n       gear build --on-push repo://ID [BUILDER_IMAGE] --tag TAG [--restart HOST/ID | --host HOST]"
    )]
    Build(super::build::BuildArgs),
    /// List running and recent builds on hosts: result, duration, image.
    Builds {
        /// Hosts (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
        /// Print each agent's JSON answer, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a build's log: BUILD is a build number, or a tag for its latest build.
    BuildLogs {
        /// The host.
        host: HostAddr,
        /// A build number (from gear build or gear builds), or a tag.
        build: String,
        /// Follow a running build until it ends (exits 1 if it failed).
        #[arg(short, long)]
        follow: bool,
    },
    /// List the images on hosts: id, tags, size, build time, and the containers using each.
    Images {
        /// Hosts (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
        /// Print each agent's JSON answer, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Pull IMAGE on hosts (again, if present: a tag may have moved), showing progress.
    Pull {
        /// The image.
        image: Image,
        /// Hosts (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
    },
    /// Remove the images no container uses (installed containers count, running or not).
    PruneImages {
        /// Hosts (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
    },
    /// List the volumes containers own, with their size: every one on HOST, or those of
    /// one container (installed, or deleted with its volumes kept) with HOST/ID.
    Volumes {
        /// Hosts (HOST[:PORT]) or containers (HOST[:PORT]/ID); default localhost.
        #[arg(value_name = "HOST[/ID]")]
        targets: Vec<super::volumes::Target>,
        /// Print each agent's JSON answer, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Idle containers now: stop them (or, with --freeze, freeze them) until the first
    /// connection to one of their published ports wakes them.
    Idle {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
        /// Freeze instead of stopping: memory stays, waking is quicker.
        #[arg(long)]
        freeze: bool,
    },
    /// Wake idle containers now; answers once their ports accept connections.
    Unidle {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
    },
    /// Set when containers idle by themselves (gear-idler watches their traffic).
    IdlePolicy {
        /// Containers, as HOST[:PORT]/ID.
        #[arg(required = true)]
        locators: Vec<Locator>,
        /// Idle after this long without traffic to the published ports (e.g. 5m).
        #[arg(long, value_name = "DURATION", required_unless_present = "off")]
        after: Option<crate::idle::IdleAfter>,
        /// Freeze instead of stopping.
        #[arg(long, conflicts_with = "off")]
        freeze: bool,
        /// Never idle by themselves again.
        #[arg(long, conflicts_with = "after")]
        off: bool,
    },
    /// Let SSH keys log in to isolated containers (`ssh ctr-ID@HOST` then runs a shell or
    /// the command in container ID, as its user), or reach Git repositories named
    /// repo://[HOST/]ID (`git clone git-ID@HOST:~`; push with --write).
    AddKeys {
        /// A public key file (KEY.pub; one key per line), repeatable.
        #[arg(long = "key-file", value_name = "FILE", required = true)]
        key_files: Vec<std::path::PathBuf>,
        /// Let the keys push to the repositories too (else they only read).
        #[arg(long)]
        write: bool,
        /// Containers, as HOST[:PORT]/ID (installed with --isolate), or repositories, as
        /// repo://[HOST[:PORT]/]ID.
        #[arg(required = true, value_name = "LOCATOR")]
        locators: Vec<super::keys::KeyTarget>,
    },
    /// Revoke SSH keys from containers or repositories (repo://[HOST/]ID), named by key
    /// file or fingerprint.
    RemoveKeys {
        /// A public key file whose keys to revoke, repeatable.
        #[arg(long = "key-file", value_name = "FILE")]
        key_files: Vec<std::path::PathBuf>,
        /// A key's fingerprint, SHA256:... as `gear list-keys` or `ssh-keygen -l` shows it.
        #[arg(
            long,
            value_name = "FINGERPRINT",
            required_unless_present = "key_files"
        )]
        fingerprint: Vec<String>,
        /// Containers (HOST[:PORT]/ID) or repositories (repo://[HOST[:PORT]/]ID).
        #[arg(required = true, value_name = "LOCATOR")]
        locators: Vec<super::keys::KeyTarget>,
    },
    /// List the SSH keys of containers (fingerprint, type, comment) or repositories
    /// (fingerprint, type, read or write, comment).
    ListKeys {
        /// Containers (HOST[:PORT]/ID) or repositories (repo://[HOST[:PORT]/]ID).
        #[arg(required = true, value_name = "LOCATOR")]
        locators: Vec<super::keys::KeyTarget>,
    },
    /// Create a bare Git repository ID on HOST, empty (default branch main) or cloned from
    /// a URL, with its own Unix user git-ID; clone it with `git clone git-ID@HOST:~`.
    ///
    /// A clone shows git's progress; Ctrl-C stops it and leaves nothing behind.
    CreateRepo {
        /// The repository, as HOST[:PORT]/ID (ID: lowercase letters, digits, '-', '_').
        #[arg(value_name = "HOST/ID")]
        locator: super::repos::RepoLocator,
        /// Clone this: any URL git understands (https://, git://, ssh://, file://,
        /// user@host:path) or a local path the repository's user can read.
        #[arg(long, value_name = "URL")]
        from: Option<crate::git::source::SourceUrl>,
    },
    /// Delete Git repositories: their files, keys and users.
    DeleteRepo {
        /// Repositories, as HOST[:PORT]/ID.
        #[arg(required = true, value_name = "HOST/ID")]
        locators: Vec<super::repos::RepoLocator>,
    },
    /// List the Git repositories on hosts.
    ListRepos {
        /// Hosts (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
        /// Print each agent's JSON answer, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Write an archive of a branch, tag or commit of a repository to stdout
    /// (`gear archive localhost/app v1.0 > app-v1.0.zip`).
    Archive {
        /// The repository, as HOST[:PORT]/ID.
        #[arg(value_name = "HOST/ID")]
        locator: super::repos::RepoLocator,
        /// A branch, tag or commit.
        #[arg(value_name = "REF")]
        git_ref: crate::git::refname::GitRef,
        /// zip or tar.gz.
        #[arg(long, default_value = "zip")]
        format: crate::git::refname::ArchiveFormat,
    },
    /// List every installed container on one or more hosts (stopped ones as inactive).
    ListUnits {
        /// Hosts to ask (default: localhost).
        #[arg(value_name = "HOST[:PORT]")]
        hosts: Vec<HostAddr>,
        /// Accepted for compatibility: every installed container is listed anyway.
        #[arg(short, long, hide = true)]
        all: bool,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The Docker image to run (pulled if the host does not have it).
    pub image: Image,
    /// Where to install it: HOST[:PORT]/ID, one or more.
    #[arg(required = true)]
    pub locators: Vec<Locator>,
    /// Start it now, and at every boot.
    #[arg(long)]
    pub start: bool,
    /// Publish container port INTERNAL on host port EXTERNAL; 0 picks a free host port.
    #[arg(short, long = "publish", value_name = "INTERNAL:EXTERNAL")]
    pub ports: Vec<PortRequest>,
    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = Environment::parse_assignment)]
    pub env: Vec<crate::container::environment::Variable>,
    /// Read environment variables from a file of KEY=VALUE lines.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<std::path::PathBuf>,
    /// The systemd slice to run in (default container.slice).
    #[arg(long, value_name = "SLICE")]
    pub slice: Option<SliceName>,
    /// Memory limit, e.g. 256M or 1G.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<Memory>,
    /// CPU limit in CPUs, e.g. 0.5.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<Cpus>,
    /// A network link inside the container, [LOCALIP:]LOCALPORT:REMOTEHOST:REMOTEPORT
    /// (repeatable; LOCALIP defaults to 127.0.0.1).
    #[arg(short = 'n', long = "net-link", value_name = "LINK")]
    pub links: Vec<NetworkLink>,
    /// Run it as its own Unix user ctr-ID (created now, removed on delete), which is also
    /// its SSH login (gear add-keys).
    #[arg(long)]
    pub isolate: bool,
    /// What systemd does when the container exits: no, on-failure (default) or always.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<RestartPolicy>,
    /// Idle it after this long without traffic to its published ports (e.g. 5m); the
    /// first connection wakes it. Off by default.
    #[arg(long, value_name = "DURATION")]
    pub idle_after: Option<crate::idle::IdleAfter>,
    /// How it idles: stop (default; no process left) or freeze (memory kept, quicker wake).
    #[arg(long, value_name = "MODE", requires = "idle_after")]
    pub idle_mode: Option<crate::idle::IdleMode>,
    /// A volume: PATH is a directory the container owns, kept across restarts, updates
    /// and re-installs; HOSTPATH:PATH[:ro|rw] mounts a host directory (repeatable).
    #[arg(short = 'v', long = "volume", value_name = "PATH|HOSTPATH:PATH[:ro]")]
    pub volumes: Vec<crate::container::volumes::Volume>,
    /// Count it started only once container port PORT accepts a TCP connection, checked
    /// from the host (nothing runs in the image).
    #[arg(long, value_name = "PORT", conflicts_with = "ready_http")]
    pub ready_tcp: Option<crate::container::ports::PortNumber>,
    /// Count it started only once GET PATH answers 2xx or 3xx on container port PORT
    /// (default: the first published one), checked from the host.
    #[arg(long, value_name = "PATH[:PORT]", value_parser = ReadyProbe::parse_http)]
    pub ready_http: Option<ReadyProbe>,
    /// How long it may take to become ready before its start fails (default 60s, at most 4m).
    #[arg(long, value_name = "DURATION")]
    pub ready_timeout: Option<crate::container::probe::Wait>,
    /// How long a restart or update lets connections in flight on the old container
    /// finish before stopping it (default 10s, at most 5m).
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<crate::container::probe::Wait>,
    /// Check its health from the host every --health-interval: GET PATH must answer 2xx or
    /// 3xx on container port PORT (default: the first published one).
    #[arg(long, value_name = "PATH[:PORT]", value_parser = ReadyProbe::parse_http, conflicts_with = "health_tcp")]
    pub health_http: Option<ReadyProbe>,
    /// Check its health from the host: container port PORT must accept a connection.
    #[arg(long, value_name = "PORT")]
    pub health_tcp: Option<crate::container::ports::PortNumber>,
    /// How often its health is checked (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<crate::container::probe::Wait>,
    /// How many failed checks in a row restart it (default 3; not with --restart no).
    #[arg(long, value_name = "N")]
    pub health_failures: Option<u32>,
    /// Do without one of the container's safer defaults (repeatable, or comma-separated):
    /// new-privileges (setuid programs work), net-raw (raw sockets: ping), pids-limit (no
    /// bound on processes), privileged-ports (publish host ports below 1024).
    #[arg(long, value_name = "WHAT", value_delimiter = ',')]
    pub relax: Vec<crate::container::hardening::Relax>,
    /// The most processes and threads it may have at once (default 4096).
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<std::num::NonZeroU32>,
    /// After an update that switches to the new container (--start, a running container),
    /// watch it for DURATION (default 60s, 1s to 1h): should it fail its health checks or
    /// stop running, switch the previous version back in and exit non-zero, saying why.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "60s")]
    pub verify: Option<crate::container::probe::Wait>,
}

/// The variables of an `--env-file` (none without one).
pub fn env_from_file(path: Option<&std::path::Path>) -> anyhow::Result<Environment> {
    let Some(path) = path else {
        return Ok(Environment::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Environment::parse(&text).with_context(|| format!("in {}", path.display()))
}

impl InstallArgs {
    /// The install request these flags describe.
    pub fn request(&self) -> anyhow::Result<InstallRequest> {
        let mut env = env_from_file(self.env_file.as_deref())?;
        for v in &self.env {
            env.set(v.clone());
        }
        Ok(InstallRequest {
            image: self.image.clone(),
            started: self.start,
            ports: self.ports.clone(),
            environment: (!env.is_empty()).then(|| EnvironmentBody::from(env)),
            systemd_slice: self.slice.clone(),
            memory: self.memory,
            cpus: self.cpus,
            restart: self.restart,
            isolate: self.isolate,
            network_links: (!self.links.is_empty()).then(|| self.links.clone()),
            idle: self.idle_after.map(|after| crate::idle::IdlePolicy {
                after,
                mode: self.idle_mode.unwrap_or_default(),
            }),
            volumes: (!self.volumes.is_empty()).then(|| self.volumes.clone()),
            ready: self.ready_probe()?,
            drain_timeout: self.drain_timeout,
            health: self.health_check()?,
            relax: self.relax.clone(),
            pids_limit: self.pids_limit,
            verify: self.verify,
            ..InstallRequest::new(self.image.clone())
        })
    }
}

impl InstallArgs {
    /// The health check of `--health-http` or `--health-tcp`, with its interval and failures.
    fn health_check(&self) -> anyhow::Result<Option<crate::container::health::HealthCheck>> {
        let probe = match (&self.health_http, self.health_tcp) {
            (Some(http), _) => http.clone(),
            (None, Some(port)) => ReadyProbe::tcp(port),
            (None, None) if self.health_interval.is_some() || self.health_failures.is_some() => {
                anyhow::bail!(
                    "--health-interval and --health-failures need --health-http or --health-tcp"
                )
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(crate::container::health::HealthCheck {
            http: probe.http,
            port: probe.port,
            interval: self.health_interval,
            failures: self.health_failures,
        }))
    }

    /// The readiness probe of `--ready-tcp` or `--ready-http`, with `--ready-timeout`.
    fn ready_probe(&self) -> anyhow::Result<Option<ReadyProbe>> {
        let probe = match (&self.ready_http, self.ready_tcp) {
            (Some(http), _) => http.clone(),
            (None, Some(port)) => ReadyProbe::tcp(port),
            (None, None) if self.ready_timeout.is_some() => {
                anyhow::bail!("--ready-timeout needs --ready-tcp or --ready-http")
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(ReadyProbe {
            timeout: self.ready_timeout,
            ..probe
        }))
    }
}

/// How long one agent may take to answer, unless `--timeout` says otherwise.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one command; `Ok(false)` when some host or container failed (already reported).
pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    let hosts = match crate::api::reach::HostsFile::default_path() {
        Some(path) => crate::api::reach::HostsFile::load(&path)?,
        None => Default::default(),
    };
    let remote = Remote {
        timeout: cli.timeout.unwrap_or(ANSWER_TIMEOUT),
        token: token()?,
        hosts: std::sync::Arc::new(hosts),
        ca_file: cli.ca_file,
        insecure: cli.insecure,
        slots: crate::api::client::Slots::new(cli.parallel.into()),
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match cli.command {
        Command::ListUnits {
            mut hosts,
            all,
            json,
        } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            list::list_units(&remote, &hosts, all, json, &mut out, &mut err).await
        }
        Command::Install(args) => {
            let body = args.request()?;
            // The answer of a verified update comes after its window.
            let remote = super::Remote {
                timeout: remote.timeout + body.verify.map_or(Duration::ZERO, |w| w.0),
                ..remote.clone()
            };
            install_each(&remote, &args.locators, &body, &mut out, &mut err).await
        }
        Command::Start { locators } => {
            act(&remote, &locators, Request::Start, &mut out, &mut err).await
        }
        Command::Stop { locators } => {
            act(&remote, &locators, Request::Stop, &mut out, &mut err).await
        }
        Command::Restart { locators } => {
            act(&remote, &locators, Request::Restart, &mut out, &mut err).await
        }
        Command::History { locators, json } => {
            super::releases::history(&remote, &locators, json, &mut out, &mut err).await
        }
        Command::Rollback { locators, to } => {
            super::releases::rollback(&remote, &locators, to, &mut out, &mut err).await
        }
        Command::Status { locators, json } => {
            super::status::status(&remote, &locators, json, &mut out, &mut err).await
        }
        Command::Purge { mut hosts } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            list::purge(&remote, &hosts, &mut out, &mut err).await
        }
        Command::Deploy {
            file,
            mut hosts,
            out: out_file,
        } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            let out_file = out_file.unwrap_or_else(|| deploy::default_out_file(&file));
            deploy::deploy(&remote, &file, &hosts, &out_file, &mut out, &mut err).await
        }
        Command::NewToken => {
            let file = crate::paths::Paths::system().tokens_file();
            writeln!(out, "{}", crate::api::auth::new_token(&file)?)?;
            Ok(true)
        }
        Command::InitTls { names, force } => {
            let paths = crate::paths::Paths::system();
            let (fp, new) = crate::tls::cert::init(&paths, &names, force)?;
            writeln!(out, "{fp}")?;
            match new {
                true => writeln!(
                    err,
                    "made {}; restart gear-api.service to serve it, and pin it on clients: \
                     add `HOST fingerprint={fp}` to ~/.config/gear/hosts",
                    paths.tls_cert().display()
                )?,
                false => writeln!(
                    err,
                    "{} exists: kept (--force makes a new one)",
                    paths.tls_cert().display()
                )?,
            }
            Ok(true)
        }
        Command::Link { links, locators } => {
            super::container::link(&remote, &locators, &links, &mut out, &mut err).await
        }
        Command::Logs {
            locator,
            lines,
            no_follow,
            follow_for,
        } => {
            let opts = LogOptions {
                lines,
                follow: !no_follow,
                timeout: follow_for,
            };
            // The agent ends the answer at the timeout; allow it time to get there.
            let client = remote.client_for(&locator.host, follow_for + remote.timeout);
            client
                .stream_to(
                    &Request::Log {
                        id: locator.id,
                        opts,
                    },
                    &mut out,
                )
                .await?;
            Ok(true)
        }
        Command::Env { locators } => {
            let describe = |l: &Locator, a: &crate::api::client::Answer| {
                let text = String::from_utf8_lossy(&a.body);
                match locators.len() {
                    1 => text.trim_end().to_string(),
                    _ => text
                        .lines()
                        .map(|line| format!("{l}: {line}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
            };
            each(
                &remote,
                &locators,
                |l| Request::GetEnvironment(l.id.clone()),
                describe,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::SetEnv {
            args,
            env_file,
            reset,
        } => {
            let mut env = env_from_file(env_file.as_deref())?;
            let mut locators = Vec::new();
            for arg in &args {
                if arg.contains('=') {
                    env.set(Environment::parse_assignment(arg)?);
                } else {
                    locators.push(arg.parse::<Locator>().with_context(|| format!("'{arg}'"))?);
                }
            }
            anyhow::ensure!(
                !locators.is_empty(),
                "name at least one container (HOST[:PORT]/ID)"
            );
            let body = EnvironmentBody::from(env);
            let make = |l: &Locator| Request::SetEnvironment {
                id: l.id.clone(),
                body: body.clone(),
                reset,
            };
            let describe = |l: &Locator, _: &_| {
                format!(
                    "{l}: environment {}",
                    if reset { "replaced" } else { "updated" }
                )
            };
            each(&remote, &locators, make, describe, &mut out, &mut err).await
        }
        Command::Idle { locators, freeze } => {
            let mode = freeze.then_some(crate::idle::IdleMode::Freeze);
            let describe = |l: &Locator, s: &Status| match s.idle {
                Some(mode) => format!("{l}: idle ({mode})"),
                None => format!("{l}: {}", s.state.active_state),
            };
            each_json(
                &remote,
                &locators,
                |l| Request::Idle {
                    id: l.id.clone(),
                    mode,
                },
                describe,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::Unidle { locators } => {
            let describe = |l: &Locator, s: &Status| format!("{l}: {}", s.state.active_state);
            each_json(
                &remote,
                &locators,
                |l| Request::Unidle(l.id.clone()),
                describe,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::IdlePolicy {
            locators,
            after,
            freeze,
            off: _,
        } => {
            let policy = after.map(|after| crate::idle::IdlePolicy {
                after,
                mode: match freeze {
                    true => crate::idle::IdleMode::Freeze,
                    false => crate::idle::IdleMode::Stop,
                },
            });
            let describe = |l: &Locator, _: &_| match policy {
                Some(p) => format!("{l}: idles after {} ({})", p.after, p.mode),
                None => format!("{l}: never idles by itself"),
            };
            each(
                &remote,
                &locators,
                |l| Request::SetIdlePolicy {
                    id: l.id.clone(),
                    policy,
                },
                describe,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::AddKeys {
            key_files,
            write,
            locators,
        } => super::keys::add(&remote, &key_files, write, &locators, &mut out, &mut err).await,
        Command::RemoveKeys {
            key_files,
            fingerprint,
            locators,
        } => {
            super::keys::remove(
                &remote,
                &key_files,
                &fingerprint,
                &locators,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::ListKeys { locators } => {
            super::keys::list(&remote, &locators, &mut out, &mut err).await
        }
        Command::CreateRepo { locator, from } => {
            super::repos::create(&remote, &locator, from, &mut out, &mut err).await
        }
        Command::DeleteRepo { locators } => {
            super::repos::delete(&remote, &locators, &mut out, &mut err).await
        }
        Command::ListRepos { mut hosts, json } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            super::repos::list(&remote, &hosts, json, &mut out, &mut err).await
        }
        Command::Archive {
            locator,
            git_ref,
            format,
        } => super::repos::archive(&remote, &locator, git_ref, format).await,
        Command::Delete { locators, volumes } => {
            each_json(
                &remote,
                &locators,
                |l| Request::Delete {
                    id: l.id.clone(),
                    volumes,
                },
                super::volumes::deleted_line,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::Run(args) => super::job::run(&remote, args, cli.timeout).await,
        Command::Build(args) => {
            super::build::build(&remote, args, cli.timeout, &mut out, &mut err).await
        }
        Command::Builds { mut hosts, json } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            super::build::list(&remote, &hosts, json, &mut out, &mut err).await
        }
        Command::BuildLogs {
            host,
            build,
            follow,
        } => {
            super::build::logs(
                &remote,
                host,
                &build,
                follow,
                cli.timeout,
                &mut out,
                &mut err,
            )
            .await
        }
        Command::Images { mut hosts, json } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            super::images::list(&remote, &hosts, json, &mut out, &mut err).await
        }
        Command::Pull { image, mut hosts } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            super::images::pull(&remote, &image, &hosts, &mut out, &mut err).await
        }
        Command::PruneImages { mut hosts } => {
            if hosts.is_empty() {
                hosts.push(HostAddr::localhost());
            }
            super::images::prune(&remote, &hosts, &mut out, &mut err).await
        }
        Command::Volumes { mut targets, json } => {
            if targets.is_empty() {
                targets.push("localhost".parse()?);
            }
            super::volumes::list(&remote, &targets, json, &mut out, &mut err).await
        }
    }
}

/// Sends `make(id)` for every locator and prints the state each container is left in.
async fn act(
    remote: &Remote,
    locators: &[Locator],
    make: fn(crate::id::ContainerId) -> Request,
    out: &mut impl std::io::Write,
    err: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let describe = |l: &Locator, s: &Status| format!("{l}: {}", s.state.active_state);
    each_json(remote, locators, |l| make(l.id.clone()), describe, out, err).await
}
