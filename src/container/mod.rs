//! Containers: what the agent reports about them and the operations on them.

pub mod environment;
pub mod hardening;
pub mod health;
pub mod history;
pub mod host;
pub mod idling;
pub mod images;
mod install;
mod isolate;
pub mod lifecycle;
pub mod linker;
pub mod list;
pub mod lock;
pub mod logs;
pub mod mcs;
pub mod ports;
pub mod probe;
pub mod spec;
pub mod step;
pub mod switch;
pub mod unit;
pub mod verify;
pub mod volumes;

use serde::{Deserialize, Serialize};

use crate::id::ContainerId;

/// One container as `GET /containers` reports it (geard's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// The container id.
    pub id: ContainerId,
    /// systemd's `ActiveState` of `ctr-<id>.service`.
    pub active_state: String,
    /// systemd's `SubState`.
    pub sub_state: String,
    /// systemd's `LoadState`.
    pub load_state: String,
    /// The queued job, if any (`start`, `stop`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
}

/// The answer of `GET /containers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerList {
    /// Containers sorted by id.
    pub containers: Vec<ContainerState>,
}
