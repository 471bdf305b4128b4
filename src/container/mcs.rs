//! Per-container MCS labels. When SELinux is enabled, each container runs at its own
//! level `s0:cA,cB` (Docker's `--security-opt label=level:...`), so the kernel keeps one
//! container's processes from another's files even where their types would allow it.
//! The level is chosen at the first install, stored in the spec, and kept by every later
//! install, so it never changes under a container's volumes. When SELinux is off, no
//! level is chosen and no option is passed (Docker would refuse a label it cannot apply).
//!
//! Which container holds which level is kept in a reservation store ([`Levels`], one
//! symlink per level), so a new container's pick reads no other container's spec.
//!
//! geard had these helpers (`uniqMcs`, `IntToMcs`) but never used them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::id::ContainerId;
use crate::serde_str::serde_via_str;

/// How many categories the policy has (c0 to c1023), as Docker and libselinux assume.
pub const CATEGORIES: u16 = 1024;

/// Whether the host enforces SELinux labels: the one question gear asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selinux {
    /// No SELinux (or no policy loaded): containers get no level.
    #[default]
    Disabled,
    /// SELinux is on: each container gets its own level.
    Enabled,
}

impl Selinux {
    /// Asks the kernel: SELinux is enabled when its filesystem is mounted with a policy
    /// loaded, as libselinux's `is_selinux_enabled()` decides (`/sys/fs/selinux/enforce`
    /// exists then, in enforcing and permissive mode alike).
    pub fn probe() -> Selinux {
        Selinux::at(Path::new("/sys/fs/selinux"))
    }

    /// As [`Selinux::probe`], with selinuxfs at `mount` (tests).
    pub fn at(mount: &Path) -> Selinux {
        match mount.join("enforce").exists() {
            true => Selinux::Enabled,
            false => Selinux::Disabled,
        }
    }
}

/// An MCS level with two distinct categories, `s0:cA,cB` with A < B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct McsLevel {
    low: u16,
    high: u16,
}

/// How many distinct levels there are: pairs of distinct categories.
const PAIRS: u32 = CATEGORIES as u32 * (CATEGORIES as u32 - 1) / 2;

impl McsLevel {
    /// The `n`th pair in (low, high) order, n < [`PAIRS`].
    fn nth(n: u32) -> McsLevel {
        // Row `low` holds the pairs (low, low+1 .. 1023): CATEGORIES - 1 - low of them.
        let (mut low, mut n) = (0u16, n);
        loop {
            let row = u32::from(CATEGORIES - 1 - low);
            if n < row {
                return McsLevel {
                    low,
                    high: low + 1 + n as u16,
                };
            }
            n -= row;
            low += 1;
        }
    }

    /// The option Docker takes: `label=level:s0:cA,cB`.
    pub fn docker_option(&self) -> String {
        format!("label=level:{self}")
    }
}

impl fmt::Display for McsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s0:c{},c{}", self.low, self.high)
    }
}

/// Why a stored level cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an MCS level of two categories (s0:cA,cB, A < B < 1024)")]
pub struct InvalidLevel(String);

impl FromStr for McsLevel {
    type Err = InvalidLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidLevel(s.to_string());
        let cats = s.strip_prefix("s0:").ok_or_else(bad)?;
        let (a, b) = cats.split_once(',').ok_or_else(bad)?;
        let cat = |c: &str| -> Result<u16, InvalidLevel> {
            let n: u16 = c
                .strip_prefix('c')
                .ok_or_else(bad)?
                .parse()
                .map_err(|_| bad())?;
            (n < CATEGORIES && !c[1..].starts_with('+'))
                .then_some(n)
                .ok_or_else(bad)
        };
        let (low, high) = (cat(a)?, cat(b)?);
        if low >= high {
            return Err(bad());
        }
        Ok(McsLevel { low, high })
    }
}
serde_via_str!(McsLevel);

/// The level of container `id`: derived from its id (FNV-1a, the same on every host and
/// build), so the same id tends to get the same level; when another container has that
/// one (`taken`), the next free pair. `None` only when all 523 776 are taken. The
/// reservation store ([`Levels`]) walks the same order, without a set of taken levels.
pub fn pick<'a>(
    id: &ContainerId,
    taken: impl IntoIterator<Item = &'a McsLevel>,
) -> Option<McsLevel> {
    let taken: std::collections::HashSet<&McsLevel> = taken.into_iter().collect();
    walk(id).find(|level| !taken.contains(level))
}

/// Every level, in the order `id` tries them: from where its hash points, wrapping around.
fn walk(id: &ContainerId) -> impl Iterator<Item = McsLevel> + use<> {
    let start = (fnv1a(id.as_str().as_bytes()) % u64::from(PAIRS)) as u32;
    (0..PAIRS).map(move |i| McsLevel::nth((start + i) % PAIRS))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

mod store;
pub use store::{Levels, Reserved};

#[cfg(test)]
mod tests;
