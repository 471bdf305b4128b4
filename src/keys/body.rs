//! The bodies of `PUT /keys` (geard's) and `DELETE /keys` (gear's), parsed into keys,
//! containers and repositories; a bad key or permission is refused with its position and
//! start, before anything is written.

use serde::{Deserialize, Serialize};

use super::repos::Access;
use super::{PublicKey, shorten};
use crate::id::{ContainerId, RepoId};

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

/// What a key grants: `{"Type": "container", "With": "ID"}`, or
/// `{"Type": "repository", "With": {"Id": "ID", "Write": true}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Permission {
    /// `container` (or geard's empty type, which meant the same), or `repository`.
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// The container id; for a repository, `{"Id": "ID", "Write": bool}` (or just its id,
    /// for read access).
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

/// Keys for containers and repositories, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGrant {
    /// The keys.
    pub keys: Vec<PublicKey>,
    /// The containers.
    pub containers: Vec<ContainerId>,
    /// The repositories, each with the access the keys get.
    pub repositories: Vec<RepoGrant>,
}

/// Access to one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoGrant {
    /// The repository.
    pub id: RepoId,
    /// Read, or write (push) too.
    pub access: Access,
}

/// Keys (or fingerprints) to revoke from containers and repositories, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRevoke {
    /// Fingerprints (`SHA256:...`) of the keys, including those given as whole keys.
    pub fingerprints: Vec<String>,
    /// The containers.
    pub containers: Vec<ContainerId>,
    /// The repositories.
    pub repositories: Vec<RepoId>,
}

/// The `With` of a repository permission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RepoWith {
    id: String,
    #[serde(default)]
    write: bool,
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
            permissions: permissions(
                &g.containers,
                g.repositories.iter().map(|r| (&r.id, r.access)),
            ),
        }
    }

    /// The body of `DELETE /keys` that revokes `r`.
    pub fn revoke(r: &KeyRevoke) -> KeysJson {
        KeysJson {
            keys: vec![],
            fingerprints: r.fingerprints.clone(),
            permissions: permissions(
                &r.containers,
                r.repositories.iter().map(|id| (id, Access::Read)),
            ),
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
        let (containers, repositories) = targets(&self.permissions)?;
        Ok(KeyGrant {
            keys,
            containers,
            repositories,
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
        let (containers, repositories) = targets(&self.permissions)?;
        Ok(KeyRevoke {
            fingerprints,
            containers,
            repositories: repositories.into_iter().map(|r| r.id).collect(),
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

fn permissions<'a>(
    containers: &[ContainerId],
    repositories: impl Iterator<Item = (&'a RepoId, Access)>,
) -> Vec<Permission> {
    let containers = containers.iter().map(|id| Permission {
        kind: "container".into(),
        with: serde_json::Value::String(id.to_string()),
    });
    let repositories = repositories.map(|(id, access)| Permission {
        kind: "repository".into(),
        with: serde_json::json!({"Id": id, "Write": access == Access::Write}),
    });
    containers.chain(repositories).collect()
}

/// The containers and repositories of the permissions, each once (a repository named
/// twice takes its last access).
fn targets(permissions: &[Permission]) -> Result<(Vec<ContainerId>, Vec<RepoGrant>), String> {
    if permissions.is_empty() {
        return Err("At least one permission must be specified.".into());
    }
    let (mut ids, mut repos) = (Vec::new(), Vec::<RepoGrant>::new());
    for (n, p) in permissions.iter().enumerate() {
        match p.kind.as_str() {
            "container" | "" => {
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
            "repository" => {
                let with: RepoWith = match &p.with {
                    serde_json::Value::String(id) => RepoWith {
                        id: id.clone(),
                        write: false,
                    },
                    other => serde_json::from_value(other.clone()).map_err(|e| {
                        format!(
                            "permission {}: a repository permission's With is {{\"Id\": \"ID\", \"Write\": true|false}}: {e}",
                            n + 1
                        )
                    })?,
                };
                let grant = RepoGrant {
                    id: with.id.parse().map_err(|e| format!("{e}"))?,
                    access: match with.write {
                        true => Access::Write,
                        false => Access::Read,
                    },
                };
                repos.retain(|r| r.id != grant.id);
                repos.push(grant);
            }
            other => return Err(format!("The permission type '{other}' is not recognized.")),
        }
    }
    Ok((ids, repos))
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

/// The answer of `PUT /keys` and `DELETE /keys`: per container and repository, the keys
/// added or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysChanged {
    /// One entry per container named.
    pub containers: Vec<KeysOf>,
    /// One entry per repository named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepoKeysOf>,
}

/// The fingerprints of keys added to (or removed from) one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoKeysOf {
    /// The repository.
    pub id: RepoId,
    /// The fingerprints.
    pub fingerprints: Vec<String>,
}

/// One key of a repository as `GET /keys?repository=ID` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoKeyInfo {
    /// The key.
    #[serde(flatten)]
    pub key: KeyInfo,
    /// Whether it may push.
    pub write: bool,
}

/// The answer of `GET /keys?repository=ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoKeysList {
    /// The repository.
    pub id: RepoId,
    /// Its keys.
    pub keys: Vec<RepoKeyInfo>,
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
