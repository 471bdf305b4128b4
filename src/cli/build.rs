//! `gear build`, `gear builds`, `gear build-logs`: builds from source on a host, their log
//! on stdout as it comes; `gear build --on-push` sets up push to deploy.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;

use super::Remote;
use crate::api::Request;
use crate::build::hook::OnPush;
use crate::build::record::{BuildId, BuildResult};
use crate::build::run::{BuildInfo, BuildLine, Builds};
use crate::build::{BuildRequest, BuildTag, GitRef, Source};
use crate::container::environment::{Environment, Variable};
use crate::container::spec::Image;
use crate::locator::{HostAddr, Locator};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// SOURCE BUILDER_IMAGE TAG [HOST] (default localhost, as geard's gear build). SOURCE:
    /// a directory on HOST, repo://ID, or a git URL HOST can reach. With --on-push:
    /// repo://ID [BUILDER_IMAGE].
    #[arg(value_name = "ARGS", required = true, num_args = 1..=4)]
    pub args: Vec<String>,
    /// The branch, tag or commit of a git source (default: its default branch). With
    /// --on-push: the branch whose pushes build (default: the repository's HEAD).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<GitRef>,
    /// A variable for assemble, also set in the image (a build argument for a
    /// Dockerfile source); repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = Environment::parse_assignment)]
    pub env: Vec<Variable>,
    /// A full build: no artifacts from the previous image, no build cache.
    #[arg(long)]
    pub clean: bool,
    /// Push to deploy: write repository ID's post-receive hook so that each `git push`
    /// builds the pushed commit (and restarts --restart's container).
    #[arg(long)]
    pub on_push: bool,
    /// With --on-push: the image each push builds.
    #[arg(long, value_name = "TAG", requires = "on_push")]
    pub tag: Option<BuildTag>,
    /// With --on-push: the container restarted on the new image (HOST[:PORT]/ID); its host
    /// is the repository's.
    #[arg(long, value_name = "HOST/ID", requires = "on_push")]
    pub restart: Option<Locator>,
    /// With --on-push: the repository's host, when --restart does not name it.
    #[arg(long, value_name = "HOST", requires = "on_push")]
    pub host: Option<HostAddr>,
    /// With --on-push: remove the hook instead.
    #[arg(long, requires = "on_push")]
    pub remove: bool,
}

/// The answer of a build lasts as long as the build: a day, unless --timeout says less.
fn client(remote: &Remote, host: HostAddr, timeout: Option<Duration>) -> crate::api::Client {
    let wait = timeout.unwrap_or(Duration::from_secs(86_400));
    crate::api::Client::new(host, wait).with_token(remote.token.clone())
}

/// `gear build`: exits 0 when the image was built, 1 when the build failed.
pub async fn build(
    remote: &Remote,
    a: BuildArgs,
    timeout: Option<Duration>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    if a.on_push {
        return on_push(remote, a, out).await;
    }
    let (mut req, host) = positional(a.args)?;
    req.r#ref = a.git_ref;
    req.environment = a.env;
    req.clean = a.clean;
    follow(remote, host, &Request::BuildImage(req), timeout, out, err).await
}

/// SOURCE BUILDER_IMAGE TAG [HOST]: without HOST (geard's form), this host's agent.
fn positional(args: Vec<String>) -> anyhow::Result<(BuildRequest, HostAddr)> {
    let (source, builder, tag, host) = match <[String; 4]>::try_from(args) {
        Ok([s, b, t, h]) => (s, b, t, h.parse()?),
        Err(args) => match <[String; 3]>::try_from(args) {
            Ok([s, b, t]) => (s, b, t, HostAddr::localhost()),
            Err(_) => bail!("usage: gear build SOURCE BUILDER_IMAGE TAG [HOST[:PORT]]"),
        },
    };
    let req = BuildRequest::new(
        source.parse::<Source>()?,
        builder.parse::<Image>()?,
        tag.parse::<BuildTag>()?,
    );
    Ok((req, host))
}

