//! Crash-safe file writes: a file is either its old or its new content, never half-written.
//!
//! Each wait for the disk (an fsync) costs a journal commit, a large part of an install.
//! A [`Batch`] writes several files with three such waits in all, the fsyncs of each round
//! issued at once so the filesystem commits them together, where one [`write`] per file
//! costs two each.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Writes `contents` to `path` with `mode`: into a temporary file in the same directory,
/// fsync'd, renamed over `path`, then the directory fsync'd so the rename survives a crash.
/// Creates the parent directory if needed.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let (dir, tmp, mut file) = create_tmp(path, mode)?;
    let result = (|| {
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Creates (or truncates) the temporary file beside `path` that will replace it, creating
/// the directory if needed: (directory, temporary path, open file).
fn create_tmp(path: &Path, mode: u32) -> anyhow::Result<(&Path, PathBuf, File)> {
    let dir = parent(path)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    Ok((dir, tmp, file))
}

/// The directory `path` is in (a bare file name is in the current directory).
fn parent(path: &Path) -> anyhow::Result<&Path> {
    match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(d) => Ok(d),
        None => anyhow::bail!("{} has no parent directory", path.display()),
    }
}

/// Files written together, each atomically; the one staged last appears only once all the
/// others are durable, so it can be the commit point of a change spread over several files.
/// Dropped without [`Batch::commit`], it leaves every path as it was.
#[derive(Debug, Default)]
pub struct Batch {
    staged: Vec<Staged>,
    /// Directories changed before the batch, made durable with those of its files.
    dirs: Vec<PathBuf>,
}

#[derive(Debug)]
struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
}

impl Batch {
    /// Writes `contents` with `mode` to a temporary file beside `path` (creating the
    /// directory if needed); `path` itself changes only at [`Batch::commit`].
    pub fn stage(&mut self, path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        let (_, tmp, mut file) = create_tmp(path, mode)?;
        let staged = Staged {
            path: path.to_path_buf(),
            tmp,
            file: file.try_clone().context("duplicating a file handle")?,
        };
        // Pushed before writing, so a failed write is cleaned up by drop.
        self.staged.push(staged);
        file.write_all(contents).with_context(|| {
            format!(
                "writing {}",
                self.staged[self.staged.len() - 1].tmp.display()
            )
        })
    }

    /// Has [`Batch::commit`] make `dir` durable too (an entry made in it just before, such as
    /// a reservation), with the directories of the files staged before the last: once for
    /// all, and before the last file appears.
    pub fn sync_dir_too(&mut self, dir: &Path) {
        self.dirs.push(dir.to_path_buf());
    }

    /// Puts every staged file in place, durably: the data of all of them is flushed, then
    /// all but the last are renamed and their directories flushed, then the last is
    /// renamed and its directory flushed. Each round's fsyncs are issued at once.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let result = commit(&staged, &self.dirs);
        if result.is_err() {
            for s in &staged {
                let _ = fs::remove_file(&s.tmp);
            }
        }
        result
    }
}

fn commit(staged: &[Staged], also: &[PathBuf]) -> anyhow::Result<()> {
    let Some((last, first)) = staged.split_last() else {
        return Ok(());
    };
    all_at_once(staged.iter().map(|s| {
        move || {
            s.file
                .sync_all()
                .with_context(|| format!("writing {}", s.tmp.display()))
        }
    }))?;
    for s in first {
        rename(s)?;
    }
    let mut dirs: Vec<&Path> = first
        .iter()
        .map(|s| parent(&s.path))
        .collect::<Result<_, _>>()?;
    dirs.extend(also.iter().map(PathBuf::as_path));
    dirs.sort();
    dirs.dedup();
    all_at_once(dirs.into_iter().map(|d| move || sync_dir(d)))?;
    rename(last)?;
    sync_dir(parent(&last.path)?)
}

fn rename(s: &Staged) -> anyhow::Result<()> {
    fs::rename(&s.tmp, &s.path)
        .with_context(|| format!("renaming {} to {}", s.tmp.display(), s.path.display()))
}

/// Runs `jobs`, each on its own thread when there are several: fsyncs issued together are
/// committed together by a journaling filesystem, one after the other are not.
fn all_at_once<F>(jobs: impl Iterator<Item = F>) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<()> + Send,
{
    let mut jobs: Vec<F> = jobs.collect();
    match jobs.len() {
        0 => Ok(()),
        1 => (jobs.pop().expect("one job"))(),
        _ => std::thread::scope(|scope| {
            // One of them on this thread: one thread fewer to start.
            let here = jobs.pop().expect("several jobs");
            let handles: Vec<_> = jobs.into_iter().map(|job| scope.spawn(job)).collect();
            let mine = here();
            handles
                .into_iter()
                .try_for_each(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a sync thread panicked")))
                })
                .and(mine)
        }),
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for s in &self.staged {
            let _ = fs::remove_file(&s.tmp);
        }
    }
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => sync_dir(Path::new(".")),
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_bare_name_is_written_in_the_current_directory() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let result = write(Path::new("bare.json"), b"{}", 0o644);
        std::env::set_current_dir(old).unwrap();
        result.unwrap();
        assert_eq!(fs::read(dir.path().join("bare.json")).unwrap(), b"{}");
    }

    #[test]
    fn a_batch_puts_every_file_in_place_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, last) = (
            dir.path().join("a/one"),
            dir.path().join("b/two"),
            dir.path().join("c/last"),
        );
        write(&a, b"old", 0o644).unwrap();
        let mut batch = Batch::default();
        batch.stage(&a, b"new", 0o600).unwrap();
        batch.stage(&b, b"two", 0o644).unwrap();
        batch.stage(&last, b"commit", 0o644).unwrap();
        // Nothing is visible before the commit.
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert!(!b.exists() && !last.exists());
        batch.commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(&b).unwrap(), b"two");
        assert_eq!(fs::read(&last).unwrap(), b"commit");
        for d in ["a", "b", "c"] {
            assert_eq!(fs::read_dir(dir.path().join(d)).unwrap().count(), 1);
        }
    }

    #[test]
    fn a_dropped_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("one");
        write(&a, b"old", 0o644).unwrap();
        let mut batch = Batch::default();
        batch.stage(&a, b"new", 0o644).unwrap();
        batch.stage(&dir.path().join("two"), b"two", 0o644).unwrap();
        drop(batch);
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writes_replaces_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file");
        write(&path, b"one", 0o640).unwrap();
        write(&path, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // No temporary file is left beside it.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
    }
}
