//! Tests of `unit_file`.

use super::*;

/// The rendered value of the one `key=` line in `text`.
fn rendered_value<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let mut lines = text.lines().filter_map(|l| l.strip_prefix(prefix.as_str()));
    let value = lines.next().expect("key rendered");
    assert_eq!(lines.next(), None, "one {key}= line");
    value
}

/// What systemd makes of a rendered command line: it unquotes and C-unescapes each word
/// and turns `%%` into `%` when loading the unit, strips the prefix flags from the first
/// word, and turns `$$` into `$` when running it (unless the prefix has `:`). A model of
/// the subset our quoting writes: it panics on anything else, such as a lone `%` or `$`.
fn systemd_argv(rendered: &str) -> (String, Vec<String>) {
    let mut words = Vec::new();
    let mut chars = rendered.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let (mut word, mut quoted) = (String::new(), false);
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => break,
                '\\' => word.push(match chars.next().expect("escaped character") {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    'x' => {
                        let hex: String = chars.by_ref().take(2).collect();
                        char::from(u8::from_str_radix(&hex, 16).expect("hex escape"))
                    }
                    c @ ('\\' | '"') => c,
                    c => panic!("escape \\{c} not expected"),
                }),
                c => word.push(c),
            }
        }
        assert!(!quoted, "unbalanced quotes in {rendered}");
        words.push(unescape_percent(&word).expect("no specifier"));
    }
    let flags = words[0].len()
        - words[0]
            .trim_start_matches(|c| EXEC_PREFIXES.contains(c))
            .len();
    let prefix: String = words[0].drain(..flags).collect();
    if prefix.contains(':') {
        return (prefix, words);
    }
    let expand = |word: &String| {
        let mut chars = word.chars();
        let mut out = String::new();
        while let Some(c) = chars.next() {
            if c == '$' {
                assert_eq!(chars.next(), Some('$'), "variable expansion in {word:?}");
            }
            out.push(c);
        }
        out
    };
    (prefix, words.iter().map(expand).collect())
}

#[test]
fn render_small_unit() -> Result<(), InvalidValue> {
    let mut u = UnitFile::new();
    u.set("Unit", "Description", "gear container web-1 (nginx:1.27)")?
        .set("Unit", "After", "docker.service")?;
    u.set_exec(
        "Service",
        "ExecStartPre",
        "-",
        &["/usr/bin/docker", "rm", "-f", "ctr-web-1"],
    )?;
    u.set_exec(
        "Service",
        "ExecStart",
        "",
        &["/usr/bin/docker", "run", "--name", "ctr web 1"],
    )?;
    u.set("Service", "Environment", "A=100%")?;
    u.set("Install", "WantedBy", "container-active.target")?;
    assert_eq!(
        u.render(),
        "[Unit]\n\
         Description=gear container web-1 (nginx:1.27)\n\
         After=docker.service\n\
         \n\
         [Service]\n\
         ExecStartPre=-\"/usr/bin/docker\" \"rm\" \"-f\" \"ctr-web-1\"\n\
         ExecStart=\"/usr/bin/docker\" \"run\" \"--name\" \"ctr web 1\"\n\
         Environment=A=100%%\n\
         \n\
         [Install]\n\
         WantedBy=container-active.target\n"
    );
    assert_eq!(UnitFile::new().render(), "");
    Ok(())
}

