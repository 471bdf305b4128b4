//! Readiness and shutdown notifications to the service manager (`Type=notify`).
//!
//! Sent straight over `$NOTIFY_SOCKET`, so the unit needs no `NotifyAccess=all`; outside
//! systemd the variable is unset and these do nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("could not notify systemd: {e}");
    }
}

/// The service is serving: systemd ends the start job and queued clients proceed.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The service is on its way out, so systemd does not count the exit as a crash.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// A new status line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}
