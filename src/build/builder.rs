//! What `gear-builder` does inside its unit: fetch the source into a private working
//! directory, then either run the builder image's source-to-image scripts in a container
//! and commit it as the tag, or build a `Dockerfile` source with `docker build`.
//!
//! Docker and git are driven through their command-line clients ([`Tools`]): a build is
//! a few dozen seconds of work in a handful of calls, where a client process's ~25 ms is
//! noise, and the clients already stream build output, tar a directory into a container
//! (`docker cp`) and speak every Engine API version. Whatever happens, the build's
//! containers are removed before it ends and nothing is committed unless `assemble`
//! succeeded, so a failed build leaves the tag's previous image as it was.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};

use super::record::BuildRecord;
use super::source::Source;
use crate::paths::Paths;

mod s2i;
#[cfg(test)]
mod tests;

pub use s2i::{Scripts, ScriptsUrl};

/// The label of a builder image that says where its scripts are (source-to-image's).
pub const SCRIPTS_LABEL: &str = "io.openshift.s2i.scripts-url";
/// geard's environment variable for the same, read when the label is absent.
pub const SCRIPTS_ENV: &str = "STI_SCRIPTS_URL";
/// Where the scripts are when the image says nothing.
pub const DEFAULT_SCRIPTS: &str = "image:///usr/libexec/s2i";

/// The programs a build runs. The real one spawns them with the build's stdout and
/// stderr (the log); the fake in the tests records them.
pub trait Tools {
    /// Runs `argv`, its output into the log; returns its exit code.
    fn run(&mut self, argv: &[String]) -> anyhow::Result<i32>;
    /// Runs `argv` and returns its exit code and stdout (stderr goes to the log).
    fn output(&mut self, argv: &[String]) -> anyhow::Result<(i32, Vec<u8>)>;
    /// Runs `argv` with its stdout into `file` (stderr to the log).
    fn run_to_file(&mut self, argv: &[String], file: &Path) -> anyhow::Result<i32>;
    /// Runs `argv` with no output at all (clean-up, where "no such container" is fine).
    fn quiet(&mut self, argv: &[String]) -> anyhow::Result<i32> {
        self.output(argv).map(|(code, _)| code)
    }
}

/// [`Tools`] that spawn real processes.
#[derive(Debug, Default)]
pub struct System;

fn command(argv: &[String]) -> anyhow::Result<std::process::Command> {
    let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null());
    Ok(cmd)
}

fn code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl Tools for System {
    fn run(&mut self, argv: &[String]) -> anyhow::Result<i32> {
        let status = command(argv)?
            .status()
            .with_context(|| format!("running {}", argv[0]))?;
        Ok(code(status))
    }

    fn output(&mut self, argv: &[String]) -> anyhow::Result<(i32, Vec<u8>)> {
        let out = command(argv)?
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", argv[0]))?;
        Ok((code(out.status), out.stdout))
    }

    fn run_to_file(&mut self, argv: &[String], file: &Path) -> anyhow::Result<i32> {
        let f =
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
        let status = command(argv)?
            .stdout(f)
            .status()
            .with_context(|| format!("running {}", argv[0]))?;
        Ok(code(status))
    }

    fn quiet(&mut self, argv: &[String]) -> anyhow::Result<i32> {
        let status = command(argv)?
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {}", argv[0]))?;
        Ok(code(status))
    }
}

/// `argv` from string slices.
fn args<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.into_iter().map(String::from).collect()
}

/// One build in progress: its record, working directory and tools.
pub struct Build<'a, T: Tools, W: Write> {
    /// Where the repositories are.
    pub paths: &'a Paths,
    /// The record: the request in, the image, strategy and incrementality out.
    pub rec: &'a mut BuildRecord,
    /// The private working directory (created by [`Build::run`], removed at its end).
    pub work: PathBuf,
    /// The programs.
    pub tools: T,
    /// The log (the unit's stdout).
    pub log: W,
    /// The docker client.
    pub docker: String,
}