#[test]
fn get_returns_values_as_given() -> Result<(), InvalidValue> {
    let mut u = UnitFile::new();
    u.set("X-Gear", "PortMapping", "80:8080")?
        .set("X-Gear", "PortMapping", "443:8443")?;
    u.set("Unit", "Description", "50% off $HOME")?;
    u.set_exec("Service", "ExecStart", "", &["/bin/echo", "100%", "$x"])?;
    assert_eq!(u.get_all("X-Gear", "PortMapping"), ["80:8080", "443:8443"]);
    assert_eq!(u.get("X-Gear", "PortMapping"), Some("443:8443"));
    assert_eq!(u.get("Unit", "Description"), Some("50% off $HOME"));
    assert_eq!(
        u.get("Service", "ExecStart"),
        Some(r#""/bin/echo" "100%" "$$x""#)
    );
    assert_eq!(u.get("Unit", "After"), None);
    assert_eq!(u.get("Nope", "Description"), None);
    assert!(u.get_all("Service", "ExecStop").is_empty());
    Ok(())
}

#[test]
fn parse_inverts_render() -> Result<(), InvalidValue> {
    let mut u = UnitFile::new();
    u.set(
        "Unit",
        "Description",
        "100% \"quoted\" 'single' back\\slash $HOME ${X} ünïcødé ☃",
    )?
    .set("Unit", "Documentation", "man:gear(8) %n %% %")?
    .set("Unit", "X-Even-Backslashes", "C:\\\\")?
    .set("Unit", "Empty", "")?
    .set("Unit", "Inner", "a = b ; # c")?;
    u.set_exec(
        "Service",
        "ExecStart",
        "-",
        &[
            "/usr/bin/docker",
            "run",
            "-e",
            "A=$B%c",
            "\"",
            "\\",
            "tab\there",
            "日本語",
            "",
            "x\ny",
        ],
    )?;
    u.set("Service", "Description", "later section, same key")?;
    let text = u.render();
    assert_eq!(UnitFile::parse(&text), Ok(u.clone()));
    // Comments, blank lines, CRLF and spaces around keys and values change nothing.
    let spaced: String = text
        .lines()
        .map(|l| format!("  {}\t\r\n", l.replacen('=', " = ", 1)))
        .collect();
    let noisy = format!("# Generated by gear\n; old comment\n\n{spaced}");
    assert_eq!(UnitFile::parse(&noisy), Ok(u));
    Ok(())
}

#[test]
fn parse_keeps_empty_and_repeated_sections() {
    let u = UnitFile::parse("[Unit]\n[Service]\nA=1\n[Unit]\nB=2\n").expect("parses");
    assert_eq!(u.render(), "[Unit]\nB=2\n\n[Service]\nA=1\n");
    assert_eq!(UnitFile::parse(&u.render()), Ok(u));
}

#[test]
fn set_refuses_control_characters() {
    let mut u = UnitFile::new();
    for value in ["a\nb", "a\rb", "a\0b", "\x1b[31m", "a\tb", "del\x7f"] {
        assert_eq!(
            u.set("Unit", "Description", value).map(|_| ()),
            Err(InvalidValue::ControlCharacter {
                key: "Description".into(),
                value: value.into()
            }),
        );
    }
    assert_eq!(u, UnitFile::new(), "nothing refused was stored");
}

#[test]
fn set_refuses_bad_names_and_values_systemd_would_change() {
    let mut u = UnitFile::new();
    for key in ["", "Exec Start", "A=B", "Key\n", "[Service]", "Ké"] {
        assert_eq!(
            u.set("Unit", key, "v").map(|_| ()),
            Err(InvalidValue::BadKey(key.into()))
        );
    }
    for section in ["", "Unit]\n[Service", "Un it", "Unit]"] {
        assert_eq!(
            u.set(section, "A", "v").map(|_| ()),
            Err(InvalidValue::BadSection(section.into()))
        );
    }
    for value in [" lead", "trail ", "continued\\", "odd\\\\\\"] {
        let refused = InvalidValue::NotVerbatim {
            key: "A".into(),
            value: value.into(),
        };
        assert_eq!(u.set("Unit", "A", value).map(|_| ()), Err(refused));
    }
    assert!(u.set("X-Gear", "X-Port-2", "even\\\\").is_ok());
    assert!(u.set("Unit", "Inner", "in ner").is_ok());
}

#[test]
fn hostile_exec_argument_stays_on_its_line() -> Result<(), InvalidValue> {
    let mut u = UnitFile::new();
    u.set("Unit", "Description", "x")?;
    u.set_exec(
        "Service",
        "ExecStart",
        "",
        &["/usr/bin/docker", "run", "x\nExecStartPre=/bin/rm -rf /"],
    )?;
    let text = u.render();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("ExecStartPre")),
        "{text}"
    );
    let line = rendered_value(&text, "ExecStart");
    assert_eq!(
        line,
        r#""/usr/bin/docker" "run" "x\nExecStartPre=/bin/rm -rf /""#
    );
    assert_eq!(
        systemd_argv(line).1,
        ["/usr/bin/docker", "run", "x\nExecStartPre=/bin/rm -rf /"]
    );
    Ok(())
}

