//! Listing containers: every installed container (a unit file on disk), with the state
//! systemd has for it. systemd unloads a stopped unit nothing refers to; such a container
//! is listed all the same, as `inactive`/`dead`.

use std::collections::BTreeMap;

use anyhow::Context as _;

use super::{ContainerList, ContainerState};
use crate::id::{ContainerId, UNIT_PATTERN};
use crate::paths::Paths;
use crate::systemd::Systemd;

/// Lists the installed containers, sorted by id, in one call to systemd.
pub async fn list(paths: &Paths, systemd: &impl Systemd) -> anyhow::Result<ContainerList> {
    let mut loaded = BTreeMap::new();
    for unit in systemd.list_units(UNIT_PATTERN).await? {
        if let Some(id) = ContainerId::from_unit_name(&unit.name) {
            loaded.insert(id, unit);
        }
    }
    let containers = installed(paths)?
        .into_iter()
        .map(|id| match loaded.remove(&id) {
            // A unit systemd knows only by name (a dangling reference) has no state of note.
            Some(unit) if !matches!(unit.load_state.as_str(), "not-found" | "masked") => {
                ContainerState {
                    id,
                    active_state: unit.active_state,
                    sub_state: unit.sub_state,
                    load_state: unit.load_state,
                    job_type: unit.job_type,
                }
            }
            _ => ContainerState {
                id,
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                load_state: "loaded".into(),
                job_type: None,
            },
        })
        .collect();
    Ok(ContainerList { containers })
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

    fn installed_units(paths: &Paths, names: &[&str]) {
        std::fs::create_dir_all(paths.units_dir()).unwrap();
        for name in names {
            std::fs::write(paths.units_dir().join(name), "").unwrap();
        }
    }

    #[tokio::test]
    async fn lists_every_installed_container_with_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        installed_units(
            &paths,
            &[
                "ctr-idle1.service",
                "ctr-web-1.service",
                "ctr-web-2.service",
                "ctr-gone.service",
                "notes.txt",
            ],
        );
        let fake = FakeSystemd::with_units(&[
            ("ctr-web-2.service", "active", "running"),
            ("ctr-web-1.service", "failed", "failed"),
            // Loaded, but not installed: not a container of this host.
            ("ctr-stray.service", "active", "running"),
        ]);
        fake.units.lock().unwrap().push(crate::systemd::UnitInfo {
            name: "ctr-gone.service".into(),
            load_state: "not-found".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            job_type: None,
        });
        let list = list(&paths, &fake).await.unwrap();
        let got: Vec<_> = list
            .containers
            .iter()
            .map(|c| (c.id.as_str(), c.active_state.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("gone", "inactive"),
                ("idle1", "inactive"),
                ("web-1", "failed"),
                ("web-2", "active")
            ]
        );
        assert_eq!(*fake.calls.lock().unwrap(), ["list_units ctr-*.service"]);
    }

    #[tokio::test]
    async fn fresh_host_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let list = list(&Paths::new(dir.path()), &FakeSystemd::default())
            .await
            .unwrap();
        assert_eq!(list, ContainerList::default());
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"Containers":[]}"#
        );
    }
}
