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

/// Has the allocator keep the memory it got for a long-running server: answers of a few
/// hundred kilobytes (`GET /containers` with a thousand containers) were mapped, zeroed by
/// the kernel and unmapped again at every request, or their heap handed back and faulted
/// in anew; page faults were a third of such a request's time. The heap now keeps what a
/// request needed (it stays well under gear-api's memory target: docs/benchmarks.md).
/// Call before any other thread starts.
#[allow(unsafe_code)]
pub fn keep_heap() {
    // Blocks up to 4 MiB come from the heap, and the heap's top is kept up to 8 MiB.
    // SAFETY: mallopt only sets glibc's allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}
