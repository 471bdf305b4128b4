//! Source to image: the builder image's `assemble` turns the source into a runnable image,
//! `run` is its command, `save-artifacts` carries files of the previous image into the
//! next build (source-to-image's conventions: the source in `/tmp/src`, uploaded scripts
//! in `/tmp/scripts`, artifacts in `/tmp/artifacts`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::{Build, DEFAULT_SCRIPTS, SCRIPTS_ENV, SCRIPTS_LABEL, Tools, args};

/// Where a builder image's scripts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptsUrl {
    /// A directory inside the image (`image:///usr/libexec/s2i`, or a bare path).
    Image(String),
    /// A directory on the host (`file:///srv/scripts`), uploaded into the container.
    Host(PathBuf),
}

impl ScriptsUrl {
    /// Reads a scripts URL; http(s) ones are refused (a build fetches nothing from the
    /// network but its source).
    pub fn parse(url: &str) -> anyhow::Result<ScriptsUrl> {
        let url = url.trim();
        if let Some(p) = url.strip_prefix("image://") {
            return Ok(ScriptsUrl::Image(p.trim_end_matches('/').to_string()));
        }
        if let Some(p) = url.strip_prefix("file://") {
            return Ok(ScriptsUrl::Host(PathBuf::from(p)));
        }
        if url.starts_with('/') {
            return Ok(ScriptsUrl::Image(url.trim_end_matches('/').to_string()));
        }
        bail!("scripts URL '{url}' is not supported: use image:///PATH or file:///PATH")
    }

    /// Where the builder image's config says its scripts are: the label, else geard's
    /// `STI_SCRIPTS_URL` variable, else `/usr/libexec/s2i` in the image.
    pub fn of_image(config: &serde_json::Value) -> anyhow::Result<ScriptsUrl> {
        let label = config["Labels"][SCRIPTS_LABEL].as_str();
        let env = config["Env"].as_array().and_then(|vars| {
            vars.iter().find_map(|v| {
                v.as_str()?
                    .strip_prefix(SCRIPTS_ENV)?
                    .strip_prefix('=')
                    .map(str::to_string)
            })
        });
        ScriptsUrl::parse(
            label
                .map(str::to_string)
                .or(env)
                .as_deref()
                .unwrap_or(DEFAULT_SCRIPTS),
        )
    }
}

/// The three scripts' paths inside the build container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    /// `assemble`.
    pub assemble: String,
    /// `run`: the image's command.
    pub run: String,
    /// `save-artifacts`.
    pub save_artifacts: String,
    /// Whether some script is uploaded into `/tmp/scripts`.
    pub uploads: bool,
}

const NAMES: [&str; 3] = ["assemble", "run", "save-artifacts"];

/// Chooses each script: the source's (`.s2i/bin/NAME`), else the host directory of a
/// `file://` URL, else the image's; the chosen files are copied to `<upload>/scripts`.
pub fn choose(
    source_dir: Option<&Path>,
    url: &ScriptsUrl,
    upload: &Path,
) -> anyhow::Result<Scripts> {
    let mut paths = Vec::new();
    let mut uploads = false;
    for name in NAMES {
        let from_host = source_dir
            .map(|d| d.join(name))
            .filter(|p| p.is_file())
            .or_else(|| match url {
                ScriptsUrl::Host(dir) => Some(dir.join(name)).filter(|p| p.is_file()),
                ScriptsUrl::Image(_) => None,
            });
        match (from_host, url) {
            (Some(file), _) => {
                let dir = upload.join("scripts");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let to = dir.join(name);
                std::fs::copy(&file, &to).with_context(|| format!("copying {}", file.display()))?;
                set_executable(&to)?;
                uploads = true;
                paths.push(format!("/tmp/scripts/{name}"));
            }
            (None, ScriptsUrl::Image(dir)) => paths.push(format!("{dir}/{name}")),
            // Not in the host directory either: the check in the container reports it.
            (None, ScriptsUrl::Host(_)) => paths.push(format!("/tmp/scripts/{name}")),
        }
    }
    let [assemble, run, save_artifacts] = <[String; 3]>::try_from(paths).expect("three");
    Ok(Scripts {
        assemble,
        run,
        save_artifacts,
        uploads,
    })
}

fn set_executable(p: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", p.display()))
}

/// Quotes `s` for `/bin/sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Exit codes of the check before a script runs: the builder has no such script.
const NO_ASSEMBLE: i32 = 98;
const NO_RUN: i32 = 97;
const NO_SAVE: i32 = 99;

/// The build container's command: check that the scripts are there, then `assemble`.
pub fn assemble_command(s: &Scripts) -> String {
    format!(
        "[ -x {a} ] || exit {NO_ASSEMBLE}; [ -x {r} ] || exit {NO_RUN}; exec {a}",
        a = quote(&s.assemble),
        r = quote(&s.run),
    )
}

/// The `docker commit --change` lines: `run` is the command, the builder's entrypoint
/// is kept (the build container had `/bin/sh` as its own).
pub fn commit_changes(s: &Scripts, builder_entrypoint: &serde_json::Value) -> Vec<String> {
    let entrypoint = match builder_entrypoint.as_array() {
        Some(a) if !a.is_empty() => serde_json::to_string(a).unwrap_or_default(),
        _ => "[]".into(),
    };
    let cmd = serde_json::to_string(&[&s.run]).unwrap_or_default();
    vec![format!("ENTRYPOINT {entrypoint}"), format!("CMD {cmd}")]
}

