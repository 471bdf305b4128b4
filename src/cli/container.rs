//! `gear install|start|stop|restart|delete|status LOCATOR...`: one request per container,
//! all in parallel, one line of result per container.

use std::io::Write;

use futures_util::future::join_all;

use std::collections::BTreeMap;

use super::{Remote, fan_out};
use crate::api::Request;
use crate::api::client::Answer;
use crate::api::request::ContainerLinks;
use crate::container::spec::InstallRequest;
use crate::id::ContainerId;
use crate::links::NetworkLink;
use crate::locator::{HostAddr, Locator};

/// Sends `make(locator)` for every locator at once; prints `describe(locator, answer)` on
/// `out` for each success and one `error:` line on `err` for each failure, in the order
/// given. Returns whether all succeeded.
pub async fn each(
    remote: &Remote,
    locators: &[Locator],
    make: impl Fn(&Locator) -> Request,
    describe: impl Fn(&Locator, &Answer) -> String,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = join_all(locators.iter().map(|loc| {
        let client = remote.client(&loc.host);
        let req = make(loc);
        async move { client.send(&req).await }
    }))
    .await;
    let mut ok = true;
    for (loc, result) in locators.iter().zip(results) {
        match result {
            Ok(answer) => writeln!(out, "{}", describe(loc, &answer))?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {loc}: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

/// Installs on every locator at once, showing pull progress on `err` as it comes; prints
/// one result line per locator. Returns whether all succeeded.
pub async fn install_each(
    remote: &Remote,
    locators: &[Locator],
    body: &InstallRequest,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let results = join_all(locators.iter().map(|loc| {
        let client = remote.client(&loc.host);
        let req = Request::Install {
            id: loc.id.clone(),
            body: body.clone(),
            progress: true,
        };
        async move {
            // Progress goes straight to stderr: it is for the person watching.
            client.json_lines(&req, |p| eprintln!("{loc}: {p}")).await
        }
    }))
    .await;
    let mut ok = true;
    for (loc, result) in locators.iter().zip(results) {
        match result {
            Ok(value) => {
                let installed = &value["Installed"];
                let verb = if installed["Started"] == true {
                    "installed and started"
                } else {
                    "installed"
                };
                match port_list(&installed["Ports"]) {
                    p if p.is_empty() => writeln!(out, "{loc}: {verb}")?,
                    p => writeln!(out, "{loc}: {verb}, ports {p}")?,
                }
            }
            Err(e) => {
                ok = false;
                writeln!(err, "error: {loc}: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

/// Sets `links` on every container, one request per host (all at once); one line per host.
pub async fn link(
    remote: &Remote,
    locators: &[Locator],
    links: &[NetworkLink],
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut by_host: BTreeMap<HostAddr, Vec<ContainerId>> = BTreeMap::new();
    for loc in locators {
        by_host
            .entry(loc.host.clone())
            .or_default()
            .push(loc.id.clone());
    }
    let hosts: Vec<HostAddr> = by_host.keys().cloned().collect();
    let results = fan_out(&hosts, |host| {
        let client = remote.client(&host);
        let req = Request::SetLinks(
            by_host[&host]
                .iter()
                .map(|id| ContainerLinks {
                    id: id.clone(),
                    network_links: links.to_vec(),
                })
                .collect(),
        );
        async move { client.send(&req).await }
    })
    .await;
    let mut ok = true;
    for (host, result) in results {
        let ids: Vec<String> = by_host[&host].iter().map(ToString::to_string).collect();
        match result {
            Ok(_) => writeln!(out, "{host}: links set on {}", ids.join(", "))?,
            Err(e) => {
                ok = false;
                writeln!(err, "error: {e:#}")?;
            }
        }
    }
    Ok(ok)
}

/// A field of a JSON answer as text (empty when absent).
pub fn field(answer: &Answer, name: &str) -> String {
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v.get(name).and_then(|f| f.as_str().map(str::to_string)))
        .unwrap_or_default()
}

/// "8080->4000, 53->4001" from a `Ports` array.
pub fn port_list(ports: &serde_json::Value) -> String {
    let pairs: Vec<String> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}->{}", p["Internal"], p["External"]))
        .collect();
    pairs.join(", ")
}
