//! Listing containers: the container units systemd has loaded, and optionally the
//! installed ones it has not loaded (stopped containers systemd has garbage-collected).

use std::collections::BTreeMap;

use anyhow::Context as _;

use super::{ContainerList, ContainerState};
use crate::id::{ContainerId, UNIT_PATTERN};
use crate::paths::Paths;
use crate::systemd::Systemd;

/// Lists containers, sorted by id. With `all`, installed containers that systemd has not
/// loaded are included as `inactive`/`dead`.
pub async fn list(
    paths: &Paths,
    systemd: &impl Systemd,
    all: bool,
) -> anyhow::Result<ContainerList> {
    let mut by_id = BTreeMap::new();
    for unit in systemd.list_units(UNIT_PATTERN).await? {
        // A unit systemd only knows by name (a dangling reference) is not a container.
        if matches!(unit.load_state.as_str(), "not-found" | "masked") {
            continue;
        }
        let Some(id) = ContainerId::from_unit_name(&unit.name) else {
            continue;
        };
        by_id.insert(
            id.clone(),
            ContainerState {
                id,
                active_state: unit.active_state,
                sub_state: unit.sub_state,
                load_state: unit.load_state,
                job_type: unit.job_type,
            },
        );
    }
    if all {
        for id in installed(paths)? {
            by_id.entry(id.clone()).or_insert(ContainerState {
                id,
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                load_state: "loaded".into(),
                job_type: None,
            });
        }
    }
    Ok(ContainerList {
        containers: by_id.into_values().collect(),
    })
}

/// Ids of the containers with a unit file on disk.
pub fn installed(paths: &Paths) -> anyhow::Result<Vec<ContainerId>> {
    let dir = paths.units_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(ContainerId::from_unit_name)
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::fake::FakeSystemd;

    #[tokio::test]
    async fn lists_container_units_sorted_and_skips_not_found() {
        let fake = FakeSystemd::with_units(&[
            ("ctr-web-2.service", "active", "running"),
            ("ctr-web-1.service", "failed", "failed"),
            ("ctr-bad.service", "active", "running"),
        ]);
        fake.units.lock().unwrap().push(crate::systemd::UnitInfo {
            name: "ctr-gone.service".into(),
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            job_type: None,
        });
        let dir = tempfile::tempdir().unwrap();
        let list = list(&Paths::new(dir.path()), &fake, false).await.unwrap();
        let ids: Vec<_> = list.containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["web-1", "web-2"]);
        assert_eq!(list.containers[0].active_state, "failed");
        assert_eq!(*fake.calls.lock().unwrap(), ["list_units ctr-*.service"]);
    }

    #[tokio::test]
    async fn all_adds_installed_units_systemd_has_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        std::fs::create_dir_all(paths.units_dir()).unwrap();
        for name in ["ctr-idle1.service", "ctr-web-1.service", "notes.txt"] {
            std::fs::write(paths.units_dir().join(name), "").unwrap();
        }
        let fake = FakeSystemd::with_units(&[("ctr-web-1.service", "active", "running")]);
        let list = list(&paths, &fake, true).await.unwrap();
        let got: Vec<_> = list
            .containers
            .iter()
            .map(|c| (c.id.as_str(), c.active_state.as_str()))
            .collect();
        assert_eq!(got, [("idle1", "inactive"), ("web-1", "active")]);
    }

    #[tokio::test]
    async fn fresh_host_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let list = list(&Paths::new(dir.path()), &FakeSystemd::default(), true)
            .await
            .unwrap();
        assert_eq!(list, ContainerList::default());
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"Containers":[]}"#
        );
    }
}
