//! Choosing a proxy from environment variables, and `no_proxy` matching.

use std::net::IpAddr;

use super::{super::target::Target, Proxy};
use crate::error::{Error, ErrorKind};

/// See [`Proxy::from_env`].
pub(super) fn proxy_for(
    target: &Target,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, Error> {
    if is_loopback(&target.host) {
        return Ok(None);
    }
    if let Some((_, no_proxy)) = variable(lookup, "no_proxy") {
        if bypasses(&no_proxy, &target.host, target.port) {
            return Ok(None);
        }
    }
    // RFC 6455 §4.1 leaves the choice to the client; this is Python websockets' order, a
    // SOCKS proxy before the HTTPS one (both tunnel anything), then curl's catch-all.
    let names: &[&str] = match target.secure {
        true => &["wss_proxy", "socks_proxy", "https_proxy", "all_proxy"],
        false => &[
            "ws_proxy",
            "socks_proxy",
            "https_proxy",
            "http_proxy",
            "all_proxy",
        ],
    };
    for base in names {
        let Some((name, value)) = variable(lookup, base) else {
            continue;
        };
        let value = value.trim();
        let url = match (value.contains("://"), *base) {
            (true, _) => value.to_owned(),
            (false, "socks_proxy") => format!("socks5h://{value}"),
            (false, _) => format!("http://{value}"),
        };
        return Proxy::parse(&url).map(Some).map_err(|error| {
            let why = std::error::Error::source(&error).map_or(String::new(), ToString::to_string);
            Error::new(ErrorKind::InvalidUrl).with_source(format!("{name}: {why}"))
        });
    }
    Ok(None)
}

/// The value of `base` in lower case, else in upper case, with the name found; empty
/// values count as unset.
fn variable(lookup: &dyn Fn(&str) -> Option<String>, base: &str) -> Option<(String, String)> {
    let upper = base.to_ascii_uppercase();
    // httpoxy (CVE-2016-5385): in a CGI script, HTTP_PROXY comes from a request header.
    let cgi = lookup("REQUEST_METHOD").is_some();
    [base.to_owned(), upper]
        .into_iter()
        .filter(|name| !(cgi && name == "HTTP_PROXY"))
        .find_map(|name| {
            lookup(&name)
                .filter(|value| !value.trim().is_empty())
                .map(|value| (name, value))
        })
}

/// `localhost`, `*.localhost` (RFC 6761 §6.3) and loopback addresses.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `no_proxy` excludes `host:port`; see [`Proxy::from_env`].
pub(super) fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy.split(',').any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        let (name, entry_port) = split_port(&entry);
        if entry_port.is_some_and(|entry_port| entry_port != port) {
            return false;
        }
        let name = name.trim_start_matches('*').trim_start_matches('.');
        !name.is_empty()
            && (host == name
                || host
                    .strip_suffix(name)
                    .is_some_and(|rest| rest.ends_with('.')))
    })
}

/// Splits an optional port off a `no_proxy` entry: `host:port`, `[v6]:port`, `[v6]`, or
/// a bare IPv6 address (several colons, no port).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_entries_match_hosts_suffixes_and_ports() {
        let list = "example.com, .corp.example ,*.wild.example,10.0.0.1,host:8080,[::2]:9000";
        let cases = [
            ("example.com", 80, true),
            ("EXAMPLE.com", 80, true),
            ("api.example.com", 443, true),
            ("badexample.com", 80, false),
            ("corp.example", 80, true),
            ("x.corp.example", 80, true),
            ("a.wild.example", 80, true),
            ("10.0.0.1", 80, true),
            ("10.0.0.10", 80, false),
            ("host", 8080, true),
            ("host", 8081, false),
            ("::2", 9000, true),
            ("::2", 9001, false),
            ("other.org", 80, false),
        ];
        for (host, port, expected) in cases {
            assert_eq!(bypasses(list, host, port), expected, "{host}:{port}");
        }
        assert!(bypasses("*", "anything.example", 1));
        assert!(!bypasses("", "anything.example", 1));
        assert!(!bypasses(" , ", "anything.example", 1));
    }
}
