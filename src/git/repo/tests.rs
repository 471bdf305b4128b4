//! Creating, cloning, listing, archiving and deleting repositories with the real `git`
//! in a temporary root (as the caller: unit tests cannot change their uid).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::accounts::fake::FakeAccounts;
use crate::git::archive;
use crate::git::refname::{ArchiveFormat, GitRef};

const OPTS: CreateOptions = CreateOptions { as_owner: false };

fn setup() -> (tempfile::TempDir, Paths, FakeAccounts) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    (dir, paths, FakeAccounts::default())
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@x")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@x")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A work tree with two commits on `trunk` (HEAD) and a tag `v1` on the first.
fn source(root: &Path) -> std::path::PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    run(&src, &["init", "-q", "-b", "trunk"]);
    std::fs::write(src.join("a.txt"), "one\n").unwrap();
    run(&src, &["add", "."]);
    run(&src, &["commit", "-qm", "first"]);
    run(&src, &["tag", "v1"]);
    std::fs::write(src.join("a.txt"), "two\n").unwrap();
    run(&src, &["commit", "-qam", "second"]);
    src
}

fn leftovers(paths: &Paths) -> Vec<String> {
    std::fs::read_dir(paths.repositories())
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_empty_repository_has_main_and_its_user() {
    let (_d, paths, accounts) = setup();
    let id: RepoId = "app1".parse().unwrap();
    let info = create(&paths, &accounts, &id, None, None, OPTS)
        .await
        .unwrap();
    assert_eq!(info.head.as_deref(), Some("main"));
    assert_eq!(info.login, "git-app1");
    assert!(paths.repository(&id).join("objects").is_dir());
    assert!(accounts.users.lock().unwrap().contains_key("git-app1"));
    // Hooks are the repository's own, and none is installed.
    let hooks = std::fs::read_dir(paths.repository(&id).join("hooks")).unwrap();
    assert!(
        hooks
            .filter_map(Result::ok)
            .all(|e| e.file_name().to_string_lossy().ends_with(".sample"))
    );
    let err = create(&paths, &accounts, &id, None, None, OPTS)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Exists(_)), "{err}");
    assert_eq!(list(&paths).unwrap(), vec![info]);
    assert!(leftovers(&paths).is_empty());

    delete(&paths, &accounts, &id).await.unwrap();
    assert!(!paths.repository(&id).exists());
    assert!(accounts.users.lock().unwrap().is_empty());
    assert!(list(&paths).unwrap().is_empty());
    assert!(matches!(
        delete(&paths, &accounts, &id).await,
        Err(RepoError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_clone_of_a_local_path_with_progress_and_archives_of_any_ref() {
    let (d, paths, accounts) = setup();
    let src = source(d.path());
    let id: RepoId = "app2".parse().unwrap();
    let url: SourceUrl = format!("file://{}", src.display()).parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let info = create(&paths, &accounts, &id, Some(&url), Some(&tx), OPTS)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(info.head.as_deref(), Some("trunk"));
    let mut lines = vec![];
    while let Some(l) = rx.recv().await {
        lines.push(l);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Cloning into bare repository")),
        "{lines:?}"
    );

    // The tag and the first commit archive the first content; an unknown ref is refused
    // before anything is sent.
    let first = run(&src, &["rev-parse", "v1"]);
    for r in ["v1", &first[..12], "trunk"] {
        let git_ref: GitRef = r.parse().unwrap();
        let commit = archive::resolve(&paths, &id, &git_ref).await.unwrap();
        let mut s = archive::stream(&paths, &id, &git_ref, &commit, ArchiveFormat::TarGz).unwrap();
        let mut bytes = vec![];
        use futures_util::StreamExt as _;
        while let Some(chunk) = s.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let tgz = d.path().join("a.tgz");
        std::fs::write(&tgz, &bytes).unwrap();
        let out = Command::new("tar")
            .arg("-xzOf")
            .arg(&tgz)
            .arg(format!("app2-{r}/a.txt"))
            .output()
            .unwrap();
        let want = if r == "trunk" { "two\n" } else { "one\n" };
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{r}: {out:?}");
    }
    let err = archive::resolve(&paths, &id, &"nope".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::UnknownRef { .. }), "{err}");

    // A local path works as well, and the clone is a copy (no shared inodes).
    let id3: RepoId = "app3".parse().unwrap();
    let path: SourceUrl = paths.repository(&id).display().to_string().parse().unwrap();
    create(&paths, &accounts, &id3, Some(&path), None, OPTS)
        .await
        .unwrap();
    assert_eq!(list(&paths).unwrap().len(), 2);
}

#[tokio::test]
async fn a_failed_or_abandoned_clone_leaves_nothing() {
    let (_d, paths, accounts) = setup();
    let id: RepoId = "bad1".parse().unwrap();
    let url: SourceUrl = "/nonexistent/repo".parse().unwrap();
    let err = create(&paths, &accounts, &id, Some(&url), None, OPTS)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Clone { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/repo"), "{err}");
    assert!(!paths.repository(&id).exists());
    assert!(leftovers(&paths).is_empty(), "{:?}", leftovers(&paths));
    assert!(accounts.users.lock().unwrap().is_empty());

    // A server that never answers: the client gives up, git is stopped, nothing stays.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url: SourceUrl = format!("git://127.0.0.1:{port}/x").parse().unwrap();
    let clone = create(&paths, &accounts, &id, Some(&url), None, OPTS);
    assert!(
        tokio::time::timeout(Duration::from_millis(800), clone)
            .await
            .is_err()
    );
    assert!(!paths.repository(&id).exists());
    assert!(leftovers(&paths).is_empty(), "{:?}", leftovers(&paths));
    assert!(accounts.users.lock().unwrap().is_empty());
    drop(listener);
}

#[tokio::test]
async fn a_leftover_of_a_killed_create_is_cleared_by_the_next() {
    let (_d, paths, accounts) = setup();
    let id: RepoId = "app4".parse().unwrap();
    let stale = paths.repositories().join(".new-app4-1-2");
    std::fs::create_dir_all(stale.join("objects")).unwrap();
    // Another repository's leftover is not this one's.
    std::fs::create_dir_all(paths.repositories().join(".new-app4x-1-2")).unwrap();
    create(&paths, &accounts, &id, None, None, OPTS)
        .await
        .unwrap();
    assert_eq!(leftovers(&paths), vec![".new-app4x-1-2".to_string()]);
    let _held = lock(&paths, &id, Duration::ZERO).await.unwrap();
    assert!(matches!(
        lock(&paths, &id, Duration::from_millis(60)).await,
        Err(RepoError::Busy(_))
    ));
}
