//! Listing containers: every installed container (a unit file on disk), with the state
//! systemd has for it. systemd unloads a stopped unit nothing refers to; such a container
//! is listed all the same, as `inactive`/`dead`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{ContainerList, ContainerState};
use crate::id::{ContainerId, UNIT_PATTERN};
use crate::paths::Paths;
use crate::systemd::Systemd;

/// Lists the installed containers, sorted by id, in one call to systemd; the ids come from
/// `cache` while the units directory has not changed.
pub async fn list(
    paths: &Paths,
    systemd: &impl Systemd,
    cache: &InstalledCache,
) -> anyhow::Result<ContainerList> {
    let mut loaded = BTreeMap::new();
    for unit in systemd.list_units(UNIT_PATTERN).await? {
        if let Some(id) = ContainerId::from_unit_name(&unit.name) {
            loaded.insert(id, unit);
        }
    }
    let containers = cache
        .get(paths)?
        .iter()
        .map(|id| match loaded.remove(id) {
            // A unit systemd knows only by name (a dangling reference) has no state of note.
            Some(unit) if !matches!(unit.load_state.as_str(), "not-found" | "masked") => {
                ContainerState {
                    id: id.clone(),
                    active_state: unit.active_state,
                    sub_state: unit.sub_state,
                    load_state: unit.load_state,
                    job_type: unit.job_type,
                }
            }
            _ => ContainerState {
                id: id.clone(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                load_state: "loaded".into(),
                job_type: None,
            },
        })
        .collect();
    Ok(ContainerList { containers })
}

/// The ids of [`installed`], kept between calls while the units directory is unchanged:
/// reading a directory of a thousand entries is most of what a list of them costs.
#[derive(Debug, Default)]
pub struct InstalledCache {
    kept: Mutex<Option<Kept>>,
}

#[derive(Debug)]
struct Kept {
    dir: std::path::PathBuf,
    stamp: DirStamp,
    ids: Arc<Vec<ContainerId>>,
}

/// What changes when an entry of a directory is added, removed or renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    ino: u64,
    mtime: SystemTime,
    ctime: (i64, i64),
}

/// How long after a directory's last change a read of it is trusted: its time stamps come
/// from a coarse clock (a tick of a few milliseconds), so a change in the same tick as the
/// one before leaves them as they were; once this has passed, any later change moves them.
const SETTLED: Duration = Duration::from_secs(1);

impl InstalledCache {
    /// [`installed`], from what was kept when the directory has not changed since.
    pub fn get(&self, paths: &Paths) -> anyhow::Result<Arc<Vec<ContainerId>>> {
        let dir = paths.units_dir();
        let Some(stamp) = stamp_of(&dir)? else {
            return Ok(Arc::new(vec![]));
        };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kept.as_ref().filter(|k| k.dir == dir && k.stamp == stamp) {
            return Ok(k.ids.clone());
        }
        let read_at = SystemTime::now();
        let ids = Arc::new(installed(paths)?);
        // Kept only once the directory has settled, and only if nothing moved meanwhile.
        let settled = stamp
            .mtime
            .checked_add(SETTLED)
            .is_some_and(|t| t <= read_at);
        *kept = match settled && stamp_of(&dir)? == Some(stamp) {
            true => Some(Kept {
                dir,
                stamp,
                ids: ids.clone(),
            }),
            false => None,
        };
        Ok(ids)
    }
}

fn stamp_of(dir: &std::path::Path) -> anyhow::Result<Option<DirStamp>> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(dir) {
        Ok(m) => Ok(Some(DirStamp {
            ino: m.ino(),
            mtime: m
                .modified()
                .with_context(|| format!("reading {}", dir.display()))?,
            ctime: (m.ctime(), m.ctime_nsec()),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
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
        let list = list(&paths, &fake, &InstalledCache::default())
            .await
            .unwrap();
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
        let list = list(
            &Paths::new(dir.path()),
            &FakeSystemd::default(),
            &InstalledCache::default(),
        )
        .await
        .unwrap();
        assert_eq!(list, ContainerList::default());
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"Containers":[]}"#
        );
    }

    #[test]
    fn the_cache_follows_every_change_of_the_units_directory() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let cache = InstalledCache::default();
        assert!(cache.get(&paths).unwrap().is_empty(), "no directory yet");
        installed_units(&paths, &["ctr-web-1.service"]);
        let ids = |cache: &InstalledCache| -> Vec<String> {
            cache
                .get(&paths)
                .unwrap()
                .iter()
                .map(|i| i.to_string())
                .collect()
        };
        assert_eq!(ids(&cache), ["web-1"]);
        // Changes right after one another, within one tick of the clock, are all seen:
        // a directory that changed in the last second is read afresh.
        installed_units(&paths, &["ctr-web-2.service"]);
        assert_eq!(ids(&cache), ["web-1", "web-2"]);
        std::fs::remove_file(paths.units_dir().join("ctr-web-1.service")).unwrap();
        assert_eq!(ids(&cache), ["web-2"]);
        assert!(cache.kept.lock().unwrap().is_none(), "kept while unsettled");
        // Once settled, it is kept, and the next change is still seen.
        let old = SystemTime::now() - Duration::from_secs(5);
        let units = std::fs::File::open(paths.units_dir()).unwrap();
        units.set_modified(old).unwrap();
        assert_eq!(ids(&cache), ["web-2"]);
        assert!(cache.kept.lock().unwrap().is_some());
        installed_units(&paths, &["ctr-web-3.service"]);
        assert_eq!(ids(&cache), ["web-2", "web-3"]);
    }
}
