//! The answers of the API, typed once and shared by the agent (which serialises them) and
//! the CLI and `gear deploy` (which read them back), so a renamed field is a compile error
//! rather than an empty column. Field names are geard's PascalCase.

use serde::{Deserialize, Serialize};

use crate::container::ContainerState;
pub use crate::container::images::{ImageInfo, ImageList, Pruned, Pulled};
pub use crate::container::lifecycle::Installed;
use crate::container::ports::PortPair;
use crate::container::spec::ContainerSpec;
use crate::container::volumes::MountPath;
pub use crate::container::volumes::store::{VolumeInfo, VolumeList};
use crate::id::ContainerId;
use crate::idle::IdleMode;

/// `GET /container/:id/status` (and the answer of start, stop, restart, idle, unidle and
/// idle-policy): systemd's view, what the container was installed with, and more of what
/// `systemctl status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// Its id and unit states.
    #[serde(flatten)]
    pub state: ContainerState,
    /// The unit, `ctr-<id>.service`.
    #[serde(default)]
    pub unit: String,
    /// What it was installed with.
    pub spec: ContainerSpec,
    /// How it was idled, while it is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleMode>,
    /// When the unit entered its current state, in microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_usec: Option<u64>,
    /// The unit's main process (`docker run`), while there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_pid: Option<u32>,
    /// Memory the unit's processes use now, in bytes, where systemd accounts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// How the unit last ended (`success`, `exit-code`, `oom-kill`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Its health, once it has failed a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::container::health::HealthState>,
}

/// `GET /container/:id/ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ports {
    /// Published ports.
    pub ports: Vec<PortPair>,
}

/// `POST /containers/links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Linked {
    /// The containers whose links were set.
    pub linked: Vec<ContainerId>,
    /// Those of them that run and have the new links now (the others get them at their
    /// next start).
    #[serde(default)]
    pub applied: Vec<ContainerId>,
}

/// `DELETE /containers` (purge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stopped {
    /// The containers stopped.
    pub stopped: Vec<ContainerId>,
}

/// `DELETE /container/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deleted {
    /// The container.
    pub id: ContainerId,
    /// Always true.
    pub deleted: bool,
    /// Its owned volumes left on disk (without `?volumes=1`), by path in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_volumes: Vec<MountPath>,
    /// Its owned volumes removed (with `?volumes=1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_volumes: Vec<MountPath>,
}

/// One line of `PUT /container/:id?progress=1`: progress while it runs, then the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InstallLine {
    /// What is happening (a pull's progress).
    Progress {
        /// The text.
        #[serde(rename = "Progress")]
        progress: String,
    },
    /// It is installed.
    Installed {
        /// The outcome.
        #[serde(rename = "Installed")]
        installed: Installed,
    },
    /// It failed, with the status the plain request would have answered.
    Failed {
        /// Why.
        #[serde(rename = "Message")]
        message: String,
        /// The HTTP status.
        #[serde(rename = "Status")]
        status: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_back_what_the_agent_writes() {
        let text = r#"{"Id":"web-1","ActiveState":"active","SubState":"running","LoadState":"loaded",
            "Spec":{"Id":"web-1","Image":"gear-test/httpd:latest","Ports":[{"Internal":8080,"External":4000}],
            "Slice":"container.slice","Restart":"always",
            "Links":[{"FromHost":"127.0.0.1","FromPort":8081,"ToHost":"localhost","ToPort":4001}]},
            "Idle":"freeze"}"#;
        let status: Status = serde_json::from_str(text).unwrap();
        assert_eq!(status.state.id.as_str(), "web-1");
        assert_eq!(status.state.active_state, "active");
        assert_eq!(status.spec.image.as_str(), "gear-test/httpd:latest");
        assert_eq!(status.spec.ports[0].external.get(), 4000);
        assert_eq!(
            status.spec.links[0].to_string(),
            "127.0.0.1:8081:localhost:4001"
        );
        assert_eq!(status.idle, Some(IdleMode::Freeze));
        let again: Status = serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(again, status);
    }

    #[test]
    fn linked_and_stopped_have_the_agents_shape() {
        // An older agent's answer, without Applied, still reads.
        let old: Linked = serde_json::from_str(r#"{"Linked":["web-1"]}"#).unwrap();
        assert!(old.applied.is_empty());
        let ids = vec!["web-1".parse::<ContainerId>().unwrap()];
        assert_eq!(
            serde_json::to_string(&Linked {
                linked: ids.clone(),
                applied: vec![],
            })
            .unwrap(),
            r#"{"Linked":["web-1"],"Applied":[]}"#
        );
        assert_eq!(
            serde_json::to_string(&Stopped { stopped: ids }).unwrap(),
            r#"{"Stopped":["web-1"]}"#
        );
    }

    #[test]
    fn installed_reads_back() {
        let text = r#"{"Id":"web-1","Ports":[{"Internal":8080,"External":4000}],"Started":true}"#;
        let installed: Installed = serde_json::from_str(text).unwrap();
        assert!(installed.started);
        assert_eq!(serde_json::to_string(&installed).unwrap(), text);
    }
}
