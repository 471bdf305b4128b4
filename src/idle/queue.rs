//! The seam where held SYNs arrive and are let go: [`PacketQueue`]. [`NfQueue`] reads the
//! kernel's NFQUEUE (the `nfq` crate, netlink without libnetfilter_queue) on a thread of its
//! own; [`fake::FakeQueue`] is a pair of channels for tests.
//!
//! A held packet is only ever accepted, never dropped: once its container runs, it goes on
//! to it; if the container could not be started, it goes on to a refusal (nothing listens
//! on the port any more), which the client sees at once instead of retrying into a void.

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// One held packet: a handle to let it go, and the TCP port it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Names the packet in [`PacketQueue::release`].
    pub token: u64,
    /// Its TCP destination port: a published host port, or, when `translated`, the
    /// container's internal port.
    pub port: u16,
    /// Who sent it, when the header says.
    pub source: Option<IpAddr>,
    /// Where it goes, when the header says: a container's address when `translated`.
    pub dest: Option<IpAddr>,
    /// Docker's DNAT already sent it on to a container (it was held at `FORWARD` or
    /// `OUTPUT`, not `INPUT`): `port` and `dest` are the container's.
    pub translated: bool,
}

/// The netfilter hook number of `INPUT` (`NF_INET_LOCAL_IN`).
const HOOK_INPUT: u8 = 1;

/// Where held packets come from.
pub trait PacketQueue: Send + 'static {
    /// The next held packet; `None` once the queue is gone.
    fn next(&mut self) -> impl Future<Output = Option<Held>> + Send;
    /// Lets these packets go on their way, in this order.
    fn release(&self, tokens: Vec<u64>);
    /// Waits, briefly, until every release asked for has reached the kernel (on the way
    /// out: a packet still held when the process ends is dropped, not let go).
    fn drain(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The TCP destination port of an IPv4 or IPv6 packet, if it is TCP.
pub fn tcp_dport(packet: &[u8]) -> Option<u16> {
    let offset = match packet.first()? >> 4 {
        4 if packet.get(9) == Some(&6) => usize::from(packet[0] & 0x0f) * 4,
        // IPv6 without extension headers: what a SYN looks like.
        6 if packet.get(6) == Some(&6) => 40,
        _ => return None,
    };
    let port = packet.get(offset + 2..offset + 4)?;
    Some(u16::from_be_bytes([port[0], port[1]]))
}

/// The source address of an IPv4 or IPv6 packet.
pub fn ip_source(packet: &[u8]) -> Option<IpAddr> {
    ip_address(packet, 12, 8)
}

/// The destination address of an IPv4 or IPv6 packet.
pub fn ip_dest(packet: &[u8]) -> Option<IpAddr> {
    ip_address(packet, 16, 24)
}

/// The address at byte `v4` of an IPv4 header or `v6` of an IPv6 one.
fn ip_address(packet: &[u8], v4: usize, v6: usize) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(v4..v4 + 4)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = packet.get(v6..v6 + 16)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// How long [`NfQueue::drain`] waits for the queue thread to let held packets go.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// [`PacketQueue`] on the kernel's NFQUEUE `num`.
#[derive(Debug)]
pub struct NfQueue {
    held: tokio::sync::mpsc::UnboundedReceiver<Held>,
    release: std::sync::mpsc::Sender<Vec<u64>>,
    /// How many packets the queue thread holds now.
    holding: Arc<AtomicUsize>,
}

impl NfQueue {
    /// Binds queue `num` (needs CAP_NET_ADMIN) and starts reading it.
    pub fn open(num: u16) -> anyhow::Result<NfQueue> {
        let mut q = nfq::Queue::open().context("opening a netfilter queue socket")?;
        q.bind(num)
            .with_context(|| format!("binding NFQUEUE {num} (is another gear-idler running?)"))?;
        // Headers are all we read; a full queue lets packets through rather than dropping.
        q.set_copy_range(num, 128)?;
        q.set_queue_max_len(num, 4096)?;
        q.set_fail_open(num, true)?;
        let (held_tx, held) = tokio::sync::mpsc::unbounded_channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let holding = Arc::new(AtomicUsize::new(0));
        let count = holding.clone();
        std::thread::Builder::new()
            .name("nfqueue".into())
            .spawn(move || {
                if let Err(e) = pump(q, held_tx, release_rx, &count) {
                    log::error!("the packet queue failed: {e:#}");
                }
            })
            .context("starting the queue thread")?;
        Ok(NfQueue {
            held,
            release,
            holding,
        })
    }
}

/// The test's side of an [`NfQueue`] without the kernel: it plays the queue thread.
#[cfg(test)]
pub(crate) struct StandIn {
    /// Packets the idler will read as held.
    pub held: tokio::sync::mpsc::UnboundedSender<Held>,
    /// The releases the idler asks for.
    pub releases: std::sync::mpsc::Receiver<Vec<u64>>,
    /// How many packets the thread holds: set it as verdicts are given.
    pub holding: Arc<AtomicUsize>,
}

#[cfg(test)]
impl NfQueue {
    /// An [`NfQueue`] whose queue thread is the test, which holds `holding` packets now.
    pub(crate) fn stand_in(holding: usize) -> (NfQueue, StandIn) {
        let (held_tx, held) = tokio::sync::mpsc::unbounded_channel();
        let (release, releases) = std::sync::mpsc::channel();
        let count = Arc::new(AtomicUsize::new(holding));
        let queue = NfQueue {
            held,
            release,
            holding: count.clone(),
        };
        let stand_in = StandIn {
            held: held_tx,
            releases,
            holding: count,
        };
        (queue, stand_in)
    }
}

impl PacketQueue for NfQueue {
    async fn next(&mut self) -> Option<Held> {
        self.held.recv().await
    }

    fn release(&self, tokens: Vec<u64>) {
        let _ = self.release.send(tokens);
    }

    async fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_WAIT;
        while self.holding.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = self.holding.load(Ordering::SeqCst);
        if left > 0 {
            log::warn!("{left} held packet(s) not let go within {DRAIN_WAIT:?}");
        }
    }
}

