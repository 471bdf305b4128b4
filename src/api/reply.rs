//! The JSON answers of the agent, shared by the server that writes them and the clients
//! that read them (as [`Request`](super::Request) is), so a renamed field is a compile
//! error on both sides instead of an empty column. Field names are geard's: PascalCase.

use serde::{Deserialize, Serialize};

use crate::container::ContainerState;
use crate::container::spec::ContainerSpec;
use crate::id::ContainerId;
use crate::idle::IdleMode;

/// `PUT /container/:id`: the installed container, its published ports and whether it was
/// started (`{"Id": "web-1", "Ports": [{"Internal": 8080, "External": 4000}], "Started": false}`).
pub use crate::container::lifecycle::Installed;

/// `GET /container/:id/status`, and the answer of start, stop, restart and the idle
/// requests: systemd's view of the unit and what the container was installed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// `Id`, `ActiveState`, `SubState`, `LoadState` (and `JobType` while a job is queued).
    #[serde(flatten)]
    pub state: ContainerState,
    /// The container's spec.
    pub spec: ContainerSpec,
    /// How it was idled, while it is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleMode>,
}

/// `POST /containers/links`: the containers whose links were set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Linked {
    /// The containers, in the order of the request.
    pub linked: Vec<ContainerId>,
}

/// `PUT /containers/stopped` (purge): the containers that were stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stopped {
    /// The containers, by id.
    pub stopped: Vec<ContainerId>,
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
        let ids = vec!["web-1".parse::<ContainerId>().unwrap()];
        assert_eq!(
            serde_json::to_string(&Linked {
                linked: ids.clone()
            })
            .unwrap(),
            r#"{"Linked":["web-1"]}"#
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
