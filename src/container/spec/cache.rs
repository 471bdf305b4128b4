//! Specs read from disk once and kept while their file stays the same: gear-idler looks at
//! every installed container every second (idling and health checks), and reading and
//! parsing a thousand specs each time was most of its work.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use anyhow::Context as _;

use super::ContainerSpec;
use crate::id::ContainerId;
use crate::paths::Paths;

/// Specs by container, each with the identity of the file it was read from.
#[derive(Debug, Default)]
pub struct SpecCache {
    kept: HashMap<ContainerId, (Stamp, Arc<ContainerSpec>)>,
}

/// What tells one version of a spec file from another. Specs are replaced by rename, so
/// every write is a new inode, even within one tick of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl SpecCache {
    /// The spec of `id`: the one kept if its file is unchanged (one stat), else read anew.
    pub fn get(&mut self, paths: &Paths, id: &ContainerId) -> anyhow::Result<Arc<ContainerSpec>> {
        let path = paths.spec_file(id);
        let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()));
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) => {
                self.kept.remove(id);
                return Err(e);
            }
        };
        let stamp = Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        };
        if let Some((kept, spec)) = self.kept.get(id)
            && *kept == stamp
        {
            return Ok(spec.clone());
        }
        let spec = Arc::new(ContainerSpec::load(paths, id)?);
        self.kept.insert(id.clone(), (stamp, spec.clone()));
        Ok(spec)
    }

    /// Forgets the specs of containers `keep` says no.
    pub fn retain(&mut self, keep: impl Fn(&ContainerId) -> bool) {
        self.kept.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(paths: &Paths, id: &ContainerId, image: &str) {
        let spec: ContainerSpec =
            serde_json::from_value(serde_json::json!({"Id": id.as_str(), "Image": image})).unwrap();
        let path = paths.spec_file(id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        crate::atomic_file::write(&path, &spec.to_json().unwrap(), 0o644).unwrap();
    }

    #[test]
    fn a_spec_is_read_again_only_once_its_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let id: ContainerId = "web-1".parse().unwrap();
        let mut cache = SpecCache::default();
        assert!(cache.get(&paths, &id).is_err(), "no spec yet");
        write(&paths, &id, "a:1");
        let first = cache.get(&paths, &id).unwrap();
        assert!(
            Arc::ptr_eq(&first, &cache.get(&paths, &id).unwrap()),
            "read again"
        );
        // Rewritten at once, same length: a new file all the same.
        write(&paths, &id, "a:2");
        assert_eq!(cache.get(&paths, &id).unwrap().image.as_str(), "a:2");
        std::fs::remove_file(paths.spec_file(&id)).unwrap();
        assert!(cache.get(&paths, &id).is_err());
        assert!(cache.kept.is_empty());
        write(&paths, &id, "a:3");
        cache.get(&paths, &id).unwrap();
        cache.retain(|_| false);
        assert!(cache.kept.is_empty());
    }
}
