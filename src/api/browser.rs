//! Refusing what a web browser can be made to send: a page on any site can point a browser
//! at `http://127.0.0.1:43273`, and the agent must not obey it (docs/security.md).
//!
//! - A page can send, without a CORS preflight, a body typed `text/plain`,
//!   `application/x-www-form-urlencoded` or `multipart/form-data`, or no type at all
//!   (`fetch` with `mode: "no-cors"` and a Blob body). So a body must be declared
//!   `application/json`, which a page cannot send cross-site without a preflight the agent
//!   never grants.
//! - Browsers send `Origin` with every request that is not a plain `GET`/`HEAD`; the agent
//!   serves no pages, so any `Origin` but its own address is a foreign site.
//! - DNS rebinding makes a page's own name resolve to the agent, so the browser treats the
//!   agent as same-origin; it still sends the page's name as `Host`. Only IP literals,
//!   `localhost`, this host's name and names given with `--host-name` are accepted.

use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, HOST, ORIGIN};

use super::error::Error;

/// The `Host` names the agent answers to, besides IP literals and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct HostNames(Vec<String>);

impl HostNames {
    /// `names` (from `--host-name`), lowercased.
    pub fn new(names: impl IntoIterator<Item = String>) -> HostNames {
        HostNames(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
    }

    /// `names` plus this host's own name (`/proc/sys/kernel/hostname`): a page cannot make a
    /// browser send that as `Host` unless it is served under that very name.
    pub fn with_own(names: impl IntoIterator<Item = String>) -> HostNames {
        let own = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
        let own = own.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        HostNames::new(names.into_iter().chain(own))
    }

    fn allows(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name == "localhost" || self.0.contains(&name)
    }
}

/// Checks the headers of a request before it is read further.
pub fn check_headers(headers: &HeaderMap, names: &HostNames) -> Result<(), Error> {
    // HTTP/1.0 clients may send no Host; every browser sends one.
    let host = match headers.get(HOST) {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| Error::UnknownHost("(not text)".into()))?;
            if !host_allowed(text, names) {
                return Err(Error::UnknownHost(text.to_string()));
            }
            Some(text)
        }
    };
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        let own = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(h))
        });
        if !own {
            return Err(Error::ForeignOrigin(origin.to_string()));
        }
    }
    Ok(())
}

/// Checks that a non-empty body is declared JSON, or comes with no type at all from a
/// client that is not a browser.
///
/// geard's Go client sends its bodies with no `Content-Type`, and it must keep working. A
/// web page can send an untyped body without a preflight too, but a browser then always
/// sends `Origin` (every cross-site request, and every POST), so an untyped body is
/// accepted only without one. A declared type must be JSON: `text/plain`, forms and
/// multipart are what a page sends without asking.
pub fn check_body(headers: &HeaderMap, body: &[u8]) -> Result<(), Error> {
    if body.is_empty() {
        return Ok(());
    }
    let declared = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let media = declared.map(|t| t.split(';').next().unwrap_or("").trim());
    match media {
        Some(m) if m.eq_ignore_ascii_case("application/json") => Ok(()),
        None if !headers.contains_key(ORIGIN) => Ok(()),
        _ => Err(Error::NotJson(declared.unwrap_or("(none)").to_string())),
    }
}

/// Whether `host` (a `Host` header: name or address, then maybe `:port`) is one the agent
/// answers to.
fn host_allowed(host: &str, names: &HostNames) -> bool {
    // `[v6]` or `[v6]:port`.
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').is_some_and(|(addr, port)| {
            addr.parse::<std::net::Ipv6Addr>().is_ok() && port_ok(port)
        });
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    port_ok && (name.parse::<std::net::Ipv4Addr>().is_ok() || names.allows(name))
}

/// An empty tail, or `:port`.
fn port_ok(tail: &str) -> bool {
    tail.is_empty()
        || tail
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hosts_are_addresses_localhost_or_configured_names() {
        let names = HostNames::new(["Node1.example.com".to_string()]);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:43273",
            "10.0.0.5:43273",
            "[::1]:43273",
            "[::ffff:127.0.0.1]",
            "localhost:43273",
            "LOCALHOST",
            "node1.example.com:43273",
        ] {
            assert!(host_allowed(ok, &names), "{ok} refused");
        }
        for bad in [
            "evil.example:43273",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "node1.example.com.evil:43273",
            "127.0.0.1:99999",
            "[::1",
            "[::1]x",
            "",
        ] {
            assert!(!host_allowed(bad, &names), "{bad} accepted");
        }
    }

    #[test]
    fn a_foreign_origin_or_host_is_refused() {
        let names = HostNames::default();
        assert!(check_headers(&headers(&[]), &names).is_ok());
        assert!(check_headers(&headers(&[("host", "127.0.0.1:43273")]), &names).is_ok());
        let same = headers(&[
            ("host", "127.0.0.1:43273"),
            ("origin", "http://127.0.0.1:43273"),
        ]);
        assert!(check_headers(&same, &names).is_ok());
        let foreign = headers(&[
            ("host", "127.0.0.1:43273"),
            ("origin", "https://evil.example"),
        ]);
        let e = check_headers(&foreign, &names).unwrap_err();
        assert_eq!(e.status(), hyper::StatusCode::FORBIDDEN);
        let null = headers(&[("host", "127.0.0.1:43273"), ("origin", "null")]);
        assert!(matches!(
            check_headers(&null, &names),
            Err(Error::ForeignOrigin(_))
        ));
        let rebound = headers(&[
            ("host", "evil.example:43273"),
            ("origin", "http://evil.example:43273"),
        ]);
        let e = check_headers(&rebound, &names).unwrap_err();
        assert_eq!(e.status(), hyper::StatusCode::MISDIRECTED_REQUEST);
    }

    #[test]
    fn bodies_must_be_declared_json() {
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert!(check_body(&json, b"{}").is_ok());
        assert!(check_body(&headers(&[]), b"").is_ok());
        for t in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let h = headers(&[("content-type", t)]);
            let e = check_body(&h, b"{}").unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::UNSUPPORTED_MEDIA_TYPE, "{t}");
        }
        // geard's Go client: no type, no Origin.
        assert!(check_body(&headers(&[]), b"{}").is_ok());
        // An untyped body from a page (it has an Origin, even its own).
        let page = headers(&[("origin", "http://127.0.0.1:43273")]);
        let e = check_body(&page, b"{}").unwrap_err();
        assert!(
            e.to_string().contains("Content-Type: application/json"),
            "{e}"
        );
    }
}
