//! `gear run IMAGE HOST [-- CMD...]`: a one-off job, its output on stdout as it comes, and
//! its exit code as gear's.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;

use super::Remote;
use super::command::env_from_file;
use crate::api::Request;
use crate::container::environment::{EnvironmentBody, Variable};
use crate::container::spec::{Cpus, Image, Memory};
use crate::container::volumes::Volume;
use crate::id::ContainerId;
use crate::job::{JobRequest, JobTimeout};
use crate::locator::HostAddr;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Docker image to run (pulled if the host does not have it).
    pub image: Image,
    /// The host to run it on (HOST[:PORT]).
    pub host: HostAddr,
    /// The command and its arguments (default: the image's).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = crate::container::environment::Environment::parse_assignment)]
    pub env: Vec<Variable>,
    /// Read environment variables from a file of KEY=VALUE lines.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<std::path::PathBuf>,
    /// Mount a host directory, HOSTPATH:PATH[:ro|rw] (repeatable).
    #[arg(short = 'v', long = "volume", value_name = "HOSTPATH:PATH[:ro]")]
    pub volumes: Vec<Volume>,
    /// Mount every volume container ID owns, at its path (a backup, a migration).
    #[arg(long, value_name = "ID")]
    pub volumes_from: Option<ContainerId>,
    /// Memory limit, e.g. 256M.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<Memory>,
    /// CPU limit in CPUs, e.g. 0.5.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<Cpus>,
}

/// Runs the job and exits the process with its exit code (after flushing stdout).
pub async fn run(
    remote: &Remote,
    args: RunArgs,
    timeout: Option<Duration>,
) -> anyhow::Result<bool> {
    let mut env = env_from_file(args.env_file.as_deref())?;
    for v in args.env {
        env.set(v);
    }
    let job = JobRequest {
        arguments: args.command,
        environment: (!env.is_empty()).then(|| EnvironmentBody::from(env)),
        volumes: args.volumes,
        volumes_from: args.volumes_from,
        memory: args.memory,
        cpus: args.cpus,
        timeout: timeout
            .map(|t| format!("{}ms", t.as_millis()).parse::<JobTimeout>())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        ..JobRequest::new(args.image)
    };
    // The answer lasts as long as the job: the client waits for the job's own limit (and
    // a while for the pull and clean-up), or a day.
    let wait = timeout.map_or(Duration::from_secs(86_400), |t| {
        t + Duration::from_secs(600)
    });
    let client = remote.client_for(&args.host, wait);
    let mut stdout = std::io::stdout();
    let req = Request::RunJob(job);
    let running = client.run_job(&req, |text| {
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    });
    // Ctrl-C ends gear, and with it the connection: the agent then stops the job. (The
    // handler also makes SIGINT work where a shell started gear with it ignored.)
    let end = tokio::select! {
        end = running => end?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("gear run: interrupted; the agent stops the job");
            std::process::exit(130);
        }
    };
    if end.result == "timeout" {
        eprintln!("gear run: the job was stopped at its timeout");
    }
    std::process::exit(end.exit_code);
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_forms_make_the_job_request() {
        use clap::Parser as _;
        let cli = crate::cli::command::Cli::try_parse_from([
            "gear",
            "run",
            "gear-test/httpd",
            "localhost",
            "--volumes-from",
            "db-1",
            "-v",
            "/srv/backups:/backups",
            "-e",
            "A=1",
            "--timeout",
            "5s",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        assert_eq!(cli.timeout, Some(std::time::Duration::from_secs(5)));
        let crate::cli::command::Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.command, ["sh", "-c", "exit 3"]);
        assert_eq!(args.volumes_from.unwrap().as_str(), "db-1");
        assert_eq!(args.volumes[0].target.as_str(), "/backups");
    }
}
