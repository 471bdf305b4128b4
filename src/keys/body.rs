//! The bodies of `PUT /keys` (geard's) and `DELETE /keys` (gear's), parsed into keys and
//! containers; a bad key is refused with its position and start, before anything is written.

use serde::{Deserialize, Serialize};

use super::{PublicKey, shorten};
use crate::id::ContainerId;

/// One key as geard's clients send it: `{"Type": "authorized_keys", "Value": "ssh-... ..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeyValue {
    /// Always `authorized_keys` (geard's only type).
    #[serde(rename = "Type")]
    pub kind: String,
    /// One key line, `TYPE BASE64 [COMMENT]`.
    pub value: String,
}

/// What a key grants: `{"Type": "container", "With": "ID"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Permission {
    /// `container` (or geard's empty type, which meant the same).
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// The container id (geard's `repository` permissions took an object here).
    pub with: serde_json::Value,
}

/// The JSON of `PUT /keys` and `DELETE /keys`. `Fingerprints` is gear's: a key can be
/// revoked by its fingerprint alone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeysJson {
    /// The keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyValue>,
    /// Fingerprints (`SHA256:...`), for `DELETE /keys` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// The containers the keys are for.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// Keys for containers, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGrant {
    /// The keys.
    pub keys: Vec<PublicKey>,
    /// The containers.
    pub containers: Vec<ContainerId>,
}

/// Keys (or fingerprints) to revoke from containers, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRevoke {
    /// Fingerprints (`SHA256:...`) of the keys, including those given as whole keys.
    pub fingerprints: Vec<String>,
    /// The containers.
    pub containers: Vec<ContainerId>,
}

impl KeysJson {
    /// The body of `PUT /keys` that grants `keys` on `containers`.
    pub fn grant(g: &KeyGrant) -> KeysJson {
        KeysJson {
            keys: g
                .keys
                .iter()
                .map(|k| KeyValue {
                    kind: "authorized_keys".into(),
                    value: k.to_string(),
                })
                .collect(),
            fingerprints: vec![],
            permissions: permissions(&g.containers),
        }
    }

    /// The body of `DELETE /keys` that revokes `r`.
    pub fn revoke(r: &KeyRevoke) -> KeysJson {
        KeysJson {
            keys: vec![],
            fingerprints: r.fingerprints.clone(),
            permissions: permissions(&r.containers),
        }
    }

    /// Validates a `PUT /keys` body: every key, every container.
    pub fn into_grant(self) -> Result<KeyGrant, String> {
        if !self.fingerprints.is_empty() {
            return Err("Fingerprints are for DELETE /keys; PUT /keys takes Keys".into());
        }
        let keys = self.parsed_keys()?;
        if keys.is_empty() {
            return Err("One or more keys must be specified.".into());
        }
        Ok(KeyGrant {
            keys,
            containers: containers(&self.permissions)?,
        })
    }

    /// Validates a `DELETE /keys` body.
    pub fn into_revoke(self) -> Result<KeyRevoke, String> {
        let mut fingerprints: Vec<String> = self
            .parsed_keys()?
            .iter()
            .map(|k| k.fingerprint().to_string())
            .collect();
        for fp in self.fingerprints {
            let hash = fp.strip_prefix("SHA256:").unwrap_or(&fp);
            // 32 bytes of SHA-256 in unpadded base64 are 43 characters.
            let valid = hash.len() == 43
                && hash
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'));
            if !valid {
                return Err(format!(
                    "'{}' is not a SHA256 fingerprint as ssh-keygen -l prints it",
                    shorten(&fp)
                ));
            }
            fingerprints.push(format!("SHA256:{hash}"));
        }
        if fingerprints.is_empty() {
            return Err("name the keys to revoke in Keys or Fingerprints".into());
        }
        Ok(KeyRevoke {
            fingerprints,
            containers: containers(&self.permissions)?,
        })
    }

    fn parsed_keys(&self) -> Result<Vec<PublicKey>, String> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if k.kind != "authorized_keys" {
                    return Err(format!("The key type '{}' is not recognized.", k.kind));
                }
                if k.value.trim().is_empty() {
                    return Err("Value must be specified.".into());
                }
                PublicKey::parse(&k.value)
                    .map_err(|e| format!("key {} ('{}'): {e}", i + 1, shorten(k.value.trim())))
            })
            .collect()
    }
}

fn permissions(containers: &[ContainerId]) -> Vec<Permission> {
    containers
        .iter()
        .map(|id| Permission {
            kind: "container".into(),
            with: serde_json::Value::String(id.to_string()),
        })
        .collect()
}

fn containers(permissions: &[Permission]) -> Result<Vec<ContainerId>, String> {
    if permissions.is_empty() {
        return Err("At least one permission must be specified.".into());
    }
    let mut ids = Vec::new();
    for p in permissions {
        match p.kind.as_str() {
            "container" | "" => {}
            "repository" => {
                return Err("repository permissions are not supported by gear".into());
            }
            other => return Err(format!("The permission type '{other}' is not recognized.")),
        }
        let id: ContainerId = p
            .with
            .as_str()
            .ok_or("a container permission's With is the container id, a string")?
            .parse()
            .map_err(|e| format!("{e}"))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// One key as `GET /keys` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyInfo {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key type, e.g. `ssh-ed25519`.
    #[serde(rename = "Type")]
    pub key_type: String,
    /// The key's comment (empty when it has none).
    pub comment: String,
}

impl From<&PublicKey> for KeyInfo {
    fn from(k: &PublicKey) -> KeyInfo {
        KeyInfo {
            fingerprint: k.fingerprint().to_string(),
            key_type: k.key_type().to_string(),
            comment: k.comment().to_string(),
        }
    }
}

/// The answer of `GET /keys?container=ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysList {
    /// The container.
    pub id: ContainerId,
    /// Its keys, by fingerprint.
    pub keys: Vec<KeyInfo>,
}

/// The answer of `PUT /keys` and `DELETE /keys`: per container, the keys added or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysChanged {
    /// One entry per container named.
    pub containers: Vec<KeysOf>,
}

/// The fingerprints of keys added to (or removed from) one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysOf {
    /// The container.
    pub id: ContainerId,
    /// The fingerprints.
    pub fingerprints: Vec<String>,
}