impl<T: Tools, W: Write> std::fmt::Debug for Build<'_, T, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Build({})", self.rec.id)
    }
}

impl<T: Tools, W: Write> Build<'_, T, W> {
    /// The name of the build's container (and `-save` for `save-artifacts`).
    pub fn container(&self) -> String {
        container_name(self.rec)
    }

    /// Writes one progress line to the log.
    fn say(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.log, "---> {text}");
        let _ = self.log.flush();
    }

    fn docker(&self, rest: &[&str]) -> Vec<String> {
        std::iter::once(self.docker.as_str())
            .chain(rest.iter().copied())
            .map(String::from)
            .collect()
    }

    /// Runs the whole build; the error is the reason it failed. The working directory and
    /// the build's containers are gone when it returns, success or not.
    pub fn run(&mut self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.work.join("tmp"))
            .with_context(|| format!("creating {}", self.work.display()))?;
        // `tmp` becomes the container's /tmp (created if the image has none): sticky and
        // writable by all, as /tmp must stay for the image's user.
        std::fs::set_permissions(
            self.work.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .context("setting the mode of the upload directory")?;
        let result = self.steps();
        self.clean_up();
        result
    }

    fn steps(&mut self) -> anyhow::Result<()> {
        let src = self.work.join("tmp/src");
        self.fetch(&src)?;
        let s2i_dir = [".s2i/bin", ".sti/bin"]
            .into_iter()
            .map(|d| src.join(d))
            .find(|d| d.is_dir());
        if s2i_dir.is_none() && src.join("Dockerfile").is_file() {
            self.rec.strategy = Some("dockerfile".into());
            return self.dockerfile(&src);
        }
        self.rec.strategy = Some("s2i".into());
        self.s2i(s2i_dir.as_deref())
    }

    /// Copies or clones the source into `src`.
    fn fetch(&mut self, src: &Path) -> anyhow::Result<()> {
        let source = self.rec.request.source.clone();
        let dst = src.display().to_string();
        if let Source::Dir(dir) = &source {
            if !dir.is_dir() {
                bail!(
                    "source directory {} does not exist on the host",
                    dir.display()
                );
            }
            self.say(format_args!("Copying source from {}", dir.display()));
            std::fs::create_dir_all(src).with_context(|| format!("creating {dst}"))?;
            let from = format!("{}/.", dir.display());
            if self.tools.run(&args(["cp", "-a", "--", &from, &dst]))? != 0 {
                bail!("copying the source from {} failed", dir.display());
            }
            return Ok(());
        }
        let url = source.clone_url(self.paths).unwrap_or_default();
        if let Source::Repo(id) = &source
            && !self.paths.repository(id).is_dir()
        {
            bail!("repository {id} does not exist on the host");
        }
        self.say(format_args!("Cloning {source}"));
        // The repository belongs to its git user and the builder runs as root: git's
        // ownership check would refuse to read it. Only a global (or system) setting
        // reaches the upload-pack a local clone starts, hence a global file of our own.
        let config = self.work.join("gitconfig");
        std::fs::write(&config, "[safe]\n\tdirectory = *\n")
            .with_context(|| format!("writing {}", config.display()))?;
        let global = format!("GIT_CONFIG_GLOBAL={}", config.display());
        let clone = args(["env", &global, "git", "clone", "--quiet", "--", &url, &dst]);
        if self.tools.run(&clone)? != 0 {
            bail!("cloning {source} failed");
        }
        if let Some(r) = self.rec.request.r#ref.clone() {
            let checkout = args([
                "git",
                "-C",
                &dst,
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                r.as_str(),
                "--",
            ]);
            if self.tools.run(&checkout)? != 0 {
                bail!("{source} has no branch, tag or commit '{r}'");
            }
        }
        let (_, head) = self
            .tools
            .output(&args(["git", "-C", &dst, "rev-parse", "HEAD"]))?;
        self.say(format_args!(
            "Source at commit {}",
            String::from_utf8_lossy(&head).trim()
        ));
        Ok(())
    }

    /// Builds a `Dockerfile` source with the Engine's build API (`docker build`).
    fn dockerfile(&mut self, src: &Path) -> anyhow::Result<()> {
        let tag = self.rec.request.tag.to_string();
        self.say(format_args!("Building the source's Dockerfile as {tag}"));
        // --force-rm: no intermediate container is left, even when a step fails.
        let mut argv = self.docker(&["build", "--force-rm", "-t", &tag]);
        if self.rec.request.clean {
            argv.push("--no-cache".into());
        }
        for v in &self.rec.request.environment {
            argv.extend(["--build-arg".into(), format!("{}={}", v.name, v.value)]);
        }
        argv.push(src.display().to_string());
        match self.tools.run(&argv)? {
            0 => {}
            n => bail!("docker build failed (exit code {n})"),
        }
        self.rec.image = self.image_id(&tag)?;
        Ok(())
    }

    /// The id of image `reference`, if the host has it.
    fn image_id(&mut self, reference: &str) -> anyhow::Result<Option<String>> {
        let argv = self.docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
        let (code, out) = self.tools.output(&argv)?;
        Ok((code == 0).then(|| String::from_utf8_lossy(&out).trim().to_string()))
    }

    /// Removes the build's containers and its working directory.
    fn clean_up(&mut self) {
        let name = self.container();
        let save = format!("{name}-save");
        let argv = self.docker(&["rm", "-f", &name, &save]);
        // Absent containers are fine: rm -f only fails for those.
        let _ = self.tools.quiet(&argv);
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// `gear-build-<n>`: the Docker container of build `rec`.
pub fn container_name(rec: &BuildRecord) -> String {
    format!("gear-build-{}", rec.id)
}

/// `gear-builder run`: carries out build `id` in a working directory under the unit's
/// private `/tmp`, its log on stdout, and records how it ended. `Ok(false)`: it failed
/// (the reason is in the record and the log).
pub fn run_recorded(paths: &Paths, id: &super::record::BuildId) -> anyhow::Result<bool> {
    use super::record::BuildResult;
    let mut rec = BuildRecord::load(paths, id)?;
    let result = Build {
        paths,
        rec: &mut rec,
        work: std::env::temp_dir().join(format!("gear-build-{id}")),
        tools: System,
        log: std::io::stdout(),
        docker: crate::docker::DOCKER.into(),
    }
    .run();
    match &result {
        Ok(()) => rec.end(BuildResult::Success, None),
        Err(e) => rec.end(BuildResult::Failed, Some(format!("{e:#}"))),
    }
    let took = rec.duration_ms.unwrap_or(0) as f64 / 1000.0;
    match &result {
        Ok(()) => println!(
            "---> Build {id} succeeded in {took:.1} s: {} is {}",
            rec.request.tag,
            rec.image.as_deref().unwrap_or("?")
        ),
        Err(e) => println!("---> Build {id} failed after {took:.1} s: {e:#}"),
    }
    rec.save(paths)?;
    Ok(result.is_ok())
}

/// `gear-builder finish`, the unit's stop step: removes the build's containers (a stop
/// kills the docker clients, not the containers they drive) and, when the builder did
/// not record a result, records the failure systemd saw (`$SERVICE_RESULT`).
pub fn finish(paths: &Paths, id: &super::record::BuildId) -> anyhow::Result<()> {
    use super::record::BuildResult;
    let mut rec = BuildRecord::load(paths, id)?;
    let name = container_name(&rec);
    let _ = System.quiet(&args([
        crate::docker::DOCKER,
        "rm",
        "-f",
        &name,
        &format!("{name}-save"),
    ]));
    if rec.result == BuildResult::Running {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let reason = format!(
            "the build was stopped ({}: {} {})",
            var("SERVICE_RESULT"),
            var("EXIT_CODE"),
            var("EXIT_STATUS")
        );
        println!("---> {reason}");
        rec.end(BuildResult::Failed, Some(reason));
        rec.save(paths)?;
    }
    Ok(())
}
