//! The Engine API calls about images: list, inspect, the images containers use, remove.

use anyhow::{Context as _, anyhow};
use http_body_util::BodyExt as _;
use hyper::{Method, StatusCode};

use super::DockerApi;

/// One image as `GET /images/json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerImage {
    /// Its id, `sha256:...`.
    pub id: String,
    /// Its tags (`name:tag`); none for a dangling image.
    pub tags: Vec<String>,
    /// Its size on disk, in bytes (shared layers counted in each image).
    pub bytes: u64,
    /// When it was built, in seconds since the epoch.
    pub created: i64,
}

/// Reads a JSON answer, or fails with Docker's message.
async fn json(api: &DockerApi, method: Method, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = api.call(method, path).await?;
    if !status.is_success() {
        return Err(anyhow!(
            "docker API {path}: {} ({status})",
            DockerApi::message(body).await
        ));
    }
    let bytes = body.collect().await?.to_bytes();
    serde_json::from_slice(&bytes).with_context(|| format!("parsing docker API {path}"))
}

pub(super) async fn list(api: &DockerApi) -> anyhow::Result<Vec<DockerImage>> {
    let doc = json(api, Method::GET, "/images/json").await?;
    Ok(doc
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| DockerImage {
            id: i["Id"].as_str().unwrap_or_default().to_string(),
            tags: i["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                // Docker lists a dangling image's tag as `<none>:<none>`.
                .filter(|t| *t != "<none>:<none>")
                .map(str::to_string)
                .collect(),
            bytes: i["Size"].as_u64().unwrap_or(0),
            created: i["Created"].as_i64().unwrap_or(0),
        })
        .collect())
}

pub(super) async fn id_of(api: &DockerApi, reference: &str) -> anyhow::Result<Option<String>> {
    let (status, body) = api
        .call(Method::GET, &format!("/images/{reference}/json"))
        .await?;
    match status {
        StatusCode::OK => {
            let bytes = body.collect().await?.to_bytes();
            let doc: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing docker inspect {reference}"))?;
            Ok(doc["Id"].as_str().map(str::to_string))
        }
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(anyhow!(
            "inspecting image {reference}: {} ({s})",
            DockerApi::message(body).await
        )),
    }
}

pub(super) async fn container_images(api: &DockerApi) -> anyhow::Result<Vec<(String, String)>> {
    let doc = json(api, Method::GET, "/containers/json?all=1").await?;
    Ok(doc
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["Names"][0].as_str().unwrap_or_default();
            (
                name.trim_start_matches('/').to_string(),
                c["ImageID"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

pub(super) async fn remove(api: &DockerApi, id: &str) -> anyhow::Result<bool> {
    // The caller checked that no container uses it. `force` removes an image with several
    // tags in one call (without it Docker refuses those with 409); Docker still refuses an
    // image a running container uses.
    let (status, body) = api
        .call(Method::DELETE, &format!("/images/{id}?force=1"))
        .await?;
    match status {
        s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(true),
        StatusCode::CONFLICT => Ok(false),
        s => Err(anyhow!(
            "removing image {id}: {} ({s})",
            DockerApi::message(body).await
        )),
    }
}
