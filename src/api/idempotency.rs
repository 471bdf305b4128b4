//! `X-Request-Id`: a request sent again with the same id is answered as the first time
//! instead of being done again; the same id with a different request is refused.
//!
//! Successful answers are kept as files under `Paths::requests_dir()` (on `/run`, so they
//! survive agent restarts but not reboots) for 24 hours. Failed requests are not kept, so
//! a client may retry them with the same id (geard remembered rejected ids forever).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::atomic_file;

/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often old answers are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

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
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    last_prune: AtomicU64,
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

fn hash(parts: &[&[u8]]) -> String {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl Replays {
    /// A store in `dir`.
    pub fn new(dir: PathBuf) -> Replays {
        Replays {
            dir,
            in_flight: Mutex::new(HashMap::new()),
            last_prune: AtomicU64::new(0),
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
            .and_then(|bytes| atomic_file::write(&self.path(request_id), &bytes, 0o600));
        if let Err(e) = result {
            log::warn!("could not keep the answer to request {request_id}: {e:#}");
        }
        self.in_flight.lock().unwrap().remove(request_id);
        self.prune();
    }

    /// Removes answers older than [`KEEP`], at most once per [`PRUNE_EVERY`].
    fn prune(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = self.last_prune.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PRUNE_EVERY.as_secs()
            || self.last_prune.swap(now, Ordering::Relaxed) != last
        {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > KEEP);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
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
}
