//! Keys: parsing as ssh-keygen reads them, fingerprints as it prints them, the store, and
//! what gear-keys prints for sshd.

use super::body::KeysJson;
use super::*;
use crate::accounts::ContainerUser;
use crate::container::spec::ContainerSpec;
use crate::id::ContainerId;
use crate::paths::Paths;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPduUq53I4BsVcweySlwHvi28un2tEbulTTOc5bL851 user@laptop";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDPkcf3alUSkect4+s3mKjva1S7D292SMgk9YOoceAMp3LPKbFQcVkcg2rQfqs4ulAHafbSus3kdufQ9nbAJtbW/0AJP9qldauwzwjJS7qk4YaZYuho7CMzKOhCsdlkKF+XfMI/Vk7HMqK14tYnrAK0YZu02AVP9kOWfpdTKUXa4dDcZVECWGqzItVKC9Rir2WKhlj7PwIfmZXRNR43Thj4s3v7tRCeO7Yt4TATZDpVDd4rcBfRDQQsasbghwXj1fahzGN6T62A38u7FPoWxPHmn+gicptgDAn4nW8OCSm/hPgTUCodRcaxSESy6Y6x6lujoOX7CZEMGE10K2kzrgZj rsa@x";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKsxEvtjFMsPYrQLpkmaWm4spaTm8bBzG8HNL18grSMuFaq7Ov8cUyR4AgTygyNQFr8gRoG+S8scrWNm03X1bTY=";

#[test]
fn fingerprints_are_ssh_keygens() {
    // From `ssh-keygen -lf` on the same keys.
    for (line, fp, kind, comment) in [
        (
            ED25519,
            "SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg",
            "ssh-ed25519",
            "user@laptop",
        ),
        (
            RSA,
            "SHA256:uknuMDlqhKjpE1Ix6W70deVQ6+PAe8iyZX9ZmVBqmD0",
            "ssh-rsa",
            "rsa@x",
        ),
        (
            ECDSA,
            "SHA256:ULqQX4O8YfK/j6/XopEAhDmkERlurExGghIu9+YW9Gc",
            "ecdsa-sha2-nistp256",
            "",
        ),
    ] {
        let key = PublicKey::parse(line).unwrap();
        assert_eq!(key.fingerprint(), fp);
        assert_eq!(key.key_type(), kind);
        assert_eq!(key.comment(), comment);
        assert_eq!(PublicKey::parse(&key.to_string()).unwrap(), key);
    }
}

#[test]
fn bad_keys_and_options_are_refused() {
    let data = ED25519.split(' ').nth(1).unwrap();
    for (line, want) in [
        ("", InvalidKey::Empty),
        (
            &format!("command=\"/bin/sh\" {ED25519}") as &str,
            InvalidKey::Type("command=\"/bin/sh\"".into()),
        ),
        (
            &format!("no-pty {ED25519}"),
            InvalidKey::Type("no-pty".into()),
        ),
        (
            "ssh-dss AAAAB3NzaC1kc3M= x",
            InvalidKey::Type("ssh-dss".into()),
        ),
        (
            "ssh-ed25519 AAAA!!notbase64",
            InvalidKey::Data("ssh-ed25519".into()),
        ),
        ("ssh-ed25519", InvalidKey::Data("ssh-ed25519".into())),
        (
            &format!("ssh-rsa {data}"),
            InvalidKey::Data("ssh-rsa".into()),
        ),
        (
            &format!("{ED25519}\nssh-ed25519 {data}"),
            InvalidKey::Multiline,
        ),
    ] {
        assert_eq!(PublicKey::parse(line), Err(want), "{line:?}");
    }
    // Control characters in a comment are dropped, never printed to sshd.
    let k = PublicKey::parse(&format!("ssh-ed25519 {data} a\u{1b}[31mb")).unwrap();
    assert_eq!(k.comment(), "a[31mb");
}

