//! How many wakes connections may cause: per source and overall, over a sliding window.
//! A port scan over a range of idle containers, or a flood of (spoofed) SYNs, would
//! otherwise start every container on the host; past a limit a SYN that would start a
//! wake is let go at once instead (the client is refused, nothing starts). SYNs that join
//! a wake already under way cost nothing: they start nothing.
//!
//! A source is an IPv4 address, or an IPv6 /64 (what one host is usually given). The
//! host's own loopback clients have no share of their own, only the total: they may
//! start any container through the agent anyway. Pure, with a given clock.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeLimits {
    /// Wakes one source may cause per window.
    pub per_source: u32,
    /// Wakes all sources together may cause per window.
    pub overall: u32,
    /// The window.
    pub window: Duration,
}

impl Default for WakeLimits {
    fn default() -> Self {
        WakeLimits {
            per_source: 10,
            overall: 60,
            window: Duration::from_secs(60),
        }
    }
}

/// Why a wake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// This source used its wakes.
    Source(IpAddr),
    /// Every source together used theirs.
    Overall,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limited::Source(ip) => write!(f, "{ip} caused its wakes for this window already"),
            Limited::Overall => f.write_str("the host's wakes for this window are used up"),
        }
    }
}

/// The wakes of the last window.
#[derive(Debug, Clone)]
pub struct WakeBudget {
    limits: WakeLimits,
    recent: VecDeque<(Instant, Option<IpAddr>)>,
}

impl WakeBudget {
    /// A budget with nothing spent.
    pub fn new(limits: WakeLimits) -> WakeBudget {
        WakeBudget {
            limits,
            recent: VecDeque::new(),
        }
    }

    /// Spends one wake for a SYN from `source` (unknown when the header could not be read)
    /// at `now`, or says why not.
    pub fn spend(&mut self, source: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.limits.window)
        {
            self.recent.pop_front();
        }
        // Loopback clients have no share of their own (see the module's doc).
        let source = source
            .map(|ip| ip.to_canonical())
            .filter(|ip| !ip.is_loopback())
            .map(key);
        if self.recent.len() >= self.limits.overall as usize {
            return Err(Limited::Overall);
        }
        if let Some(ip) = source {
            let mine = self.recent.iter().filter(|(_, s)| *s == Some(ip)).count();
            if mine >= self.limits.per_source as usize {
                return Err(Limited::Source(ip));
            }
        }
        self.recent.push_back((now, source));
        Ok(())
    }
}

/// What counts as one source: the address, IPv4-mapped ones unmapped, IPv6 cut to its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn one_source_gets_its_share_and_the_host_its_total_per_window() {
        let limits = WakeLimits {
            per_source: 2,
            overall: 3,
            window: Duration::from_secs(60),
        };
        let mut b = WakeBudget::new(limits);
        let t0 = Instant::now();
        assert_eq!(b.spend(ip("10.0.0.1"), t0), Ok(()));
        assert_eq!(b.spend(ip("::ffff:10.0.0.1"), t0), Ok(()));
        assert_eq!(
            b.spend(ip("10.0.0.1"), t0),
            Err(Limited::Source("10.0.0.1".parse().unwrap()))
        );
        // Another host still may, until the host's total is reached.
        assert_eq!(b.spend(ip("10.0.0.2"), t0), Ok(()));
        assert_eq!(b.spend(ip("10.0.0.3"), t0), Err(Limited::Overall));
        assert_eq!(b.spend(None, t0), Err(Limited::Overall));
        // A window later, all is forgiven.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.spend(ip("10.0.0.1"), later), Ok(()));
        assert_eq!(b.spend(ip("10.0.0.1"), later), Ok(()));
        assert!(b.spend(ip("10.0.0.1"), later).is_err());
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        let limits = WakeLimits {
            per_source: 1,
            overall: 100,
            window: Duration::from_secs(60),
        };
        let mut b = WakeBudget::new(limits);
        let t = Instant::now();
        assert_eq!(b.spend(ip("2001:db8:1:2::1"), t), Ok(()));
        assert_eq!(
            b.spend(ip("2001:db8:1:2:ffff::9"), t),
            Err(Limited::Source("2001:db8:1:2::".parse().unwrap()))
        );
        assert_eq!(b.spend(ip("2001:db8:1:3::1"), t), Ok(()));
        // Unknown and loopback sources count only against the total.
        assert_eq!(b.spend(None, t), Ok(()));
        assert_eq!(b.spend(None, t), Ok(()));
        for _ in 0..3 {
            assert_eq!(b.spend(ip("127.0.0.1"), t), Ok(()));
            assert_eq!(b.spend(ip("::1"), t), Ok(()));
        }
    }
}