#[test]
fn specifiers_and_variables_are_escaped() -> Result<(), InvalidValue> {
    let mut u = UnitFile::new();
    u.set("Unit", "Description", "%n on %H")?;
    u.set_exec(
        "Service",
        "ExecStart",
        "",
        &["/bin/echo", "$HOME", "${PATH}", "$", "%i", "$$"],
    )?;
    let text = u.render();
    assert_eq!(rendered_value(&text, "Description"), "%%n on %%H");
    let line = rendered_value(&text, "ExecStart");
    assert_eq!(line, r#""/bin/echo" "$$HOME" "$${PATH}" "$$" "%%i" "$$$$""#);
    assert_eq!(
        systemd_argv(line).1,
        ["/bin/echo", "$HOME", "${PATH}", "$", "%i", "$$"]
    );
    Ok(())
}

#[test]
fn exec_arguments_survive_systemd_unquoting() -> Result<(), InvalidValue> {
    let argv = [
        "/usr/bin/docker",
        "run",
        "",
        " ",
        ";",
        "\\;",
        "'",
        "\"",
        "\\",
        "\\n",
        "a b\tc\r\x07\x08\x0b\x0c\x1b\x7f",
        "-e",
        "K=v$w%x",
        "ünï ☃",
        "--",
        "-/bin/sh",
        "@x",
    ];
    for prefix in ["", "-", "+", "@", "!!", "-:"] {
        let mut u = UnitFile::new();
        u.set_exec("Service", "ExecStart", prefix, &argv)?;
        let text = u.render();
        assert_eq!(text.lines().count(), 2, "{text}");
        let (got_prefix, got_argv) = systemd_argv(rendered_value(&text, "ExecStart"));
        assert_eq!(
            (got_prefix.as_str(), got_argv.as_slice()),
            (prefix, argv.map(String::from).as_slice())
        );
    }
    Ok(())
}

#[test]
fn no_env_prefix_keeps_dollars() -> Result<(), InvalidValue> {
    let mut u = UnitFile::new();
    u.set_exec("Service", "ExecStart", ":", &["/bin/echo", "$HOME"])?;
    assert_eq!(
        u.get("Service", "ExecStart"),
        Some(r#":"/bin/echo" "$HOME""#)
    );
    Ok(())
}

#[test]
fn set_exec_refuses_what_systemd_would_misread() {
    let mut u = UnitFile::new();
    let bad_path = |path: &str| InvalidValue::BadExecutable {
        key: "ExecStart".into(),
        path: path.into(),
    };
    assert_eq!(
        u.set_exec("Service", "ExecStart", "", &[]).map(|_| ()),
        Err(bad_path(""))
    );
    for path in [
        "docker",
        "-/bin/true",
        "/usr/bin/",
        "/opt/$x/run",
        "/bin/a\"b",
        "/bin/a\\b",
        "/bin/a\nb",
        "",
    ] {
        assert_eq!(
            u.set_exec("Service", "ExecStart", "", &[path]).map(|_| ()),
            Err(bad_path(path))
        );
    }
    for prefix in ["x", "-\n", "\"", " "] {
        let refused = InvalidValue::BadPrefix {
            key: "ExecStart".into(),
            prefix: prefix.into(),
        };
        assert_eq!(
            u.set_exec("Service", "ExecStart", prefix, &["/bin/true"])
                .map(|_| ()),
            Err(refused)
        );
    }
    let nul = InvalidValue::ControlCharacter {
        key: "ExecStart".into(),
        value: "a\0b".into(),
    };
    assert_eq!(
        u.set_exec("Service", "ExecStart", "", &["/bin/echo", "a\0b"])
            .map(|_| ()),
        Err(nul)
    );
    let key = InvalidValue::BadKey("Exec\nStart".into());
    assert_eq!(
        u.set_exec("Service", "Exec\nStart", "", &["/bin/true"])
            .map(|_| ()),
        Err(key)
    );
    assert_eq!(u, UnitFile::new(), "nothing refused was stored");
}

#[test]
fn quote_exec_arg_outputs() {
    assert_eq!(quote_exec_arg("plain"), r#""plain""#);
    assert_eq!(quote_exec_arg("with space"), r#""with space""#);
    assert_eq!(quote_exec_arg(r#""q""#), r#""\"q\"""#);
    assert_eq!(quote_exec_arg(r"back\slash"), r#""back\\slash""#);
    assert_eq!(quote_exec_arg("tab\there"), r#""tab\there""#);
    assert_eq!(quote_exec_arg("$x"), r#""$$x""#);
    assert_eq!(quote_exec_arg("100%"), r#""100%""#);
    assert_eq!(quote_exec_arg(""), r#""""#);
    assert_eq!(quote_exec_arg("\x1b[0m\x7f\n"), r#""\x1b[0m\x7f\n""#);
    assert_eq!(quote_exec_arg("'ünï'"), r#""'ünï'""#);
}

#[test]
fn parse_errors_carry_line_numbers() {
    let parse = UnitFile::parse;
    assert_eq!(
        parse("# header\nDescription=x\n"),
        Err(ParseError::OutsideSection { line: 2 })
    );
    assert_eq!(
        parse("[Unit]\n# c\n\nDescription\n"),
        Err(ParseError::MissingEquals { line: 4 })
    );
    assert_eq!(
        parse("[Unit]\nA=b\n[Service\n"),
        Err(ParseError::BadSection { line: 3 })
    );
    assert_eq!(
        parse("[Unit]\nA=b\n\n\n[Un it]\n"),
        Err(ParseError::BadSection { line: 5 })
    );
    assert_eq!(
        parse("[Unit]\n\nDescription=%n\n"),
        Err(ParseError::Specifier { line: 3 })
    );
    assert_eq!(
        parse("[Unit]\nA=100%\n"),
        Err(ParseError::Specifier { line: 2 })
    );
    let continued = InvalidValue::NotVerbatim {
        key: "A".into(),
        value: "b\\".into(),
    };
    assert_eq!(
        parse("[Unit]\nA=b\\\nB=c\n"),
        Err(ParseError::Value {
            line: 2,
            source: continued
        })
    );
    let bad_key = InvalidValue::BadKey("Bad Key".into());
    assert_eq!(
        parse("[Unit]\nA=1\nBad Key=1\n"),
        Err(ParseError::Value {
            line: 3,
            source: bad_key
        })
    );
    let lone_cr = InvalidValue::ControlCharacter {
        key: "A".into(),
        value: "x\ry".into(),
    };
    assert_eq!(
        parse("[Unit]\nA=x\ry\n"),
        Err(ParseError::Value {
            line: 2,
            source: lone_cr
        })
    );
    assert_eq!(parse(""), Ok(UnitFile::new()));
}
