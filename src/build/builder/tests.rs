use std::collections::VecDeque;
use std::path::Path;

use super::*;
use crate::build::BuildRequest;
use crate::build::record::BuildRecord;

/// Records every command; answers from a script of (prefix, exit code, stdout), else 0.
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    answers: VecDeque<(&'static str, i32, &'static str)>,
}

impl Fake {
    fn answer(&mut self, argv: &[String]) -> (i32, Vec<u8>) {
        let line = argv.join(" ");
        // Copying the source is real: what the build does next depends on the files.
        if argv[0] == "cp" {
            let ok = std::process::Command::new("cp")
                .args(&argv[1..])
                .status()
                .unwrap();
            self.calls.push(line);
            return (ok.code().unwrap_or(1), vec![]);
        }
        self.calls.push(line.clone());
        if let Some(i) = self.answers.iter().position(|(p, _, _)| line.contains(p)) {
            let (_, code, out) = self.answers.remove(i).unwrap();
            return (code, out.as_bytes().to_vec());
        }
        (0, vec![])
    }
}

impl Tools for &mut Fake {
    fn run(&mut self, argv: &[String]) -> anyhow::Result<i32> {
        Ok(self.answer(argv).0)
    }
    fn output(&mut self, argv: &[String]) -> anyhow::Result<(i32, Vec<u8>)> {
        Ok(self.answer(argv))
    }
    fn run_to_file(&mut self, argv: &[String], file: &Path) -> anyhow::Result<i32> {
        let (code, out) = self.answer(argv);
        std::fs::write(file, out)?;
        Ok(code)
    }
}

const CONFIG: &str =
    r#"{"Labels":{"io.openshift.s2i.scripts-url":"image:///usr/libexec/s2i"},"Entrypoint":null}"#;

fn build(source: &Path, fake: &mut Fake, clean: bool) -> (anyhow::Result<()>, BuildRecord, String) {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path());
    let mut req = BuildRequest::new(
        source.display().to_string().parse().unwrap(),
        "gear-test/s2i-web".parse().unwrap(),
        "gear-test/site".parse().unwrap(),
    );
    req.clean = clean;
    let mut rec = BuildRecord::start(req);
    let mut log = Vec::new();
    let work = root.path().join("work");
    let result = Build {
        paths: &paths,
        rec: &mut rec,
        work: work.clone(),
        tools: &mut *fake,
        log: &mut log,
        docker: "docker".into(),
    }
    .run();
    assert!(!work.exists(), "the working directory is removed");
    (result, rec, String::from_utf8(log).unwrap())
}

fn called(fake: &Fake, what: &str) -> bool {
    fake.calls.iter().any(|c| c.contains(what))
}

#[test]
fn an_s2i_build_assembles_commits_with_run_and_removes_its_container() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("index.html"), "hi").unwrap();
    let mut fake = Fake::default();
    fake.answers
        .push_back(("inspect --format {{json .Config}}", 0, CONFIG));
    // No previous image of the tag: a full build.
    fake.answers
        .push_back(("inspect --format {{.Id}} gear-test/site:latest", 1, ""));
    fake.answers.push_back(("docker commit", 0, "sha256:new\n"));
    let (result, rec, log) = build(src.path(), &mut fake, false);
    result.unwrap();
    assert_eq!(rec.image.as_deref(), Some("sha256:new"));
    assert_eq!(rec.strategy.as_deref(), Some("s2i"));
    assert!(!rec.incremental);
    let create = fake
        .calls
        .iter()
        .find(|c| c.contains("docker create"))
        .unwrap();
    assert!(create.contains("--entrypoint /bin/sh"), "{create}");
    assert!(
        create.contains("exec '/usr/libexec/s2i/assemble'"),
        "{create}"
    );
    let commit = fake
        .calls
        .iter()
        .find(|c| c.contains("docker commit"))
        .unwrap();
    assert!(
        commit.contains(r#"--change CMD ["/usr/libexec/s2i/run"]"#),
        "{commit}"
    );
    assert!(commit.contains("--change ENTRYPOINT []"), "{commit}");
    assert!(commit.ends_with(&format!("gear-build-{} gear-test/site:latest", rec.id)));
    assert!(called(
        &fake,
        &format!("docker rm -f gear-build-{}", rec.id)
    ));
    assert!(
        log.contains("Running assemble in gear-test/s2i-web"),
        "{log}"
    );
}

