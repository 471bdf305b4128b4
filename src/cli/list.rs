//! `gear list-units HOST...`: the containers of one or many agents.

use std::io::Write;

use serde::Serialize;

use super::{Remote, fan_out, table};
use crate::api::Request;
use crate::api::reply::Stopped;
use crate::container::{ContainerList, ContainerState};
use crate::locator::HostAddr;

/// One host's part of `list-units --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostListing {
    host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    containers: Option<Vec<ContainerState>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Lists the containers of every host; prints a table (or JSON) on `out` and one line per
/// unreachable host on `err`. Returns whether every host answered.
pub async fn list_units(
    remote: &Remote,
    hosts: &[HostAddr],
    all: bool,
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let req = Request::ListContainers { all };
    let results = fan_out(hosts, |host| {
        let client = remote.client(&host);
        let req = req.clone();
        async move { client.json::<ContainerList>(&req).await }
    })
    .await;
    let ok = results.iter().all(|(_, r)| r.is_ok());
    if json {
        let listing: Vec<HostListing> = results
            .into_iter()
            .map(|(host, r)| match r {
                Ok(list) => HostListing {
                    host: host.to_string(),
                    containers: Some(list.containers),
                    error: None,
                },
                Err(e) => HostListing {
                    host: host.to_string(),
                    containers: None,
                    error: Some(format!("{e:#}")),
                },
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &listing)?;
        writeln!(out)?;
        return Ok(ok);
    }
    let mut rows = Vec::new();
    for (host, result) in results {
        match result {
            Ok(list) => rows.extend(list.containers.into_iter().map(|c| {
                vec![
                    host.to_string(),
                    c.id.to_string(),
                    c.active_state,
                    c.sub_state,
                    c.load_state,
                    c.job_type.unwrap_or_default(),
                ]
            })),
            Err(e) => writeln!(err, "error: {e:#}")?,
        }
    }
    write!(
        out,
        "{}",
        table::render(&["HOST", "ID", "ACTIVE", "SUB", "LOAD", "JOB"], &rows)
    )?;
    Ok(ok)
}

/// Stops every container on every host; one line per host. Returns whether all succeeded.
pub async fn purge(
    remote: &Remote,
    hosts: &[HostAddr],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = fan_out(hosts, |host| {
        let client = remote.client(&host);
        async move { client.json::<Stopped>(&Request::StopAll).await }
    })
    .await;
    let mut ok = true;
    for (host, result) in results {
        match result {
            Ok(v) => writeln!(out, "{host}: stopped {} containers", v.stopped.len())?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {e:#}")?;
            }
        }
    }
    Ok(ok)
}