/// Prints a build's answer: its log on `out`, which build it is and how it ended on `err`.
async fn follow(
    remote: &Remote,
    host: HostAddr,
    req: &Request,
    timeout: Option<Duration>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let client = client(remote, host.clone(), timeout);
    let mut end: Option<BuildInfo> = None;
    let mut id = None;
    let reading = client.lines(req, |value| {
        match serde_json::from_value::<BuildLine>(value)? {
            BuildLine::Started { started } => {
                writeln!(err, "gear build: build {} ({})", started.id, started.unit)?;
                id = Some(started.id);
            }
            BuildLine::Output { output } => {
                out.write_all(output.as_bytes())?;
                out.flush()?;
            }
            BuildLine::Ended { ended } => end = Some(ended),
            BuildLine::Alive {} => {}
        }
        Ok(())
    });
    tokio::select! {
        r = reading => r?,
        _ = tokio::signal::ctrl_c() => {
            let id = id.map_or(String::new(), |i| format!(" {i}"));
            let _ = writeln!(err, "gear build: interrupted; the build goes on: gear build-logs --follow {host}{id}");
            std::process::exit(130);
        }
    }
    let end = end.ok_or_else(|| anyhow!("{host}: the answer ended before the build"))?;
    let took = end.duration_ms.unwrap_or(0) as f64 / 1000.0;
    match end.result {
        BuildResult::Success => {
            writeln!(
                err,
                "gear build: built {} ({}) in {took:.1} s",
                end.tag,
                end.image.as_deref().unwrap_or("?")
            )?;
            Ok(true)
        }
        _ => {
            writeln!(
                err,
                "gear build: build {} of {} failed: {}",
                end.id,
                end.tag,
                end.reason.as_deref().unwrap_or("no reason given")
            )?;
            Ok(false)
        }
    }
}

/// `gear build --on-push repo://ID [BUILDER] --tag T [--restart HOST/CTR]`.
async fn on_push(remote: &Remote, a: BuildArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let usage = "usage: gear build --on-push repo://ID [BUILDER_IMAGE] --tag TAG [--restart HOST/ID | --host HOST]";
    let repo = match a.args.first().map(|s| s.parse::<Source>()) {
        Some(Ok(Source::Repo(id))) => id,
        _ => bail!("{usage}: the source must be a gear repository, repo://ID"),
    };
    if a.args.len() > 2 {
        bail!("{usage}");
    }
    let host = match (&a.restart, a.host) {
        (Some(l), None) => l.host.clone(),
        (None, Some(h)) => h,
        (None, None) => HostAddr::localhost(),
        (Some(_), Some(_)) => bail!("--restart names the host already; leave out --host"),
    };
    let on = if a.remove {
        None
    } else {
        Some(OnPush {
            builder: a.args.get(1).map(|b| b.parse()).transpose()?,
            tag: a.tag.context("--on-push needs --tag TAG")?,
            restart: a.restart.map(|l| l.id),
            branch: a.git_ref,
            environment: a.env,
            clean: a.clean,
        })
    };
    let answer = client(remote, host.clone(), Some(Duration::from_secs(60)))
        .send(&Request::OnPush {
            repo: repo.clone(),
            on: on.clone(),
        })
        .await?;
    let _ = answer;
    match on {
        Some(on) => writeln!(
            out,
            "{host}: each push to repo://{repo} builds {}{}",
            on.tag,
            on.restart
                .map_or(String::new(), |c| format!(" and restarts {c}"))
        )?,
        None => writeln!(out, "{host}: pushes to repo://{repo} no longer build")?,
    }
    Ok(true)
}

