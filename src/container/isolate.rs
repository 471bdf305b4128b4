//! The Unix user of an isolated container: made (or kept) on install, removed when the
//! container stops being isolated or is deleted. See `accounts` for the seam.

use std::os::unix::fs::DirBuilderExt as _;

use anyhow::Context as _;

use super::host::{Host, Parts};
use super::lifecycle::Error;
use super::spec::ContainerSpec;
use crate::accounts::{self, Accounts, ContainerUser};
use crate::id::ContainerId;
use crate::paths::Paths;

impl<P: Parts> Host<P> {
    /// The user container `id` runs as after this install: `ctr-ID`, created if needed,
    /// when `isolate`; none otherwise (an earlier user is removed).
    pub(super) fn user_for(
        &self,
        id: &ContainerId,
        isolate: bool,
        old: Option<&ContainerSpec>,
    ) -> Result<Option<ContainerUser>, Error> {
        if !isolate {
            if let Some(user) = old.and_then(|o| o.user.as_ref()) {
                self.accounts.remove(&user.name)?;
                remove_home(&self.paths, id)?;
            }
            return Ok(None);
        }
        let name = accounts::login(id).map_err(anyhow::Error::from)?;
        let home = self.paths.home_dir(id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&home)
            .with_context(|| format!("creating {}", home.display()))?;
        Ok(Some(self.accounts.ensure(&name, &home)?))
    }
}

/// Removes the (root-owned, empty) home of `id`'s user.
pub(super) fn remove_home(paths: &Paths, id: &ContainerId) -> anyhow::Result<()> {
    let home = paths.home_dir(id);
    match std::fs::remove_dir_all(&home) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", home.display()))
        }
        _ => Ok(()),
    }
}
