//! Kept versions and rollbacks against fake systemd and Docker.

use super::*;
use crate::container::host::{Fake, fake_host};
use crate::docker::fake::FakeDocker;

async fn host(dir: &std::path::Path) -> (Host<Fake>, ContainerId) {
    let docker = FakeDocker::default();
    for image in ["img:1", "img:2", "img:3"] {
        docker.images.lock().unwrap().insert(image.into());
    }
    (fake_host(dir, docker), "web-1".parse().unwrap())
}

fn req(image: &str) -> InstallRequest {
    serde_json::from_value(serde_json::json!({"Image": image, "Ports": [{"Internal": 8080}]}))
        .unwrap()
}

fn images(h: &Host<Fake>, id: &ContainerId) -> Vec<(u32, String)> {
    h.history(id)
        .unwrap()
        .versions
        .into_iter()
        .map(|v| (v.version, v.spec.image.to_string()))
        .collect()
}

#[tokio::test]
async fn every_new_spec_is_a_version_and_the_last_five_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (h, id) = host(dir.path()).await;
    h.install(&id, req("img:1"), None).await.unwrap();
    // The same spec again is no new version.
    h.install(&id, req("img:1"), None).await.unwrap();
    assert_eq!(images(&h, &id), [(1, "img:1".to_string())]);
    for image in ["img:2", "img:3", "img:1", "img:2", "img:3"] {
        h.install(&id, req(image), None).await.unwrap();
    }
    let kept = images(&h, &id);
    assert_eq!(kept.len(), KEPT);
    assert_eq!(kept[0].0, 2);
    assert_eq!(kept[4], (6, "img:3".to_string()));
    let v = &h.history(&id).unwrap().versions[4];
    assert_eq!(
        v.image_id.as_deref(),
        Some(crate::docker::fake::fake_id("img:3").as_str())
    );
    // A delete forgets them.
    h.delete(&id, false).await.unwrap();
    assert!(History::load(&h.paths, &id).unwrap().versions.is_empty());
}

#[tokio::test]
async fn a_rollback_installs_the_version_before_or_the_one_named_without_a_pull() {
    let dir = tempfile::tempdir().unwrap();
    let (h, id) = host(dir.path()).await;
    let first = h.install(&id, req("img:1"), None).await.unwrap();
    h.install(&id, req("img:2"), None).await.unwrap();
    let back = h.rollback(&id, None).await.unwrap();
    assert_eq!(h.spec(&id).unwrap().image.as_str(), "img:1");
    // The same host port: its reservation is asked for again.
    assert_eq!(back.ports, first.ports);
    assert!(
        !h.docker
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("pull"))
    );
    // The rollback is a version of its own; --to names any kept one.
    assert_eq!(images(&h, &id).last().unwrap(), &(3, "img:1".to_string()));
    h.rollback(&id, Some(2)).await.unwrap();
    assert_eq!(h.spec(&id).unwrap().image.as_str(), "img:2");
    let err = h.rollback(&id, Some(9)).await.unwrap_err();
    assert!(
        matches!(err, Error::Rollback(RollbackError::NoSuchVersion { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_rollback_needs_an_earlier_version_and_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let (h, id) = host(dir.path()).await;
    h.install(&id, req("img:1"), None).await.unwrap();
    let err = h.rollback(&id, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Rollback(RollbackError::NoEarlier(_))),
        "{err}"
    );
    h.install(&id, req("img:2"), None).await.unwrap();
    h.docker.images.lock().unwrap().remove("img:1");
    let err = h.rollback(&id, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Rollback(RollbackError::ImageGone { .. })),
        "{err}"
    );
    assert_eq!(
        h.spec(&id).unwrap().image.as_str(),
        "img:2",
        "nothing changed"
    );
}

#[tokio::test]
async fn prune_keeps_the_images_of_kept_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (h, id) = host(dir.path()).await;
    h.install(&id, req("img:1"), None).await.unwrap();
    h.install(&id, req("img:2"), None).await.unwrap();
    let list = h.images().await.unwrap();
    let users = |tag: &str| {
        list.images
            .iter()
            .find(|i| i.tags.iter().any(|t| t == tag))
            .map(|i| i.used_by.clone())
    };
    assert_eq!(users("img:1"), Some(vec!["web-1 (version 1)".to_string()]));
    assert_eq!(users("img:2"), Some(vec!["web-1".to_string()]));
}
