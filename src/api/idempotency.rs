//! `X-Request-Id`: a mutating request sent again with the same id is answered as the first
//! time instead of being done again; the same id with a different request is refused.
//! Reads ([`applies_to`]) are never kept nor replayed: a replayed read would be stale.
//!
//! Successful answers are kept as files under `Paths::requests_dir()` (on `/run`, so they
//! survive agent restarts but not reboots) for 24 hours, within [`Bounds`]: when the store
//! grows past them, the oldest answers go first. Failed requests are not kept, so a client
//! may retry them with the same id (geard remembered rejected ids forever).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::atomic_file;

/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often old answers are pruned when the store is within its bounds.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Whether `X-Request-Id` applies to a request with this method: only to those that change
/// something. A read carrying one is simply answered afresh.
pub fn applies_to(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// How much the store may hold. The store lives on `/run`, a tmpfs: its bytes are memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Answers kept at most.
    pub count: usize,
    /// Bytes of kept answers at most.
    pub bytes: u64,
    /// A larger answer is not kept (a retry then does the work again).
    pub answer: usize,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            count: 4096,
            bytes: 16 * 1024 * 1024,
            answer: 64 * 1024,
        }
    }
}

/// What the store holds, as last counted and added to since.
#[derive(Debug, Clone, Copy)]
struct Usage {
    count: usize,
    bytes: u64,
    counted: Instant,
}

/// A kept answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    request_id: String,
    fingerprint: String,
    /// The HTTP status of the first answer.
    pub status: u16,
    /// Its JSON body.
    pub body: serde_json::Value,
}

/// What to do with a request that carries an id.
#[derive(Debug)]
pub enum Lookup {
    /// Not seen before: do it, then [`Replays::keep`] the answer. Holding the guard keeps
    /// a concurrent duplicate waiting until the first one is answered.
    Fresh(tokio::sync::OwnedMutexGuard<()>),
    /// Seen and answered: send this again.
    Replay(Kept),
}

/// The store of kept answers.
#[derive(Debug)]
pub struct Replays {
    dir: PathBuf,
    bounds: Bounds,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// `None` until the first answer is kept (the directory is counted then).
    usage: Mutex<Option<Usage>>,
}

/// A request id must be short printable text, so it is safe in logs and file names.
fn validate(id: &str) -> Result<(), Error> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.=+/:".contains(c);
    if id.is_empty() || id.len() > 128 || !id.chars().all(ok) {
        return Err(Error::BadRequest(
            "X-Request-Id must be 1 to 128 letters, digits or - _ . = + / :".into(),
        ));
    }
    Ok(())
}

