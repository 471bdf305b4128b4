use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// A connection that can be broken from the test, numbered in the order it was made.
#[derive(Debug, Clone)]
struct FakeConn {
    number: usize,
    closed: Arc<AtomicBool>,
}

impl Link for FakeConn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Makes numbered fake connections and remembers them.
#[derive(Debug, Default)]
struct Bus {
    made: std::sync::Mutex<Vec<FakeConn>>,
}

impl Bus {
    async fn connect(&self) -> anyhow::Result<FakeConn> {
        let mut made = self.made.lock().unwrap();
        let conn = FakeConn {
            number: made.len() + 1,
            closed: Arc::default(),
        };
        made.push(conn.clone());
        Ok(conn)
    }

    fn count(&self) -> usize {
        self.made.lock().unwrap().len()
    }

    /// What dbus-daemon's restart does to every open connection.
    fn restart(&self) {
        for conn in self.made.lock().unwrap().iter() {
            conn.closed.store(true, Ordering::SeqCst);
        }
    }
}

fn broken_pipe() -> anyhow::Error {
    anyhow::Error::new(zbus::Error::InputOutput(Arc::new(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "socket closed",
    ))))
    .context("listing systemd units")
}

#[tokio::test]
async fn connects_once_and_reuses_an_open_connection() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    for _ in 0..3 {
        let n = slot
            .call(
                || bus.connect(),
                Retry::Once,
                |c| async move { Ok(c.number) },
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    assert_eq!(bus.count(), 1);
}

#[tokio::test]
async fn a_connection_seen_closed_is_replaced_before_the_call() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    slot.get(|| bus.connect()).await.unwrap();
    bus.restart();
    let n = slot
        .call(
            || bus.connect(),
            Retry::Never,
            |c| async move { Ok(c.number) },
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_call_that_meets_a_broken_pipe_is_retried_once_on_a_new_connection() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    let calls = AtomicUsize::new(0);
    let n = slot
        .call(
            || bus.connect(),
            Retry::Once,
            |c| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    // The first connection is dead but does not know it yet.
                    if c.number == 1 {
                        return Err(broken_pipe());
                    }
                    Ok(c.number)
                }
            },
        )
        .await
        .unwrap();
    assert_eq!((n, calls.load(Ordering::SeqCst), bus.count()), (2, 2, 2));
}

#[tokio::test]
async fn a_call_that_must_not_repeat_reports_the_error_and_the_next_call_reconnects() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    let err = slot
        .call(
            || bus.connect(),
            Retry::Never,
            |_c| async { Err::<usize, _>(broken_pipe()) },
        )
        .await
        .unwrap_err();
    assert!(is_disconnect(&err));
    let n = slot
        .call(
            || bus.connect(),
            Retry::Never,
            |c| async move { Ok(c.number) },
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn an_error_from_the_other_side_is_not_retried() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    let calls = AtomicUsize::new(0);
    let err = slot
        .call(
            || bus.connect(),
            Retry::Once,
            |_c| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(anyhow::anyhow!("Unit ctr-x.service not found.")) }
            },
        )
        .await
        .unwrap_err();
    assert!(!is_disconnect(&err));
    assert_eq!((calls.load(Ordering::SeqCst), bus.count()), (1, 1));
}

#[tokio::test]
async fn forgetting_an_old_connection_keeps_a_newer_one() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    let old = slot.get(|| bus.connect()).await.unwrap();
    bus.restart();
    let new = slot.get(|| bus.connect()).await.unwrap();
    // A task still holding the old connection reports it broken late.
    slot.forget(&old).await;
    let now = slot.get(|| bus.connect()).await.unwrap();
    assert_eq!((new.conn.number, now.conn.number, bus.count()), (2, 2, 2));
}

#[test]
fn disconnects_are_told_from_other_errors() {
    assert!(is_disconnect(&broken_pipe()));
    let reset = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(is_disconnect(&reset));
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert!(!is_disconnect(&anyhow::Error::new(refused)));
    assert!(!is_disconnect(&anyhow::Error::new(
        zbus::Error::InvalidReply
    )));
}

fn pid1_away() -> anyhow::Error {
    anyhow::Error::new(zbus::Error::FDO(Box::new(zbus::fdo::Error::NoReply(
        "Message recipient disconnected from message bus without replying".into(),
    ))))
}

#[tokio::test]
async fn a_call_pid1_dropped_while_re_executing_is_asked_again_on_the_same_connection() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    let calls = AtomicUsize::new(0);
    let n = slot
        .call(
            || bus.connect(),
            Retry::Once,
            |c| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Err(pid1_away())
                    } else {
                        Ok(c.number)
                    }
                }
            },
        )
        .await
        .unwrap();
    assert_eq!((n, calls.load(Ordering::SeqCst), bus.count()), (1, 2, 1));
}

#[tokio::test]
async fn a_call_that_must_not_repeat_is_not_asked_again_when_pid1_was_away() {
    let (bus, slot) = (Bus::default(), Reconnecting::default());
    let err = slot
        .call(
            || bus.connect(),
            Retry::Never,
            |_c| async { Err::<(), _>(pid1_away()) },
        )
        .await
        .unwrap_err();
    assert!(is_manager_away(&err));
}

#[test]
fn a_method_timeout_is_not_pid1_away() {
    let timeout = anyhow::Error::new(zbus::Error::FDO(Box::new(zbus::fdo::Error::NoReply(
        "Did not receive a reply".into(),
    ))));
    assert!(!is_manager_away(&timeout));
    assert!(is_manager_away(&pid1_away()));
}

#[tokio::test]
async fn at_most_in_flight_calls_run_at_once_and_the_others_wait_their_turn() {
    let (bus, slot) = (Bus::default(), Reconnecting::<FakeConn>::default());
    let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let call = || {
        slot.call(
            || bus.connect(),
            Retry::Once,
            |_conn| async {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
    };
    let results = futures_util::future::join_all((0..100).map(|_| call())).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(most.load(Ordering::SeqCst), IN_FLIGHT);
}