impl<T: Tools, W: Write> Build<'_, T, W> {
    /// The source-to-image build, with the source's own scripts in `source_scripts`.
    pub(super) fn s2i(&mut self, source_scripts: Option<&Path>) -> anyhow::Result<()> {
        let builder = self.rec.request.base_image.to_string();
        let tag = self.rec.request.tag.to_string();
        let config = self.builder_config(&builder)?;
        let url = ScriptsUrl::of_image(&config)?;
        let upload = self.work.join("tmp");
        let scripts = choose(source_scripts, &url, &upload)?;
        let previous = self.image_id(&tag)?;
        if !self.rec.request.clean && previous.is_some() {
            self.save_artifacts(&tag, &scripts)?;
        }
        let env_file = self.work.join("env");
        let env: String = (self.rec.request.environment.iter())
            .map(|v| format!("{}={}\n", v.name, v.value))
            .collect();
        crate::atomic_file::write(&env_file, env.as_bytes(), 0o600)?;
        let name = self.container();
        self.say(format_args!("Running assemble in {builder}"));
        let create = self.docker(&[
            "create",
            "--name",
            &name,
            "--entrypoint",
            "/bin/sh",
            "--env-file",
            &env_file.display().to_string(),
            &builder,
            "-c",
            &assemble_command(&scripts),
        ]);
        if self.tools.output(&create)?.0 != 0 {
            bail!("creating the build container from {builder} failed");
        }
        // The directory `tmp` is copied into `/`: /tmp/src, /tmp/scripts, /tmp/artifacts.
        let from = upload.display().to_string();
        if self
            .tools
            .run(&self.docker(&["cp", &from, &format!("{name}:/")]))?
            != 0
        {
            bail!("copying the source into the build container failed");
        }
        match self
            .tools
            .run(&self.docker(&["start", "--attach", &name]))?
        {
            0 => {}
            NO_ASSEMBLE => bail!(
                "builder image {builder} has no assemble script at {} (add the label {SCRIPTS_LABEL}, or .s2i/bin/assemble to the source)",
                scripts.assemble
            ),
            NO_RUN => bail!(
                "builder image {builder} has no run script at {}",
                scripts.run
            ),
            n => bail!("assemble failed (exit code {n})"),
        }
        self.say(format_args!("Committing {tag}"));
        let mut commit = self.docker(&["commit"]);
        for change in commit_changes(&scripts, &config["Entrypoint"]) {
            commit.extend(["--change".into(), change]);
        }
        commit.extend([name.clone(), tag.clone()]);
        let (code, out) = self.tools.output(&commit)?;
        if code != 0 {
            bail!("committing the build container as {tag} failed");
        }
        let image = String::from_utf8_lossy(&out).trim().to_string();
        self.say(format_args!("Built {tag} ({image})"));
        self.rec.image = Some(image.clone());
        // The previous image is untagged now; remove it unless something still uses it
        // (a running container, another tag): then `docker rmi` refuses, which is fine.
        if let Some(old) = previous.filter(|old| *old != image) {
            let _ = self.tools.output(&self.docker(&["rmi", &old]));
        }
        Ok(())
    }

    /// The builder image's config, pulling it if the host does not have it.
    fn builder_config(&mut self, builder: &str) -> anyhow::Result<serde_json::Value> {
        let inspect = self.docker(&["image", "inspect", "--format", "{{json .Config}}", builder]);
        let (mut code, mut out) = self.tools.output(&inspect)?;
        if code != 0 {
            self.say(format_args!("Pulling {builder}"));
            if self.tools.run(&self.docker(&["pull", builder]))? != 0 {
                bail!("builder image {builder} is not on the host and could not be pulled");
            }
            (code, out) = self.tools.output(&inspect)?;
        }
        if code != 0 {
            bail!("cannot inspect builder image {builder}");
        }
        serde_json::from_slice(&out).context("reading the builder image's config")
    }

    /// Runs `save-artifacts` in a container of the previous image and unpacks its tar
    /// into `/tmp/artifacts` of the upload; a missing or failing script makes a full build.
    fn save_artifacts(&mut self, previous: &str, scripts: &Scripts) -> anyhow::Result<()> {
        let name = format!("{}-save", self.container());
        let check = format!(
            "[ -x {s} ] || exit {NO_SAVE}; exec {s}",
            s = quote(&scripts.save_artifacts)
        );
        let create = self.docker(&[
            "create",
            "--name",
            &name,
            "--entrypoint",
            "/bin/sh",
            previous,
            "-c",
            &check,
        ]);
        if self.tools.output(&create)?.0 != 0 {
            self.say("Cannot run the previous image: a full build");
            return Ok(());
        }
        if scripts.uploads {
            let from = format!("{}/.", self.work.join("tmp/scripts").display());
            self.tools
                .run(&self.docker(&["cp", &from, &format!("{name}:/tmp/scripts")]))?;
        }
        let tar = self.work.join("artifacts.tar");
        let code = self
            .tools
            .run_to_file(&self.docker(&["start", "--attach", &name]), &tar)?;
        let _ = self.tools.output(&self.docker(&["rm", "-f", &name]));
        match code {
            0 => {
                let dir = self.work.join("tmp/artifacts");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let untar = args([
                    "tar",
                    "-x",
                    "-f",
                    &tar.display().to_string(),
                    "-C",
                    &dir.display().to_string(),
                ]);
                if self.tools.run(&untar)? != 0 {
                    bail!("save-artifacts did not write a tar archive");
                }
                let _ = std::fs::remove_file(&tar);
                self.rec.incremental = true;
                self.say("Restored the artifacts of the previous image (incremental build)");
            }
            NO_SAVE => self.say("The builder has no save-artifacts script: a full build"),
            n => self.say(format_args!(
                "save-artifacts failed (exit code {n}): a full build"
            )),
        }
        Ok(())
    }
}