/// `gear builds HOST...`: a table of running and recent builds (or the JSON answers).
pub async fn list(
    remote: &Remote,
    hosts: &[HostAddr],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut rows = Vec::new();
    let mut ok = true;
    for host in hosts {
        match remote.client(host).json::<Builds>(&Request::Builds).await {
            Ok(builds) if json => writeln!(out, "{}", serde_json::to_string(&builds)?)?,
            Ok(builds) => rows.extend(builds.builds.iter().map(|b| row(host, b))),
            Err(e) => {
                writeln!(err, "{e:#}")?;
                ok = false;
            }
        }
    }
    if !json {
        let header = [
            "HOST", "BUILD", "TAG", "RESULT", "DURATION", "IMAGE", "SOURCE", "REASON",
        ];
        write!(out, "{}", super::table::render(&header, &rows))?;
    }
    Ok(ok)
}

fn row(host: &HostAddr, b: &BuildInfo) -> Vec<String> {
    let result = match (b.result, b.incremental) {
        (BuildResult::Running, _) => "running",
        (BuildResult::Success, true) => "success (incremental)",
        (BuildResult::Success, false) => "success",
        (BuildResult::Failed, _) => "failed",
    };
    let image = b.image.as_deref().unwrap_or("");
    let short = image.strip_prefix("sha256:").unwrap_or(image);
    vec![
        host.to_string(),
        b.id.to_string(),
        b.tag.clone(),
        result.into(),
        b.duration_ms
            .map_or(String::new(), |d| format!("{:.1}s", d as f64 / 1000.0)),
        short.chars().take(12).collect(),
        match &b.r#ref {
            Some(r) => format!("{}@{r}", b.source),
            None => b.source.clone(),
        },
        b.reason.clone().unwrap_or_default(),
    ]
}

/// `gear build-logs HOST BUILD [--follow]`: BUILD is a build number, or a tag (its latest
/// build).
pub async fn logs(
    remote: &Remote,
    host: HostAddr,
    build: &str,
    follow_it: bool,
    timeout: Option<Duration>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let id = match build_number(build) {
        Some(id) => id,
        None => {
            let tag: BuildTag = build.parse()?;
            let builds: Builds = remote.client(&host).json(&Request::Builds).await?;
            builds
                .builds
                .into_iter()
                .find(|b| b.tag == tag.as_str())
                .map(|b| b.id)
                .ok_or_else(|| anyhow!("{host}: no build of {tag}"))?
        }
    };
    let req = Request::BuildLog {
        id,
        follow: follow_it,
    };
    if follow_it {
        return follow(remote, host, &req, timeout, out, err).await;
    }
    client(remote, host, timeout).stream_to(&req, out).await?;
    Ok(true)
}

/// A build number as gear makes them (17 hexadecimal digits), else `None` (a tag).
fn build_number(s: &str) -> Option<BuildId> {
    (s.len() == 17 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::command::{Cli, Command};

    #[test]
    fn the_cli_forms_parse() {
        let cli = Cli::try_parse_from([
            "gear",
            "build",
            "/srv/site",
            "gear-test/s2i-web",
            "site",
            "localhost",
            "--env",
            "A=1",
            "--clean",
        ])
        .unwrap();
        let Command::Build(a) = cli.command else {
            panic!("not build")
        };
        assert_eq!(a.args.len(), 4);
        assert!(a.clean);
        // geard's form has no host: this host's agent.
        let geard = ["/srv/site", "gear-test/s2i-web", "site"]
            .map(String::from)
            .to_vec();
        let (req, host) = super::positional(geard).unwrap();
        assert_eq!(host, crate::locator::HostAddr::localhost());
        assert_eq!(req.tag.as_str(), "site:latest");
        let two = ["/srv/site", "b"].map(String::from).to_vec();
        assert!(super::positional(two).is_err());
        let cli = Cli::try_parse_from([
            "gear",
            "build",
            "--on-push",
            "repo://site",
            "--tag",
            "site",
            "--restart",
            "localhost/site-1",
        ])
        .unwrap();
        let Command::Build(a) = cli.command else {
            panic!("not build")
        };
        assert_eq!(a.restart.unwrap().id.as_str(), "site-1");
        assert!(super::build_number("18a2b3c4d5e6f7000").is_some());
        assert!(super::build_number("site").is_none());
    }
}
