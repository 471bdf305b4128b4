//! The real `gear-api` against requests a web page can make a browser send to it: simple
//! cross-site POSTs, a foreign `Origin`, and DNS rebinding (a foreign `Host`).

mod common;

use common::{Agent, AgentOptions};

const BODY: &[u8] = br#"{"Variables":[{"Name":"A","Value":"from-a-page"}]}"#;

fn agent() -> Agent {
    Agent::start(AgentOptions {
        args: vec!["--host-name", "node1.example.com"],
        files: vec![("var/lib/containers/units/ctr-web-1.service", "[Service]\n")],
        ..Default::default()
    })
}

fn env_file(agent: &Agent) -> Option<String> {
    std::fs::read_to_string(agent.path("var/lib/containers/env/web-1")).ok()
}

#[test]
fn bodies_a_page_can_send_without_a_preflight_are_refused() {
    let agent = agent();
    for kind in [
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        // No type, from a page: a browser sends Origin (here the agent's own).
        "Host: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n",
    ] {
        let (status, body) = agent.http("PUT", "/environment/web-1", kind, BODY);
        assert_eq!(status, 415, "{kind}: {body}");
        assert!(body.contains("Content-Type: application/json"), "{body}");
    }
    assert_eq!(
        env_file(&agent),
        None,
        "a refused request changed the environment"
    );
    let json = "Content-Type: application/json\r\n";
    let (status, body) = agent.http("PUT", "/environment/web-1", json, BODY);
    assert_eq!(status, 200, "{body}");
    assert!(env_file(&agent).unwrap().contains("A=from-a-page"));
}

#[test]
fn an_untyped_body_without_origin_is_geards_client_and_is_accepted() {
    // geard's Go client sends its bodies with no Content-Type, and no browser header.
    let agent = agent();
    let (status, body) = agent.http("PUT", "/environment/web-1", "", BODY);
    assert_eq!(status, 200, "{body}");
    assert!(env_file(&agent).unwrap().contains("A=from-a-page"));
}

#[test]
fn a_foreign_origin_is_refused_even_with_a_json_body() {
    let agent = agent();
    let headers =
        "Host: 127.0.0.1\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\n";
    let (status, body) = agent.http("PUT", "/environment/web-1", headers, BODY);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("https://evil.example"), "{body}");
    assert_eq!(env_file(&agent), None);
    // A bodiless POST a page can send cross-site is refused the same way.
    let (status, _) = agent.http("POST", "/container/web-1/restart", "Origin: null\r\n", b"");
    assert_eq!(status, 403);
}

#[test]
fn a_rebound_name_is_refused_and_known_names_are_served() {
    let agent = agent();
    std::fs::create_dir_all(agent.path("var/lib/containers/env")).unwrap();
    std::fs::write(agent.path("var/lib/containers/env/web-1"), "SECRET=1\n").unwrap();
    let (status, body) = agent.http(
        "GET",
        "/environment/web-1",
        "Host: evil.example:43273\r\n",
        b"",
    );
    assert_eq!(status, 421, "{body}");
    assert!(!body.contains("SECRET"), "{body}");
    assert!(body.contains("evil.example"), "{body}");
    for host in [
        "127.0.0.1:43273",
        "localhost",
        "[::1]:43273",
        "node1.example.com:43273",
    ] {
        let (status, body) = agent.http(
            "GET",
            "/environment/web-1",
            &format!("Host: {host}\r\n"),
            b"",
        );
        assert_eq!((status, body.as_str()), (200, "SECRET=1\n"), "{host}");
    }
}