#[test]
fn geards_body_names_the_bad_key_and_the_permission() {
    let body = |keys: &str, perms: &str| -> Result<_, String> {
        let json = format!(r#"{{"Keys":[{keys}],"Permissions":[{perms}]}}"#);
        serde_json::from_str::<KeysJson>(&json)
            .unwrap()
            .into_grant()
    };
    let good = format!(r#"{{"Type":"authorized_keys","Value":"{ED25519}"}}"#);
    let grant = body(&good, r#"{"Type":"container","With":"web-1"}"#).unwrap();
    assert_eq!(
        grant.containers,
        vec!["web-1".parse::<ContainerId>().unwrap()]
    );
    let bad = r#"{"Type":"authorized_keys","Value":"ssh-ed25519 AAAAnope x"}"#;
    let err = body(
        &format!("{good},{bad}"),
        r#"{"Type":"container","With":"web-1"}"#,
    )
    .unwrap_err();
    assert!(
        err.starts_with("key 2 ('ssh-ed25519 AAAAnope x'): "),
        "{err}"
    );
    let err = body(&good, r#"{"Type":"repository","With":{"Id":"r"}}"#).unwrap_err();
    assert!(err.contains("repository identifier 'r'"), "{err}");
    assert!(body(&good, "").unwrap_err().contains("permission"));
    assert!(
        body("", r#"{"Type":"container","With":"web-1"}"#)
            .unwrap_err()
            .contains("keys")
    );
    // Revoking by fingerprint, with or without its prefix; anything else is refused.
    let revoke = |fps: &str| {
        let json = format!(r#"{{"Fingerprints":[{fps}],"Permissions":[{{"With":"web-1"}}]}}"#);
        serde_json::from_str::<KeysJson>(&json)
            .unwrap()
            .into_revoke()
    };
    let r = revoke(r#""tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg""#).unwrap();
    assert_eq!(
        r.fingerprints,
        ["SHA256:tT/qC4QfcVuGVun3hENAammMTnQxZA91Xtu0ZXMaGTg"]
    );
    assert!(revoke(r#""SHA256:../../etc""#).is_err());
}

#[test]
fn geards_repository_permissions() {
    use super::body::RepoGrant;
    use super::repos::Access;
    let grant = |perms: &str| -> Result<_, String> {
        let json = format!(
            r#"{{"Keys":[{{"Type":"authorized_keys","Value":"{ED25519}"}}],"Permissions":[{perms}]}}"#
        );
        serde_json::from_str::<KeysJson>(&json)
            .unwrap()
            .into_grant()
    };
    let g = grant(
        r#"{"Type":"repository","With":{"Id":"app1","Write":true}},{"Type":"repository","With":{"Id":"app2"}},{"Type":"container","With":"web-1"},{"Type":"repository","With":"app3"}"#,
    )
    .unwrap();
    let access = |id: &str, access| RepoGrant {
        id: id.parse().unwrap(),
        access,
    };
    assert_eq!(
        g.repositories,
        vec![
            access("app1", Access::Write),
            access("app2", Access::Read),
            access("app3", Access::Read)
        ]
    );
    assert_eq!(g.containers.len(), 1);
    // The body gear sends is geard's, and reads back the same.
    let sent = serde_json::to_string(&KeysJson::grant(&g)).unwrap();
    assert!(
        sent.contains(r#"{"Type":"repository","With":{"Id":"app1","Write":true}}"#),
        "{sent}"
    );
    let back = serde_json::from_str::<KeysJson>(&sent)
        .unwrap()
        .into_grant()
        .unwrap();
    assert_eq!(back, g);
    // Named twice: the last access counts.
    let g = grant(
        r#"{"Type":"repository","With":{"Id":"app1","Write":true}},{"Type":"repository","With":{"Id":"app1","Write":false}}"#,
    )
    .unwrap();
    assert_eq!(g.repositories, vec![access("app1", Access::Read)]);
    for (bad, want) in [
        (
            r#"{"Type":"repository","With":{"Id":"App.1"}}"#,
            "lowercase",
        ),
        (
            r#"{"Type":"repository","With":{"Id":"app1","Admin":true}}"#,
            "Admin",
        ),
        (r#"{"Type":"repository","With":{"Write":true}}"#, "Id"),
        (r#"{"Type":"repository","With":7}"#, "With is"),
        (r#"{"Type":"mirror","With":"app1"}"#, "not recognized"),
    ] {
        let err = grant(bad).unwrap_err();
        assert!(err.contains(want), "{bad}: {err}");
    }
}

#[test]
fn gear_keys_prints_repository_keys_forced_to_the_git_shell() {
    use super::repos::{self, Access};
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let app: crate::id::RepoId = "app1".parse().unwrap();
    std::fs::create_dir_all(paths.repository(&app)).unwrap();
    let w = PublicKey::parse(ED25519).unwrap();
    let r = PublicKey::parse(RSA).unwrap();
    repos::add(&paths, &app, std::slice::from_ref(&w), Access::Write).unwrap();
    repos::add(&paths, &app, std::slice::from_ref(&r), Access::Read).unwrap();
    let (out, err) = gear_keys(&paths, "git-app1");
    assert_eq!(err, "");
    assert_eq!(
        out,
        format!(
            "command=\"/usr/libexec/gear/gear-git-shell write\",restrict {ED25519}\ncommand=\"/usr/libexec/gear/gear-git-shell read\",restrict {RSA}\n"
        )
    );
    // Adding again changes the access in place; revoking removes it.
    repos::add(&paths, &app, std::slice::from_ref(&w), Access::Read).unwrap();
    assert!(
        gear_keys(&paths, "git-app1")
            .0
            .starts_with("command=\"/usr/libexec/gear/gear-git-shell read\",restrict ssh-ed25519")
    );
    assert_eq!(
        repos::remove(&paths, &app, &[r.fingerprint().into()]).unwrap(),
        [r.fingerprint()]
    );
    assert_eq!(gear_keys(&paths, "git-app1").0.lines().count(), 1);
    // A damaged line costs its key only; no repository, no keys; other logins get nothing.
    let file = paths.repository_keys(&app);
    std::fs::write(&file, format!("admin {RSA}\nwrite {ED25519}\n")).unwrap();
    let (out, err) = gear_keys(&paths, "git-app1");
    assert_eq!(out.lines().count(), 1);
    assert!(err.contains("line 1"), "{err}");
    for user in ["git-app2", "git-App1", "git-", "gitapp1"] {
        let (out, err) = gear_keys(&paths, user);
        assert_eq!(out, "", "{user}");
        assert!(!err.is_empty(), "{user}");
    }
    repos::remove_all(&paths, &app).unwrap();
    assert!(!file.exists());
}

fn isolated(paths: &Paths, id: &str, ports: &[(u16, u16)]) -> ContainerId {
    let id: ContainerId = id.parse().unwrap();
    let spec = serde_json::json!({
        "Id": id, "Image": "img",
        "Ports": ports.iter().map(|(i, e)| serde_json::json!({"Internal": i, "External": e})).collect::<Vec<_>>(),
    });
    let mut spec: ContainerSpec = serde_json::from_value(spec).unwrap();
    spec.user = Some(ContainerUser {
        name: format!("ctr-{id}"),
        uid: 900,
        gid: 900,
    });
    std::fs::create_dir_all(paths.specs_dir()).unwrap();
    spec.store(paths).unwrap();
    id
}

fn gear_keys(paths: &Paths, user: &str) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    authorized::print_for(paths, user, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn gear_keys_prints_restricted_keys_of_the_login_only() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let web = isolated(&paths, "web-1", &[(8080, 4001)]);
    let other = isolated(&paths, "other", &[]);
    let keys: Vec<PublicKey> = [ED25519, RSA]
        .iter()
        .map(|l| PublicKey::parse(l).unwrap())
        .collect();
    store::add(&paths, &web, &keys).unwrap();
    store::add(&paths, &other, &keys[1..]).unwrap();

    let (out, err) = gear_keys(&paths, "ctr-web-1");
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let opts = "command=\"/usr/libexec/gear/gear-enter\",restrict,pty,port-forwarding,permitopen=\"127.0.0.1:4001\",permitopen=\"localhost:4001\"";
    assert!(
        lines.contains(&format!("{opts} {ED25519}").as_str()),
        "{out}"
    );
    // No ports, no forwarding.
    let (out, _) = gear_keys(&paths, "ctr-other");
    assert_eq!(
        out,
        format!("command=\"/usr/libexec/gear/gear-enter\",restrict,pty {RSA}\n")
    );
    // Unknown and non-gear users: nothing on stdout, a reason on stderr.
    for user in ["root", "ctr-nope", "ctr-../../x", "git-repo"] {
        let (out, err) = gear_keys(&paths, user);
        assert_eq!(out, "", "{user}");
        assert!(!err.is_empty(), "{user}");
    }
}

#[test]
fn a_broken_key_line_costs_only_that_key() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let web = isolated(&paths, "web-1", &[]);
    let keys: Vec<PublicKey> = [ED25519, RSA, ECDSA]
        .iter()
        .map(|l| PublicKey::parse(l).unwrap())
        .collect();
    store::add(&paths, &web, &keys).unwrap();
    let file = paths.keys_of(&web);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, format!("{ED25519}\n{RSA}\n{ECDSA}\n"));
    let data = ED25519.split(' ').nth(1).unwrap();
    std::fs::write(&file, text.replace(data, "AAAAbroken")).unwrap();
    let (out, err) = gear_keys(&paths, "ctr-web-1");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains(RSA) && out.contains(ECDSA) && !out.contains(ED25519));
    assert!(err.contains("line 1"), "{err}");
    // Adding a key again replaces it in place (a new comment), without duplicates.
    let renamed = PublicKey::parse(&format!("{} renamed", keys[1].key_part())).unwrap();
    store::add(&paths, &web, &[renamed]).unwrap();
    let listed = store::read(&paths, &web, &mut Vec::new());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].comment(), "renamed");

    let removed = store::remove(
        &paths,
        &web,
        &[keys[1].fingerprint().into(), "SHA256:gone".into()],
    )
    .unwrap();
    assert_eq!(removed, [keys[1].fingerprint()]);
    let (out, _) = gear_keys(&paths, "ctr-web-1");
    assert_eq!(out.lines().count(), 1);
    store::remove_all(&paths, &web).unwrap();
    assert!(!paths.keys_of(&web).exists());
}

#[test]
fn a_container_that_is_not_isolated_has_no_login() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let id = isolated(&paths, "web-1", &[]);
    let mut spec = ContainerSpec::load(&paths, &id).unwrap();
    store::add(&paths, &id, &[PublicKey::parse(ED25519).unwrap()]).unwrap();
    spec.user = None;
    spec.store(&paths).unwrap();
    let (out, err) = gear_keys(&paths, "ctr-web-1");
    assert_eq!(out, "");
    assert!(err.contains("not isolated"), "{err}");
}
