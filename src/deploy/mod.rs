//! Deployments: geard's deployment file (containers with a count, ports, links,
//! environment), its placement over hosts, and the instances file that records where each
//! instance went.
//!
//! - [`plan`]: where every instance goes, with which ports and links (pure);
//! - [`observe`]: what the hosts have now;
//! - [`apply`]: the executor: observe, plan, then change only what differs, reporting
//!   [`event::Event`]s;
//! - [`agents`]: the seam to the agents ([`agents::Agents`]), over HTTP in `gear`.

pub mod agents;
pub mod apply;
pub mod event;
#[cfg(test)]
mod fake;
pub mod observe;
pub mod plan;

use serde::{Deserialize, Serialize};

use crate::container::ports::PortNumber;

/// Why a deployment file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDeployment {
    /// The JSON does not have the deployment's shape.
    #[error("not a deployment: {0}")]
    Json(String),
    /// Two containers have the same name.
    #[error("container name '{0}' is used twice")]
    DuplicateName(String),
    /// A generated instance id is not a valid container id.
    #[error(
        "instance id '{0}' is not a valid container id (4 to 24 of A-Z a-z 0-9 _ . -): shorten the name or IdPrefix"
    )]
    InstanceId(String),
    /// A link names a container that is not in the file.
    #[error("container '{from}' links to '{to}', which is not in the deployment")]
    LinkTarget {
        /// The linking container.
        from: String,
        /// The missing target.
        to: String,
    },
    /// A link's port is not a public port of its target.
    #[error("container '{from}' links to port {port} of '{to}', which '{to}' does not publish")]
    LinkPort {
        /// The linking container.
        from: String,
        /// The target.
        to: String,
        /// The port.
        port: u16,
    },
    /// A link's target publishes nothing.
    #[error("container '{from}' links to '{to}', which publishes no port")]
    NoPorts {
        /// The linking container.
        from: String,
        /// The target.
        to: String,
    },
    /// An affinity that names no deploy host.
    #[error(
        "container '{name}' has affinity '{affinity}', which is neither 'distribute' nor one of the hosts"
    )]
    Affinity {
        /// The container.
        name: String,
        /// Its affinity.
        affinity: String,
    },
    /// `localhost` among several hosts: other hosts could not reach it by that name.
    #[error(
        "deploying over several hosts, name this host by an address the others reach, not 'localhost'"
    )]
    LocalhostAmongMany,
    /// A field of a container is not valid (its image, an environment variable).
    #[error("container '{name}': {reason}")]
    Field {
        /// The container.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A link target address ran out of room.
    #[error("no free local address is left for links to '{0}'")]
    AddressesExhausted(String),
}

/// A port pair in a deployment (`{"Internal": 8080, "External": 0}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct PortPair {
    /// The container's port.
    pub internal: PortNumber,
    /// A host port (0 or absent: any).
    #[serde(default)]
    pub external: u16,
}

/// A link from one container (all its instances) to another (all its instances).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct Link {
    /// The target container's name (may be the container itself).
    pub to: String,
    /// Use 192.168.1.x addresses instead of 127.0.0.x (for software that refuses loopback
    /// peers, e.g. replica sets).
    #[serde(
        default,
        rename(deserialize = "nonlocal"),
        skip_serializing_if = "is_false"
    )]
    pub non_local: bool,
    /// Keep the target's port number and vary the address per instance (else vary the port).
    #[serde(
        default,
        rename(deserialize = "matchport"),
        skip_serializing_if = "is_false"
    )]
    pub match_port: bool,
    /// Link only these target ports (default: all its public ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortNumber>,
    /// Target port → the local port to use for it.
    #[serde(
        default,
        rename(deserialize = "aliasports"),
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alias_ports: Vec<PortPair>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An environment variable (`{"Name": "A", "Value": "B"}`), validated when planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct EnvVar {
    /// The name.
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// One kind of container and how many of it to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct ContainerDef {
    /// The name; instances are `<IdPrefix><Name>-<n>`.
    pub name: String,
    /// The image.
    pub image: String,
    /// Ports to publish.
    #[serde(
        default,
        rename(deserialize = "publicports"),
        skip_serializing_if = "Vec::is_empty"
    )]
    pub public_ports: Vec<PortPair>,
    /// Links to other containers (or itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvVar>,
    /// How many instances.
    #[serde(default = "one")]
    pub count: u32,
    /// `distribute` (default: spread over the hosts) or one host to put them all on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
}

fn one() -> u32 {
    1
}

/// The address a linking container dials for one port of one target instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct Target {
    /// The local address.
    pub host: std::net::Ipv4Addr,
    /// The local port.
    pub port: PortNumber,
}

/// A published port of an instance, with the local address others link to it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct InstancePort {
    /// The container's port.
    pub internal: PortNumber,
    /// The host port it is published on.
    #[serde(default)]
    pub external: u16,
    /// The address linking containers dial for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// One deployed instance (the instances file's record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct Instance {
    /// The container id.
    pub id: String,
    /// Its image.
    pub image: String,
    /// The container (definition) it is an instance of.
    pub from: String,
    /// The host it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// Its published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<InstancePort>,
}

/// A deployment file, and after a deploy, its instances file (the same plus `Instances`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "PascalCase", deserialize = "lowercase"))]
pub struct Deployment {
    /// The kinds of container.
    #[serde(default)]
    pub containers: Vec<ContainerDef>,
    /// Where each instance went (written by deploy; fed back to redeploy).
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// Put before every instance id.
    #[serde(default, rename(deserialize = "idprefix"))]
    pub id_prefix: String,
    /// geard's random ids; refused, since random ids cannot be redeployed.
    #[serde(default, rename(deserialize = "randomizeids"))]
    pub randomize_ids: bool,
}

impl Deployment {
    /// Parses a deployment or instances file. Field names are matched without regard to
    /// case, as geard did (its fixtures use both `Containers` and `containers`).
    pub fn parse(text: &str) -> Result<Deployment, InvalidDeployment> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| InvalidDeployment::Json(e.to_string()))?;
        let d: Deployment = serde_json::from_value(lowercase_keys(value))
            .map_err(|e| InvalidDeployment::Json(e.to_string()))?;
        if d.randomize_ids {
            return Err(InvalidDeployment::Json(
                "RandomizeIds is not supported: instances need stable ids to be redeployed".into(),
            ));
        }
        let mut names: Vec<&str> = d.containers.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(InvalidDeployment::DuplicateName(w[0].to_string()));
        }
        Ok(d)
    }

    /// The instances file text: two-space indented JSON, geard's field names.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Lowercases every object key, except inside environment variables' values.
fn lowercase_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(lowercase_keys).collect())
        }
        other => other,
    }
}
