//! Tests of `environment`.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn value(assignment: &str) -> String {
    Environment::parse_assignment(assignment).unwrap().value
}

#[test]
fn renders_a_parsed_file_exactly() {
    let text = "\u{feff}# database\nDB_HOST=db.example\n\n  DB_PORT = 5432\nDB_USER=\"app\"\n\
                EMPTY=\nURL=http://x/?a=b&c=d\n";
    let err = Environment::parse(text).unwrap_err();
    assert_eq!(err.line, 4, "a space before '=' is in the name: {err}");
    let text = text.replace("DB_PORT = 5432", "DB_PORT= 5432");
    let env = Environment::parse(&text).unwrap();
    assert_eq!(
        env.render(),
        "DB_HOST=db.example\nDB_PORT=5432\nDB_USER=app\nEMPTY=\nURL=http://x/?a=b&c=d\n"
    );
    assert_eq!(Environment::new().render(), "");
}

#[test]
fn keeps_order_and_the_last_value_wins() {
    let mut env = Environment::parse("B=1\nA=2\nB=3\r\n").unwrap();
    assert_eq!(env.render(), "B=3\nA=2\n");
    env.merge(Environment::parse("C=4\nA=5").unwrap());
    assert_eq!(env.render(), "B=3\nA=5\nC=4\n");
    assert_eq!(
        (env.get("A"), env.get("Z"), env.len()),
        (Some("5"), None, 3)
    );
}

#[test]
fn unquotes_values_as_geard_did() {
    assert_eq!(value("A=B"), "B");
    assert_eq!(value("A=\"B\""), "B");
    assert_eq!(value("A='B'"), "B");
    assert_eq!(value("  A=B  "), "B");
    assert_eq!(value("A=\"'B'\""), "'B'");
    assert_eq!(value("A=\"'B  '\""), "'B  '");
    assert_eq!(value("A=\"B  \""), "B");
    assert_eq!(value("A='two words'"), "two words");
    assert_eq!(value("A=\"say \\\"hi\\\"\\tnow\""), "say \"hi\"\tnow");
    // Not one quoted string: kept as written.
    assert_eq!(value(r#"QUOTED=\"foo\""#), r#"\"foo\""#);
    assert_eq!(value(r#"A="x"y""#), r#""x"y""#);
    assert_eq!(value(r#"A="\q""#), r#""\q""#);
    assert_eq!(value("A='"), "'");
}

#[test]
fn rejects_hostile_variables() {
    let err = |s: &str| Environment::parse_assignment(s).unwrap_err();
    assert!(matches!(
        err("A=\"x\\ny\""),
        InvalidVariable::ValueCharacter { ch: '\n', .. }
    ));
    assert!(matches!(
        err("A=x\u{0}y"),
        InvalidVariable::ValueCharacter { ch: '\0', .. }
    ));
    assert!(matches!(
        err("A B=1"),
        InvalidVariable::NameCharacter { ch: ' ', .. }
    ));
    assert_eq!(err("=x"), InvalidVariable::EmptyName);
    assert!(matches!(
        err("1A=x"),
        InvalidVariable::NameStart { ch: '1', .. }
    ));
    assert_eq!(
        err("NOVALUE"),
        InvalidVariable::NotAnAssignment("NOVALUE".into())
    );
    let long = format!("A={}", "x".repeat(9000));
    assert_eq!(err(&long), InvalidVariable::ValueTooLong("A".into()));
    assert!(matches!(
        err(&format!("{}=1", "N".repeat(1025))),
        InvalidVariable::NameTooLong(_)
    ));
    assert!(Variable::new("#A", "1").is_err());
    assert!(Variable::new("A", "line\nB=injected").is_err());
    assert!(Variable::new("A", "tab\tis fine").is_ok());
    // A file names the line, and the message names the variable but not its value.
    let e = Environment::parse("A=1\n# ok\nSECRET=\"pass\\nword\"\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(
        e.to_string()
            .starts_with("line 3: the value of SECRET contains"),
        "{e}"
    );
    assert!(!e.to_string().contains("pass"));
}

#[test]
fn store_and_load_round_trip_privately() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let id: ContainerId = "web-1".parse().unwrap();
    assert_eq!(Environment::load(&paths, &id).unwrap(), None);
    let mut env = Environment::new();
    for (name, value) in [
        ("B", "2"),
        ("A", "\"quoted\""),
        ("C", " padded "),
        ("D", ""),
    ] {
        env.set(Variable::new(name, value).unwrap());
    }
    env.store(&paths, &id).unwrap();
    let path = paths.env_file(&id);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "B=2\nA=\"quoted\"\nC= padded \nD=\n"
    );
    assert_eq!(Environment::load(&paths, &id).unwrap(), Some(env));
    fs::write(&path, "A=1\nnot a variable\n").unwrap();
    let e = Environment::load(&paths, &id).unwrap_err();
    assert!(format!("{e:#}").contains("line 2"), "{e:#}");
}

#[test]
fn json_is_geards_and_validated() {
    let body: EnvironmentBody = serde_json::from_str(
        r#"{"Variables":[{"Name":"A","Value":"B"},{"Name":"A","Value":"C"}]}"#,
    )
    .unwrap();
    let env = Environment::from(body);
    assert_eq!(env.render(), "A=C\n");
    assert_eq!(
        serde_json::to_string(&EnvironmentBody::from(env)).unwrap(),
        r#"{"Variables":[{"Name":"A","Value":"C"}]}"#
    );
    assert_eq!(
        serde_json::from_str::<EnvironmentBody>("{}")
            .unwrap()
            .variables,
        vec![]
    );
    for bad in [
        r#"{"Name":"A B","Value":"x"}"#,
        r#"{"Name":"","Value":"x"}"#,
        r#"{"Name":"A","Value":"x\ny"}"#,
    ] {
        assert!(
            serde_json::from_str::<Variable>(bad).is_err(),
            "{bad} accepted"
        );
    }
}
