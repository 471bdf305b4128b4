//! Bounds on what clients can hold of the agent: time to send a request's head, open
//! connections, log followers, and how the accept loop behaves when file descriptors run
//! out. Each bound answers a way one client (or a web page, or a port scan) could take the
//! agent down for everyone else.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use super::error::Error;

/// The agent's bounds; [`Limits::default`] is what `gear-api` runs with unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's head, counted from when the agent starts
    /// waiting for it: on a new connection, and again after each answer on a kept-alive
    /// one, so this is also the keep-alive timeout.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its head has arrived.
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Log answers (`GET /container/:id/log`) streamed at once; further ones are `503`.
    pub max_log_followers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // hyper's own default, which only runs with a timer (we give it one).
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            // Well below `LimitNOFILE=` in gear-api.service, so the agent keeps file
            // descriptors for journalctl pipes, D-Bus and Docker when every slot is taken.
            max_connections: 512,
            max_log_followers: 64,
        }
    }
}

/// Extra time a log answer gets after its own timeout to deliver what it has; a client that
/// has not read it by then is cut off, so a follower cannot outlive its limit by reading
/// nothing (hyper stops polling an answer whose client stops reading, and with it the
/// stream's own timer).
pub const LOG_GRACE: Duration = Duration::from_secs(5);

/// The log followers' slots.
#[derive(Debug, Clone)]
pub struct Followers(Arc<Semaphore>, usize);

impl Followers {
    /// Room for `max` followers at once.
    pub fn new(max: usize) -> Followers {
        Followers(Arc::new(Semaphore::new(max)), max)
    }

    /// A slot for one more follower, held as long as its answer streams.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.0.clone().try_acquire_owned().map_err(|_| {
            Error::TooBusy(format!(
                "{} log answers are streaming already; try again later",
                self.1
            ))
        })
    }
}

/// When a connection must end, if its answer is bounded (a log): set by the request
/// handler, awaited by the connection's task.
#[derive(Debug)]
pub struct Deadline(watch::Sender<Option<Instant>>);

impl Default for Deadline {
    fn default() -> Deadline {
        Deadline(watch::channel(None).0)
    }
}

impl Deadline {
    /// The connection must end by `at`.
    pub fn set(&self, at: Instant) {
        self.0.send_replace(Some(at));
    }

    /// Resolves once a deadline is set and reached; never while none is set.
    pub async fn reached(&self) {
        let mut rx = self.0.subscribe();
        loop {
            let at = *rx.borrow_and_update();
            // `self` holds the sender, so `changed` cannot fail while this runs.
            match at {
                Some(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => return,
                    _ = rx.changed() => {}
                },
                None => {
                    let _ = rx.changed().await;
                }
            }
        }
    }
}

/// Held by a streaming log answer: its follower slot, given back when the answer ends.
///
/// The connection's deadline stays: the answer's last bytes may still wait for a client
/// that stopped reading after the stream ended. Streamed answers close their connection
/// (`Connection: close`), so no later request on it meets the deadline.
#[derive(Debug)]
pub struct Following {
    _slot: OwnedSemaphorePermit,
}

impl Following {
    /// Takes a follower slot and bounds the connection to `timeout` plus [`LOG_GRACE`].
    pub fn start(
        followers: &Followers,
        deadline: &Deadline,
        timeout: Duration,
    ) -> Result<Following, Error> {
        let slot = followers.admit()?;
        deadline.set(Instant::now() + timeout + LOG_GRACE);
        Ok(Following { _slot: slot })
    }
}

/// How the accept loop waits after running out of file descriptors (or kernel memory):
/// accepting again at once fails again at once, which spun a core and flooded the journal.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MOST: Duration = Duration::from_secs(1);

    /// Whether `e` means the host is out of a resource, not that one client went away.
    pub fn is_exhaustion(e: &std::io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }

    /// Counts a failure and says how long to wait before the next accept. Logs the first
    /// failure of a run only.
    pub fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.failures == 0 {
            log::warn!("accept failed: {e}; waiting before accepting again");
        }
        self.failures += 1;
        let exp = self.failures.saturating_sub(1).min(5) as u32;
        (Self::FIRST * 2u32.pow(exp)).min(Self::MOST)
    }

    /// An accept succeeded: ends a run of failures, logging how long it was.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            log::warn!("accepting again after {} failed accepts", self.failures);
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_second_and_resets() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert!(AcceptBackoff::is_exhaustion(&emfile));
        let reset = std::io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(!AcceptBackoff::is_exhaustion(&reset));
        let mut b = AcceptBackoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.failed(&emfile).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(&emfile), Duration::from_millis(50));
    }

    #[test]
    fn followers_beyond_the_limit_are_refused_until_one_ends() {
        let f = Followers::new(1);
        let first = f.admit().unwrap();
        let err = f.admit().unwrap_err();
        assert_eq!(err.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        assert!(f.admit().is_ok());
    }

    #[tokio::test]
    async fn a_deadline_is_reached_only_once_set() {
        let ms = Duration::from_millis;
        let d = Deadline::default();
        let unset = tokio::time::timeout(ms(300), d.reached()).await;
        assert!(unset.is_err(), "no deadline set, yet it was reached");
        d.set(Instant::now() + ms(100));
        let set = tokio::time::timeout(ms(2000), d.reached()).await;
        assert!(set.is_ok());
    }
}
