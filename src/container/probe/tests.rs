use super::*;
use tokio::net::TcpListener;

fn port(n: u16) -> PortNumber {
    PortNumber::try_from(n).unwrap()
}

#[test]
fn http_probes_parse_with_and_without_a_port() {
    let p = ReadyProbe::parse_http("/ready:8080").unwrap();
    assert_eq!(p.http.as_ref().unwrap().as_str(), "/ready");
    assert_eq!(p.port, Some(port(8080)));
    let p = ReadyProbe::parse_http("/a:b/c").unwrap();
    assert_eq!(p.http.as_ref().unwrap().as_str(), "/a:b/c");
    assert_eq!(p.port, None);
    for bad in ["ready", "/with space", "/x:0", "/x:70000", ""] {
        assert!(ReadyProbe::parse_http(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn a_probe_without_a_port_takes_the_first_published_one() {
    let p = ReadyProbe::parse_http("/").unwrap();
    assert_eq!(p.clone().resolve([]), Err(InvalidProbe::NoPort));
    let p = p.resolve([port(80), port(443)]).unwrap();
    assert_eq!(p.port, Some(port(80)));
    assert_eq!(p.timeout(), DEFAULT_READY_TIMEOUT);
    assert_eq!(p.to_string(), "http /:80");
    // A named port wins.
    assert_eq!(
        ReadyProbe::tcp(port(9)).resolve([port(80)]).unwrap().port,
        Some(port(9))
    );
}

#[test]
fn timeouts_are_bounded_and_round_trip_through_json() {
    let with = |t: &str| ReadyProbe {
        timeout: Some(t.parse().unwrap()),
        ..ReadyProbe::tcp(port(80))
    };
    assert!(with("0s").resolve([]).is_err());
    assert!(with("5m").resolve([]).is_err());
    let p = with("90s").resolve([]).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json, serde_json::json!({"Port": 80, "Timeout": "90s"}));
    assert_eq!(serde_json::from_value::<ReadyProbe>(json).unwrap(), p);
    assert!(serde_json::from_value::<ReadyProbe>(serde_json::json!({"Prot": 80})).is_err());
}

#[test]
fn status_lines_are_read() {
    assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
    assert_eq!(status_code(b"HTTP/1.0 503 Busy"), Some(503));
    assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
}

/// A server on loopback that answers every connection with `status`.
async fn http_server(status: u16) -> PortNumber {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.0 {status} X\r\n\r\n").as_bytes())
                .await;
        }
    });
    PortNumber::try_from(port).unwrap()
}

#[tokio::test]
async fn http_checks_want_2xx_or_3xx_and_tcp_checks_an_accept() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let ok = http_server(302).await;
    let bad = http_server(503).await;
    let probe = |p| ReadyProbe {
        port: Some(p),
        ..ReadyProbe::parse_http("/health").unwrap()
    };
    check(lo, &probe(ok)).await.unwrap();
    let err = check(lo, &probe(bad)).await.unwrap_err();
    assert!(err.contains("answered 503"), "{err}");
    check(lo, &ReadyProbe::tcp(bad)).await.unwrap();
    // A port nobody listens on: refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = check(lo, &ReadyProbe::tcp(port(closed))).await.unwrap_err();
    assert!(err.contains("connecting"), "{err}");
}

#[tokio::test]
async fn waiting_ends_when_the_listener_appears_or_at_the_timeout() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n = free.local_addr().unwrap().port();
    drop(free);
    let probe = ReadyProbe {
        timeout: Some(Wait(Duration::from_secs(1))),
        ..ReadyProbe::tcp(port(n))
    };
    let err = wait_ready(lo, &probe, || true).await.unwrap_err();
    assert!(err.starts_with("not ready within 1s"), "{err}");
    // The container ends: no need to wait for the timeout.
    let t = Instant::now();
    let err = wait_ready(lo, &probe, || false).await.unwrap_err();
    assert!(err.contains("ended before"), "{err}");
    assert!(t.elapsed() < Duration::from_millis(500));
    // A listener that comes after 300 ms is found soon after.
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let l = TcpListener::bind(("127.0.0.1", n)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(l);
    });
    let took = wait_ready(lo, &probe, || true).await.unwrap();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(700),
        "{took:?}"
    );
    later.abort();
}
