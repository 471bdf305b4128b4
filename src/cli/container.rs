//! `gear install|start|stop|restart|delete|status LOCATOR...`: one request per container,
//! all in parallel, one line of result per container.

use std::io::Write;

use futures_util::future::join_all;

use std::collections::BTreeMap;

use super::{Remote, fan_out};
use crate::api::Request;
use crate::api::client::Answer;
use crate::api::request::ContainerLinks;
use crate::container::ports::PortPair;
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
            // Progress goes straight to stderr as it comes: it is for the person watching.
            client
                .install_with_progress(&req, |p| eprintln!("{loc}: {p}"))
                .await
        }
    }))
    .await;
    let mut ok = true;
    for (loc, result) in locators.iter().zip(results) {
        match result {
            Ok(installed) => {
                let verb = match installed.started {
                    true => "installed and started",
                    false => "installed",
                };
                match port_list(&installed.ports) {
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

/// "8080->4000, 53->4001".
pub fn port_list(ports: &[PortPair]) -> String {
    let pairs: Vec<String> = ports
        .iter()
        .map(|p| format!("{}->{}", p.internal, p.external))
        .collect();
    pairs.join(", ")
}

/// Sends `make(locator)` for every locator at once and decodes each answer as `T`; prints
/// `describe(locator, answer)` for each success, as [`each`] does.
pub async fn each_json<T: serde::de::DeserializeOwned>(
    remote: &Remote,
    locators: &[Locator],
    make: impl Fn(&Locator) -> Request,
    describe: impl Fn(&Locator, &T) -> String,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let describe = |l: &Locator, a: &Answer| match serde_json::from_slice::<T>(&a.body) {
        Ok(v) => describe(l, &v),
        Err(e) => format!("{l}: the agent's answer is not the expected JSON: {e}"),
    };
    each(remote, locators, make, describe, out, err).await
}