/// The queue thread. `nfq::Queue` is blocking and needs `&mut` for both reading and
/// verdicts, and exposes no fd to poll. So: while nothing is held it blocks in `recv` (no
/// verdict can be due); while packets are held it alternates between non-blocking reads
/// and waiting up to a millisecond for releases.
fn pump(
    mut q: nfq::Queue,
    held_tx: tokio::sync::mpsc::UnboundedSender<Held>,
    releases: std::sync::mpsc::Receiver<Vec<u64>>,
    holding: &AtomicUsize,
) -> anyhow::Result<()> {
    let mut held: HashMap<u64, nfq::Message> = HashMap::new();
    let mut next_token = 0u64;
    let mut accept = |q: &mut nfq::Queue, mut msg: nfq::Message| {
        msg.set_verdict(nfq::Verdict::Accept);
        q.verdict(msg).context("giving a verdict")
    };
    loop {
        q.set_nonblocking(!held.is_empty());
        match q.recv() {
            Ok(msg) => match tcp_dport(msg.get_payload()) {
                Some(port) => {
                    next_token += 1;
                    let payload = msg.get_payload();
                    let (source, dest) = (ip_source(payload), ip_dest(payload));
                    let translated = msg.get_hook() != HOOK_INPUT;
                    if held_tx
                        .send(Held {
                            token: next_token,
                            port,
                            source,
                            dest,
                            translated,
                        })
                        .is_err()
                    {
                        // The idler is shutting down: nobody will release it.
                        accept(&mut q, msg)?;
                        continue;
                    }
                    held.insert(next_token, msg);
                    holding.store(held.len(), Ordering::SeqCst);
                }
                None => accept(&mut q, msg)?,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                match releases.recv_timeout(Duration::from_millis(1)) {
                    Ok(tokens) => release_all(&mut q, &mut held, tokens, &mut accept)?,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        // Shutting down: let every held packet go before the socket closes
                        // (closing it would drop them).
                        let all: Vec<u64> = held.keys().copied().collect();
                        release_all(&mut q, &mut held, all, &mut accept)?;
                        holding.store(0, Ordering::SeqCst);
                        return Ok(());
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the queue"),
        }
        while let Ok(tokens) = releases.try_recv() {
            release_all(&mut q, &mut held, tokens, &mut accept)?;
        }
        // After the verdicts: drain() waits for this to reach 0.
        holding.store(held.len(), Ordering::SeqCst);
    }
}

fn release_all(
    q: &mut nfq::Queue,
    held: &mut HashMap<u64, nfq::Message>,
    tokens: Vec<u64>,
    accept: &mut impl FnMut(&mut nfq::Queue, nfq::Message) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for t in tokens {
        if let Some(msg) = held.remove(&t) {
            accept(q, msg)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub mod fake {
    //! Held packets a test sends in, releases it reads back.

    use std::sync::{Arc, Mutex};

    use super::{Held, PacketQueue};

    /// The test's side: send packets with `packets`, read `released`.
    #[derive(Debug)]
    pub struct FakeQueue {
        /// Where the idler reads packets from.
        pub rx: tokio::sync::mpsc::UnboundedReceiver<Held>,
        /// Every release, in order.
        pub released: Arc<Mutex<Vec<u64>>>,
    }

    impl PacketQueue for FakeQueue {
        async fn next(&mut self) -> Option<Held> {
            self.rx.recv().await
        }

        fn release(&self, tokens: Vec<u64>) {
            self.released.lock().unwrap().extend(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::{DRAIN_WAIT, NfQueue, PacketQueue, ip_dest, ip_source, tcp_dport};

    /// An [`NfQueue`] whose queue thread is `thread`: it gets the releases and the count of
    /// what it holds, which starts at `holding`.
    fn queue_with(
        holding: usize,
        thread: impl FnOnce(std::sync::mpsc::Receiver<Vec<u64>>, Arc<AtomicUsize>) + Send + 'static,
    ) -> (NfQueue, std::thread::JoinHandle<()>) {
        let (queue, them) = NfQueue::stand_in(holding);
        let handle = std::thread::spawn(move || thread(them.releases, them.holding));
        (queue, handle)
    }

    #[tokio::test]
    async fn drain_waits_until_the_queue_thread_has_let_every_held_packet_go() {
        // A queue thread that takes its time over the verdicts, as a busy one does.
        let (mut queue, thread) = queue_with(2, |releases, holding| {
            let tokens = releases.recv().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(tokens, vec![1, 2]);
            holding.store(0, Ordering::SeqCst);
        });
        queue.release(vec![1, 2]);
        let started = Instant::now();
        queue.drain().await;
        let took = started.elapsed();
        // It did not return while packets were held, nor wait out its bound.
        assert_eq!(queue.holding.load(Ordering::SeqCst), 0);
        assert!(
            took >= Duration::from_millis(250),
            "returned after {took:?}"
        );
        assert!(took < DRAIN_WAIT, "took {took:?}");
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn drain_returns_at_once_when_nothing_is_held_and_gives_up_after_its_bound() {
        let (mut idle, thread) = queue_with(0, |_, _| {});
        let started = Instant::now();
        idle.drain().await;
        assert!(started.elapsed() < Duration::from_millis(100));
        thread.join().unwrap();
        // A queue thread that never lets its packet go: the stop is delayed, not blocked.
        let (mut stuck, thread) = queue_with(1, |releases, _| {
            let _ = releases.recv();
        });
        stuck.release(vec![1]);
        let started = Instant::now();
        stuck.drain().await;
        let took = started.elapsed();
        assert!(took >= DRAIN_WAIT && took < DRAIN_WAIT * 2, "took {took:?}");
        assert_eq!(stuck.holding.load(Ordering::SeqCst), 1);
        drop(stuck);
        thread.join().unwrap();
    }

    #[test]
    fn finds_the_destination_port() {
        // IPv4, IHL 5, TCP, then source port 40000 and destination port 4000.
        let mut v4 = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0];
        v4.extend([127, 0, 0, 1, 127, 0, 0, 1]);
        v4.extend([0x9c, 0x40, 0x0f, 0xa0]);
        assert_eq!(tcp_dport(&v4), Some(4000));
        // With 4 bytes of IP options (IHL 6).
        let mut opts = v4.clone();
        opts[0] = 0x46;
        opts.splice(20..20, [1, 1, 1, 0]);
        assert_eq!(tcp_dport(&opts), Some(4000));
        let mut v6 = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        v6.extend([0; 32]);
        v6.extend([0x9c, 0x40, 0x1f, 0x90]);
        assert_eq!(tcp_dport(&v6), Some(8080));
        let mut udp = v4.clone();
        udp[9] = 17;
        assert_eq!(tcp_dport(&udp), None);
        assert_eq!(tcp_dport(&v4[..21]), None);
        assert_eq!(tcp_dport(&[]), None);
        assert_eq!(ip_source(&v4), Some("127.0.0.1".parse().unwrap()));
        let mut from = v6.clone();
        from[8..24].copy_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(ip_source(&from), Some("2001:db8::7".parse().unwrap()));
        assert_eq!(ip_source(&v4[..15]), None);
        let mut to = v4.clone();
        to[16..20].copy_from_slice(&[10, 213, 0, 2]);
        assert_eq!(ip_dest(&to), Some("10.213.0.2".parse().unwrap()));
        let mut to6 = v6.clone();
        to6[24..40].copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(ip_dest(&to6), Some("fd00::2".parse().unwrap()));
        assert_eq!(ip_dest(&v4[..19]), None);
        assert_eq!(ip_source(&[0x20]), None);
    }
}
