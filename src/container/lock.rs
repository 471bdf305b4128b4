//! One lock per container, held by every gear process for the whole of an operation on it
//! (install, start, stop, restart, delete, purge, links, idle, wake), so that `gear-api` and
//! `gear-idler` never interleave on one container.
//!
//! An `flock(2)` on `/run/gear/locks/<id>`: the kernel releases it when its holder dies, so a
//! `kill -9` never leaves a container locked. The directory is 0700 and the files 0600, so
//! only root can take or hold a container's lock. A file exists only while its container is
//! acted on: the holder removes it before letting go. A waiter that then gets the lock on the
//! removed file sees that the name no longer leads to it, and starts again with a new file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::id::ContainerId;
use crate::paths::Paths;

/// The lock of one container, held until dropped.
#[derive(Debug)]
pub struct Lock {
    id: ContainerId,
    path: PathBuf,
    _file: File,
}

/// Another operation held the lock for longer than the wait allowed.
#[derive(Debug, thiserror::Error)]
#[error(
    "container {id} is busy: another operation on it did not finish within {}s; try again",
    waited.as_secs()
)]
pub struct Busy {
    /// The container.
    pub id: ContainerId,
    /// How long this caller waited.
    pub waited: Duration,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Its holder did not let go in time.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The lock file could not be made or locked.
    #[error("{0:#}")]
    Io(#[from] anyhow::Error),
}

impl Lock {
    /// Takes the lock of `id`, waiting at most `wait` for its holder.
    pub async fn acquire(
        paths: &Paths,
        id: &ContainerId,
        wait: Duration,
    ) -> Result<Lock, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(lock) = Lock::try_acquire(paths, id)? {
                return Ok(lock);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Busy {
                    id: id.clone(),
                    waited: wait,
                }
                .into());
            }
            // Polled, not a blocking flock(2): the wait must end, and must not hold a thread.
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Takes the lock of `id` if nobody holds it.
    pub fn try_acquire(paths: &Paths, id: &ContainerId) -> anyhow::Result<Option<Lock>> {
        let dir = paths.locks_dir();
        let path = paths.container_lock(id);
        loop {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking container {id}"));
                }
            }
            // The holder before us may have removed the file between our open and our lock.
            let ours = file.metadata().context("reading the lock file")?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                    return Ok(Some(Lock {
                        id: id.clone(),
                        path,
                        _file: file,
                    }));
                }
                _ => continue,
            }
        }
    }

    /// The container this lock is for.
    pub fn id(&self) -> &ContainerId {
        &self.id
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held, so nobody can lock the name in between; the file closes
        // (and the lock goes) right after.
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("removing {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn setup() -> (tempfile::TempDir, Paths, ContainerId) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        (dir, paths, "web-1".parse().unwrap())
    }

    #[tokio::test]
    async fn excludes_a_second_holder_and_leaves_nothing_behind() {
        let (_dir, paths, id) = setup();
        let held = Lock::acquire(&paths, &id, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(Lock::try_acquire(&paths, &id).unwrap().is_none());
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(paths.locks_dir()), 0o700);
        assert_eq!(mode(paths.container_lock(&id)), 0o600);
        drop(held);
        assert!(
            !paths.container_lock(&id).exists(),
            "an unused lock file stays"
        );
        let again = Lock::try_acquire(&paths, &id).unwrap();
        assert!(again.is_some());
    }

    #[tokio::test]
    async fn a_bounded_wait_ends_busy() {
        let (_dir, paths, id) = setup();
        let _held = Lock::try_acquire(&paths, &id).unwrap().unwrap();
        let err = Lock::acquire(&paths, &id, Duration::from_millis(60))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("web-1 is busy"), "{err}");
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let (_dir, paths, id) = setup();
        let held = Lock::try_acquire(&paths, &id).unwrap().unwrap();
        let (p2, id2) = (paths.clone(), id.clone());
        let waiter = tokio::spawn(async move {
            Lock::acquire(&p2, &id2, Duration::from_secs(5))
                .await
                .map(|_| ())
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(held);
        waiter.await.unwrap().unwrap();
    }

    #[test]
    fn many_threads_never_hold_it_together() {
        let (_dir, paths, id) = setup();
        let inside = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (paths, id, inside) = (paths.clone(), id.clone(), inside.clone());
                std::thread::spawn(move || {
                    let mut got = 0;
                    while got < 50 {
                        if let Some(_lock) = Lock::try_acquire(&paths, &id).unwrap() {
                            let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(n, 0, "two holders at once");
                            std::thread::yield_now();
                            inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            got += 1;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!paths.container_lock(&id).exists());
    }
}
