//! What a deploy reports: one [`Event`] per thing it did or failed to do, in order, so
//! the caller decides how to show them (`gear deploy` prints one line each).

use std::io;

use crate::id::ContainerId;
use crate::links::NetworkLink;
use crate::locator::HostAddr;

/// Something a deploy did, or failed to do, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The instance already was as planned: no request was sent to change it.
    Unchanged {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
    },
    /// The instance was new and is now installed.
    Installed {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
    },
    /// The instance existed and differed; it was installed again.
    Updated {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
    },
    /// The instance's links changed and were set (a running instance has them at once).
    Linked {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
        /// Its links now (empty: it lost its last one).
        links: Vec<NetworkLink>,
    },
    /// The instance was not running and was started.
    Started {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
    },
    /// The instance was running and was updated, so it was restarted.
    Restarted {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
    },
    /// The instance is no longer wanted and was deleted.
    Deleted {
        /// The instance.
        id: ContainerId,
        /// Its host.
        host: HostAddr,
    },
    /// A step failed; the deploy went on with everything else.
    Failed {
        /// The host it failed on.
        host: HostAddr,
        /// The instance, unless the step was one request for several (links).
        id: Option<ContainerId>,
        /// What was being done.
        step: Step,
        /// Why it failed (the agent's message).
        error: String,
    },
}

/// What a deploy was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading an instance's status and environment.
    Observe,
    /// Installing or updating an instance.
    Install,
    /// Setting the links of a host's instances.
    Link,
    /// Starting or restarting an instance.
    Start,
    /// Deleting an instance no longer wanted.
    Delete,
}

/// Passes events on, remembering whether one was a failure.
pub(super) struct Report<'a, F> {
    on_event: &'a mut F,
    all_done: bool,
}

impl<'a, F: FnMut(&Event) -> io::Result<()>> Report<'a, F> {
    pub(super) fn new(on_event: &'a mut F) -> Self {
        Report {
            on_event,
            all_done: true,
        }
    }

    /// Whether no failure was reported.
    pub(super) fn all_done(&self) -> bool {
        self.all_done
    }

    pub(super) fn emit(&mut self, event: Event) -> io::Result<()> {
        if matches!(event, Event::Failed { .. }) {
            self.all_done = false;
        }
        (self.on_event)(&event)
    }

    pub(super) fn failed(
        &mut self,
        host: &HostAddr,
        id: Option<&ContainerId>,
        step: Step,
        error: &anyhow::Error,
    ) -> io::Result<()> {
        self.emit(Event::Failed {
            host: host.clone(),
            id: id.cloned(),
            step,
            error: format!("{error:#}"),
        })
    }
}
