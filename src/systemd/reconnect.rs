//! A bus connection made on first use and made again once it breaks.
//!
//! The system bus goes away under a running program when an operator restarts
//! `dbus.service` (or dbus-broker): zbus then answers every call on the old connection with
//! an I/O error (`Broken pipe`, `socket closed`), forever. [`Reconnecting`] keeps the
//! connection in a slot, notices that it broke (from the error, or from the connection
//! itself), empties the slot, and lets the caller retry once on a fresh connection. The
//! logic is generic over the connection so unit tests can drive it with a fake.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;

/// What [`Reconnecting`] needs to know of a connection.
pub trait Link: Clone + Send + Sync {
    /// The connection can carry no more calls (the peer hung up, or a socket error).
    fn is_closed(&self) -> bool;
}

impl Link for zbus::Connection {
    fn is_closed(&self) -> bool {
        zbus::Connection::is_closed(self)
    }
}

/// Whether an error says that the connection under the call broke (so a new one may work).
///
/// zbus reports a closed socket, for a call in flight and for every later call, as
/// [`zbus::Error::InputOutput`]. Errors from the other side (`MethodError`, `FDO`) and a
/// failure to connect at all are not: a fresh connection would meet the same answer.
pub fn is_disconnect(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<zbus::Error>(),
            Some(zbus::Error::InputOutput(_))
        ) || cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            use std::io::ErrorKind::*;
            matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof
            )
        })
    })
}

/// Whether an error says that PID 1 was off the bus for a moment, as during
/// `systemctl daemon-reexec`: the call was lost with it (`NoReply` because the recipient
/// disconnected), or found nobody owning `org.freedesktop.systemd1`. A little later the
/// same call finds PID 1 back. A `NoReply` from a method timeout is not this.
pub fn is_manager_away(err: &anyhow::Error) -> bool {
    use zbus::fdo::Error as Fdo;
    err.chain()
        .any(|cause| match cause.downcast_ref::<zbus::Error>() {
            Some(zbus::Error::FDO(fdo)) => match fdo.as_ref() {
                Fdo::NoReply(msg) => msg.contains("disconnected"),
                Fdo::ServiceUnknown(_) | Fdo::NameHasNoOwner(_) => true,
                _ => false,
            },
            _ => false,
        })
}

/// How long to wait before asking PID 1 again after [`is_manager_away`], each time: about
/// 6 s in all, well over the second a re-execution takes.
const AWAY_WAITS: [Duration; 5] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
    Duration::from_millis(3200),
];

/// Whether a failed call may be made again on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The call is idempotent (a read, or a job that is a no-op the second time).
    Once,
    /// Doing it twice would be observable (a restart): report the error instead.
    Never,
}

/// A connection handed out by [`Reconnecting::get`], tagged with the slot's generation so
/// that forgetting it never throws away a newer connection another task already made.
#[derive(Debug, Clone)]
pub struct Handle<C> {
    generation: u64,
    /// The connection.
    pub conn: C,
}

#[derive(Debug)]
struct Slot<C> {
    generation: u64,
    conn: Option<C>,
}

/// The slot holding the current connection.
#[derive(Debug)]
pub struct Reconnecting<C> {
    slot: Mutex<Slot<C>>,
    /// Calls in flight at once ([`IN_FLIGHT`]).
    in_flight: tokio::sync::Semaphore,
}

/// How many calls may be in flight on the connection at once. The bus refuses a call past
/// its limit of pending replies per connection (128 on the system bus of Debian and Fedora:
/// `LimitsExceeded`), and one call of gear's can be several bus calls (a job: AddMatch,
/// StartUnit); 100 starts asked at once made 2 fail. The others wait their turn.
pub const IN_FLIGHT: usize = 32;

impl<C> Default for Reconnecting<C> {
    fn default() -> Self {
        Reconnecting {
            slot: Mutex::new(Slot {
                generation: 0,
                conn: None,
            }),
            in_flight: tokio::sync::Semaphore::new(IN_FLIGHT),
        }
    }
}

impl<C: Link> Reconnecting<C> {
    /// The current connection if it is still open, else a new one from `connect`.
    ///
    /// The slot is locked while connecting, so tasks that find the connection broken at
    /// the same moment make one new connection between them, not one each.
    pub async fn get<F, Fut>(&self, connect: F) -> anyhow::Result<Handle<C>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<C>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = slot.conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Handle {
                generation: slot.generation,
                conn: conn.clone(),
            });
        }
        if slot.conn.take().is_some() {
            log::info!("the system bus connection was closed; connecting again");
        }
        let conn = connect().await?;
        slot.generation += 1;
        slot.conn = Some(conn.clone());
        Ok(Handle {
            generation: slot.generation,
            conn,
        })
    }

    /// Drops `broken` from the slot, unless the slot already holds a newer connection.
    pub async fn forget(&self, broken: &Handle<C>) {
        let mut slot = self.slot.lock().await;
        if slot.generation == broken.generation {
            slot.conn = None;
        }
    }

    /// Runs `op` on the current connection. If it fails because the connection broke,
    /// forgets that connection and, when `retry` allows, runs `op` once more on a new one;
    /// if PID 1 was away from the bus, and `retry` allows, asks again a little later.
    pub async fn call<T, F, Fut, Op, OpFut>(
        &self,
        connect: F,
        retry: Retry,
        op: Op,
    ) -> anyhow::Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<C>>,
        Op: Fn(C) -> OpFut,
        OpFut: Future<Output = anyhow::Result<T>>,
    {
        let (mut reconnected, mut waits) = (false, AWAY_WAITS.iter());
        // Never closed, so acquiring cannot fail.
        let _turn = self.in_flight.acquire().await?;
        loop {
            let handle = self.get(&connect).await?;
            match op(handle.conn.clone()).await {
                Err(e) if is_disconnect(&e) || handle.conn.is_closed() => {
                    self.forget(&handle).await;
                    if retry == Retry::Never || reconnected {
                        return Err(e);
                    }
                    reconnected = true;
                    log::info!("retrying on a new system bus connection after: {e:#}");
                }
                Err(e) if retry == Retry::Once && is_manager_away(&e) => match waits.next() {
                    Some(wait) => {
                        log::info!("systemd is away from the bus; asking again: {e:#}");
                        tokio::time::sleep(*wait).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests;