#[test]
fn a_failing_assemble_commits_nothing_and_says_why() {
    let src = tempfile::tempdir().unwrap();
    let mut fake = Fake::default();
    fake.answers
        .push_back(("inspect --format {{json .Config}}", 0, CONFIG));
    fake.answers
        .push_back(("{{.Id}} gear-test/site:latest", 1, ""));
    fake.answers.push_back(("docker start --attach", 3, ""));
    let (result, rec, _) = build(src.path(), &mut fake, false);
    assert_eq!(
        result.unwrap_err().to_string(),
        "assemble failed (exit code 3)"
    );
    assert!(!called(&fake, "docker commit"));
    assert!(!called(&fake, "docker rmi"));
    assert!(called(
        &fake,
        &format!("docker rm -f gear-build-{}", rec.id)
    ));
}

#[test]
fn a_builder_without_scripts_is_named_in_the_reason() {
    let src = tempfile::tempdir().unwrap();
    let mut fake = Fake::default();
    fake.answers
        .push_back(("inspect --format {{json .Config}}", 0, "{}"));
    fake.answers
        .push_back(("{{.Id}} gear-test/site:latest", 1, ""));
    fake.answers.push_back(("docker start --attach", 98, ""));
    let (result, _, _) = build(src.path(), &mut fake, false);
    let reason = result.unwrap_err().to_string();
    assert!(
        reason.contains("has no assemble script at /usr/libexec/s2i/assemble"),
        "{reason}"
    );
}

#[test]
fn a_missing_source_fails_before_docker_is_asked_anything() {
    let mut fake = Fake::default();
    let (result, _, _) = build(Path::new("/nonexistent/src"), &mut fake, false);
    let reason = result.unwrap_err().to_string();
    assert_eq!(
        reason,
        "source directory /nonexistent/src does not exist on the host"
    );
    assert!(!called(&fake, "docker create"));
}

#[test]
fn a_previous_image_makes_the_build_incremental_unless_clean() {
    let src = tempfile::tempdir().unwrap();
    for clean in [false, true] {
        let mut fake = Fake::default();
        fake.answers
            .push_back(("inspect --format {{json .Config}}", 0, CONFIG));
        fake.answers.push_back((
            "inspect --format {{.Id}} gear-test/site:latest",
            0,
            "sha256:old\n",
        ));
        fake.answers.push_back(("docker commit", 0, "sha256:new\n"));
        let (result, rec, _) = build(src.path(), &mut fake, clean);
        result.unwrap();
        assert_eq!(rec.incremental, !clean);
        assert_eq!(called(&fake, "save-artifacts"), !clean);
        // The untagged previous image is removed (docker refuses while it is used).
        assert!(called(&fake, "docker rmi sha256:old"));
    }
}

#[test]
fn source_scripts_are_uploaded_and_a_dockerfile_alone_uses_docker_build() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let mut fake = Fake::default();
    let (result, rec, _) = build(src.path(), &mut fake, false);
    result.unwrap();
    assert_eq!(rec.strategy.as_deref(), Some("dockerfile"));
    assert!(called(
        &fake,
        "docker build --force-rm -t gear-test/site:latest"
    ));

    std::fs::create_dir_all(src.path().join(".s2i/bin")).unwrap();
    std::fs::write(src.path().join(".s2i/bin/assemble"), "#!/bin/sh\n").unwrap();
    let mut fake = Fake::default();
    fake.answers
        .push_back(("inspect --format {{json .Config}}", 0, CONFIG));
    fake.answers
        .push_back(("{{.Id}} gear-test/site:latest", 1, ""));
    let (result, rec, _) = build(src.path(), &mut fake, false);
    result.unwrap();
    assert_eq!(rec.strategy.as_deref(), Some("s2i"));
    let create = fake
        .calls
        .iter()
        .find(|c| c.contains("docker create"))
        .unwrap();
    assert!(create.contains("exec '/tmp/scripts/assemble'"), "{create}");
    assert!(create.contains("[ -x '/usr/libexec/s2i/run' ]"), "{create}");
}

#[test]
fn scripts_urls() {
    assert_eq!(
        ScriptsUrl::parse("image:///usr/local/s2i/").unwrap(),
        ScriptsUrl::Image("/usr/local/s2i".into())
    );
    assert_eq!(
        ScriptsUrl::parse("file:///srv/s2i").unwrap(),
        ScriptsUrl::Host("/srv/s2i".into())
    );
    assert!(ScriptsUrl::parse("https://example.com/s2i").is_err());
    let env = serde_json::json!({"Env": ["PATH=/bin", "STI_SCRIPTS_URL=image:///opt/sti"]});
    assert_eq!(
        ScriptsUrl::of_image(&env).unwrap(),
        ScriptsUrl::Image("/opt/sti".into())
    );
    assert_eq!(
        ScriptsUrl::of_image(&serde_json::json!({})).unwrap(),
        ScriptsUrl::Image("/usr/libexec/s2i".into())
    );
}
