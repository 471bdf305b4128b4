//! The images on a host and which containers use them: `GET /images`, `gear pull`,
//! `gear prune-images`.
//!
//! A gear container has a Docker container only while it runs, so Docker alone cannot say
//! that a stopped or idle container still needs its image: the installed specs do. An
//! image is in use when an installed container's image resolves to it, or when any Docker
//! container (a running one, a one-off job, a container gear does not manage) was made
//! from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::host::{Host, Parts};
use super::lifecycle::Error;
use super::spec::{ContainerSpec, Image};
use super::unit;
use crate::docker::Docker;

/// One image, as `GET /images` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInfo {
    /// Its id, `sha256:...`.
    pub id: String,
    /// Its tags; none for a dangling image.
    pub tags: Vec<String>,
    /// Its size on disk in bytes (layers it shares with others are counted in each).
    pub bytes: u64,
    /// When it was built, in seconds since the epoch.
    pub created: i64,
    /// The gear containers installed with it, and other Docker containers made from it
    /// (by their Docker name).
    pub used_by: Vec<String>,
}

/// The answer of `GET /images`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageList {
    /// Images sorted by their first tag (dangling ones last).
    pub images: Vec<ImageInfo>,
}

/// The answer of `POST /images/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pruned {
    /// The images removed.
    pub removed: Vec<ImageInfo>,
    /// How many images were kept because something uses them.
    pub kept: usize,
}

/// The result of `POST /images/pull`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pulled {
    /// The reference pulled.
    pub image: Image,
    /// The id it now names.
    pub id: String,
}

impl<P: Parts> Host<P> {
    /// Every image on the host, with what uses it.
    pub async fn images(&self) -> Result<ImageList, Error> {
        let users = self.image_users().await?;
        let mut images: Vec<ImageInfo> = self
            .docker
            .list_images()
            .await?
            .into_iter()
            .map(|i| ImageInfo {
                used_by: users.get(&i.id).cloned().unwrap_or_default(),
                id: i.id,
                tags: i.tags,
                bytes: i.bytes,
                created: i.created,
            })
            .collect();
        images.sort_by(|a, b| {
            let key = |i: &ImageInfo| (i.tags.is_empty(), i.tags.first().cloned(), i.id.clone());
            key(a).cmp(&key(b))
        });
        Ok(ImageList { images })
    }

    /// Removes every image nothing uses; never one an installed container (running or
    /// not) or any Docker container was made from.
    pub async fn prune_images(&self) -> Result<Pruned, Error> {
        let mut pruned = Pruned::default();
        for image in self.images().await?.images {
            if !image.used_by.is_empty() {
                pruned.kept += 1;
                continue;
            }
            match self.docker.remove_image(&image.id).await? {
                true => pruned.removed.push(image),
                // A container was made from it since we looked.
                false => pruned.kept += 1,
            }
        }
        Ok(pruned)
    }

    /// Pulls `image` (again, even if present: a tag may have moved), sending Docker's
    /// progress to `progress`.
    pub async fn pull(
        &self,
        image: &Image,
        progress: Option<&UnboundedSender<String>>,
    ) -> Result<Pulled, Error> {
        self.pull_image(image, progress).await?;
        let id = self.docker.image_id(image.as_str()).await?.ok_or_else(|| {
            Error::Host(anyhow::anyhow!("{image} is not on the host after its pull"))
        })?;
        Ok(Pulled {
            image: image.clone(),
            id,
        })
    }

    /// Image id → who uses it: installed containers by id, other Docker containers by name.
    async fn image_users(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in super::list::installed(&self.paths)? {
            let Ok(spec) = ContainerSpec::load(&self.paths, &id) else {
                continue;
            };
            if let Some(image) = self.docker.image_id(spec.image.as_str()).await? {
                users.entry(image).or_default().push(id.to_string());
            }
            // Kept versions keep their images: a rollback needs no pull.
            let history = super::history::History::load(&self.paths, &id)?;
            for v in history.versions.iter().rev().skip(1) {
                if let Some(image) = &v.image_id {
                    let user = users.entry(image.clone()).or_default();
                    if !user.iter().any(|u| *u == id.as_str()) {
                        user.push(format!("{id} (version {})", v.version));
                    }
                }
            }
        }
        for (name, image) in self.docker.container_images().await? {
            // A running gear container is already counted by its id; its image is the
            // one it started with, which an update may have changed since.
            let counted = users.get(&image).is_some_and(|u| {
                u.iter()
                    .any(|id| id.parse().is_ok_and(|id| unit::docker_name(&id) == name))
            });
            if !counted {
                users.entry(image).or_default().push(name);
            }
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use crate::container::host::fake_host;
    use crate::docker::fake::{FakeDocker, fake_id};

    #[tokio::test]
    async fn prune_keeps_what_installed_or_docker_containers_use() {
        let dir = tempfile::tempdir().unwrap();
        let docker = FakeDocker::default();
        for image in ["used:1", "old:1", "job:1", "dangling:1"] {
            docker.images.lock().unwrap().insert(image.into());
        }
        docker
            .container_images
            .lock()
            .unwrap()
            .push(("job-7".into(), fake_id("job:1")));
        let h = fake_host(dir.path(), docker);
        let web = "web-1".parse().unwrap();
        let req = serde_json::from_str(r#"{"Image":"used:1"}"#).unwrap();
        h.install(&web, req, None).await.unwrap();

        let list = h.images().await.unwrap().images;
        let used: Vec<(&str, &[String])> = list
            .iter()
            .map(|i| (i.tags[0].as_str(), i.used_by.as_slice()))
            .collect();
        assert_eq!(
            used,
            [
                ("dangling:1", &[][..]),
                ("job:1", &["job-7".to_string()][..]),
                ("old:1", &[][..]),
                ("used:1", &["web-1".to_string()][..]),
            ]
        );

        let pruned = h.prune_images().await.unwrap();
        let removed: Vec<&str> = pruned.removed.iter().map(|i| i.tags[0].as_str()).collect();
        assert_eq!(removed, ["dangling:1", "old:1"]);
        assert_eq!(pruned.kept, 2);
        let left = h.docker.images.lock().unwrap().clone();
        assert_eq!(left.into_iter().collect::<Vec<_>>(), ["job:1", "used:1"]);
    }

    #[tokio::test]
    async fn pull_names_the_image_it_could_not_get() {
        let dir = tempfile::tempdir().unwrap();
        let docker = FakeDocker::default();
        docker.pullable.lock().unwrap().insert("remote/img".into());
        let h = fake_host(dir.path(), docker);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pulled = h
            .pull(&"remote/img".parse().unwrap(), Some(&tx))
            .await
            .unwrap();
        assert_eq!(pulled.id, fake_id("remote/img"));
        assert!(rx.try_recv().is_ok(), "progress was sent");
        let err = h.pull(&"no/img".parse().unwrap(), None).await.unwrap_err();
        assert!(
            err.to_string().contains("image no/img is not on this host"),
            "{err}"
        );
    }
}