/// FNV-1a over 128 bits of each part, length first so parts cannot run into each other.
/// Stable across Rust releases and processes (std's `DefaultHasher` is neither promised
/// to be), so file names and fingerprints written by one agent are found by the next.
/// Not cryptographic: a file also holds its request id, which is compared, and every
/// caller may do anything with the API anyway.
fn hash(parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for part in parts {
        for &b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            h = (h ^ u128::from(b)).wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

impl Replays {
    /// A store in `dir`, within the default [`Bounds`].
    pub fn new(dir: PathBuf) -> Replays {
        Replays::with_bounds(dir, Bounds::default())
    }

    /// A store in `dir`, within `bounds`.
    pub fn with_bounds(dir: PathBuf, bounds: Bounds) -> Replays {
        Replays {
            dir,
            bounds,
            in_flight: Mutex::new(HashMap::new()),
            usage: Mutex::new(None),
        }
    }

    fn path(&self, request_id: &str) -> PathBuf {
        self.dir.join(hash(&[request_id.as_bytes()]))
    }

    /// Looks `request_id` up for a request whose method, target and body are `request`.
    pub async fn lookup(
        &self,
        request_id: &str,
        request: &[&[u8]],
    ) -> Result<(Lookup, String), Error> {
        validate(request_id)?;
        let fingerprint = hash(request);
        let lock = self
            .in_flight
            .lock()
            .unwrap()
            .entry(request_id.to_string())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        let kept = std::fs::read(self.path(request_id))
            .ok()
            .and_then(|b| serde_json::from_slice::<Kept>(&b).ok())
            .filter(|k| k.request_id == request_id);
        match kept {
            Some(k) if k.fingerprint == fingerprint => Ok((Lookup::Replay(k), fingerprint)),
            Some(_) => Err(Error::RequestIdReused(request_id.to_string())),
            None => Ok((Lookup::Fresh(guard), fingerprint)),
        }
    }

    /// Keeps a successful answer; a failure to keep it is logged, not fatal (the work is
    /// done either way).
    pub fn keep(
        &self,
        request_id: &str,
        fingerprint: String,
        status: StatusCode,
        body: &serde_json::Value,
    ) {
        let kept = Kept {
            request_id: request_id.to_string(),
            fingerprint,
            status: status.as_u16(),
            body: body.clone(),
        };
        let result = serde_json::to_vec(&kept)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                anyhow::ensure!(
                    bytes.len() <= self.bounds.answer,
                    "the answer is larger than {} bytes",
                    self.bounds.answer
                );
                atomic_file::write(&self.path(request_id), &bytes, 0o600)?;
                Ok(bytes.len())
            });
        self.in_flight.lock().unwrap().remove(request_id);
        match result {
            Ok(len) => self.count(len),
            Err(e) => log::warn!("could not keep the answer to request {request_id}: {e:#}"),
        }
    }

    /// Adds one kept answer of `len` bytes to the usage; prunes when the store is past its
    /// bounds, has not been counted yet, or was last pruned [`PRUNE_EVERY`] ago.
    fn count(&self, len: usize) {
        let mut usage = self.usage.lock().unwrap();
        if let Some(u) = usage.as_mut() {
            u.count += 1;
            u.bytes += len as u64;
        }
        let due = match *usage {
            None => true,
            Some(u) => {
                u.count > self.bounds.count
                    || u.bytes > self.bounds.bytes
                    || u.counted.elapsed() > PRUNE_EVERY
            }
        };
        if due {
            *usage = Some(self.prune());
        }
    }

    /// Removes answers older than [`KEEP`], then the oldest until the store is down to 90%
    /// of its bounds (so the next answers do not each prune again); returns what is left.
    fn prune(&self) -> Usage {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        entries.sort();
        let (count, bytes) = (self.bounds.count * 9 / 10, self.bounds.bytes * 9 / 10);
        let mut left = entries.len();
        let mut held: u64 = entries.iter().map(|e| e.1).sum();
        for (modified, len, path) in &entries {
            let expired = modified.elapsed().unwrap_or_default() > KEEP;
            if !expired && left <= count && held <= bytes {
                break;
            }
            if std::fs::remove_file(path).is_ok() {
                left -= 1;
                held -= len;
            }
        }
        Usage {
            count: left,
            bytes: held,
            counted: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_same_request_and_refuses_a_different_one() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replays::new(dir.path().join("req"));
        let req: &[&[u8]] = &[b"PUT", b"/container/web-1", b"{}"];
        let (Lookup::Fresh(guard), fp) = r.lookup("abc-1", req).await.unwrap() else {
            panic!("not fresh")
        };
        r.keep(
            "abc-1",
            fp,
            StatusCode::OK,
            &serde_json::json!({"Id": "web-1"}),
        );
        drop(guard);
        let (Lookup::Replay(kept), _) = r.lookup("abc-1", req).await.unwrap() else {
            panic!("not replayed")
        };
        assert_eq!(
            (kept.status, kept.body),
            (200, serde_json::json!({"Id": "web-1"}))
        );
        let other: &[&[u8]] = &[b"PUT", b"/container/web-1", b"{\"x\":1}"];
        assert!(matches!(
            r.lookup("abc-1", other).await,
            Err(Error::RequestIdReused(_))
        ));
        assert!(matches!(
            r.lookup("bad id", req).await,
            Err(Error::BadRequest(_))
        ));
        // A request that never kept an answer (it failed) may be retried.
        let (Lookup::Fresh(_), _) = r.lookup("abc-2", req).await.unwrap() else {
            panic!("not fresh")
        };
    }

    async fn keep_one(r: &Replays, id: &str, body: serde_json::Value) {
        let req: &[&[u8]] = &[b"PUT", id.as_bytes()];
        let (Lookup::Fresh(_guard), fp) = r.lookup(id, req).await.unwrap() else {
            panic!("{id} not fresh")
        };
        r.keep(id, fp, StatusCode::OK, &body);
    }

    async fn is_kept(r: &Replays, id: &str) -> bool {
        let req: &[&[u8]] = &[b"PUT", id.as_bytes()];
        matches!(r.lookup(id, req).await.unwrap().0, Lookup::Replay(_))
    }

    #[tokio::test]
    async fn the_store_keeps_at_most_its_count_dropping_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            count: 10,
            ..Bounds::default()
        };
        let r = Replays::with_bounds(dir.path().join("req"), bounds);
        for i in 0..25 {
            keep_one(&r, &format!("id-{i}"), serde_json::json!({"N": i})).await;
            let files = std::fs::read_dir(dir.path().join("req")).unwrap().count();
            assert!(files <= 10, "{files} answers kept after {i}");
        }
        assert!(is_kept(&r, "id-24").await);
        assert!(!is_kept(&r, "id-0").await);
    }

    #[tokio::test]
    async fn the_store_keeps_at_most_its_bytes_and_no_oversized_answer() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            count: 1000,
            bytes: 4000,
            answer: 1000,
        };
        let r = Replays::with_bounds(dir.path().join("req"), bounds);
        let filler = "x".repeat(400);
        for i in 0..30 {
            keep_one(&r, &format!("id-{i}"), serde_json::json!({"Pad": filler})).await;
        }
        let held: u64 = std::fs::read_dir(dir.path().join("req"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(held <= 4000, "{held} bytes kept");
        assert!(is_kept(&r, "id-29").await);
        keep_one(&r, "big", serde_json::json!({"Pad": "y".repeat(2000)})).await;
        assert!(
            !is_kept(&r, "big").await,
            "an answer over the bound was kept"
        );
    }

    #[test]
    fn names_and_fingerprints_are_stable_and_unambiguous() {
        // Pinned (FNV-1a 128 of the length-prefixed bytes, as computed by an independent
        // implementation): a file written by one agent build must be found by the next.
        assert_eq!(hash(&[b"abc-1"]), "955140a9a62502fc5e5de47fefb8a3e2");
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
    }

    #[test]
    fn only_requests_that_change_something_are_kept() {
        assert!(!applies_to(&Method::GET));
        assert!(!applies_to(&Method::HEAD));
        for m in [Method::PUT, Method::POST, Method::PATCH, Method::DELETE] {
            assert!(applies_to(&m), "{m}");
        }
    }
}
