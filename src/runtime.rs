//! The async runtime every gear program runs on.

use anyhow::Context as _;

/// A single-threaded runtime: gear's programs spend their time waiting on systemd, Docker
/// and the network, and one thread keeps their memory small.
pub fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
