//! [`Target`]: a checked WebSocket URL, split into what the connection needs, and the
//! resolution of a redirect's `Location` against it (RFC 3986 §5.2).

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderValue, Uri};
use percent_encoding::percent_decode_str;

use crate::error::{Error, ErrorKind};

/// Where a client connects and what it asks for.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// `wss://`.
    pub(crate) secure: bool,
    /// The host, in lower case, without the brackets of an IPv6 address.
    pub(crate) host: String,
    /// The port, or the scheme's default (80 or 443).
    pub(crate) port: u16,
    /// The URL without its credentials: the `Host` header and the request target.
    pub(crate) uri: Uri,
    /// User name and password from the URL, percent-decoded.
    pub(crate) credentials: Option<Credentials>,
}

/// A user name and password, sent as HTTP Basic authentication (RFC 7617).
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Splits `user:password` userinfo (RFC 3986 §3.2.1) and percent-decodes both parts.
    pub(crate) fn from_userinfo(userinfo: &str) -> Result<Self, String> {
        let (user, password) = userinfo
            .split_once(':')
            .ok_or("user name given without a password")?;
        let decode = |part: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| "credentials are not valid UTF-8 once percent-decoded".to_owned())
        };
        Ok(Self {
            user: decode(user)?,
            password: decode(password)?,
        })
    }

    /// `Basic base64(user:password)` (RFC 7617 §2), for `Authorization` or
    /// `Proxy-Authorization`.
    pub(crate) fn basic(&self) -> HeaderValue {
        let token = STANDARD.encode(format!("{}:{}", self.user, self.password));
        let mut value =
            HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a header value");
        value.set_sensitive(true);
        value
    }
}

impl Target {
    /// Checks `url`: `ws://` or `wss://`, a host, optional `user:password@`.
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let invalid =
            |why: &str| Error::new(ErrorKind::InvalidUrl).with_source(format!("{url}: {why}"));
        let uri: Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some(other) => {
                return Err(invalid(&format!(
                    "scheme must be ws:// or wss://, not {other}://"
                )));
            }
            None => return Err(invalid("missing ws:// or wss:// scheme")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority.as_str()),
        };
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let credentials = userinfo
            .map(Credentials::from_userinfo)
            .transpose()
            .map_err(|why| invalid(&why))?;
        let port = match parse_port(host_port, host) {
            Ok(Some(port)) => port,
            Ok(None) if secure => 443,
            Ok(None) => 80,
            Err(()) => return Err(invalid("invalid port")),
        };
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let path_and_query = match path_and_query {
            "" => "/",
            other => other,
        };
        let scheme = if secure { "wss" } else { "ws" };
        let uri: Uri = format!("{scheme}://{host_port}{path_and_query}")
            .parse()
            .map_err(|_| invalid("not a valid URL"))?;
        Ok(Self {
            secure,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
            uri,
            credentials,
        })
    }

    /// Whether `other` has the same origin (RFC 6454 §5: scheme, host and port).
    pub(crate) fn same_origin(&self, other: &Self) -> bool {
        self.secure == other.secure && self.host == other.host && self.port == other.port
    }

    /// `host:port` with an IPv6 address in brackets, as HTTP CONNECT wants it.
    pub(crate) fn host_port(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }

    /// The URL without credentials, for messages.
    pub(crate) fn url(&self) -> String {
        self.uri.to_string()
    }

    /// Resolves a redirect's `Location` (an absolute URL or a reference relative to this
    /// one) into a new target (RFC 9110 §10.2.2, RFC 3986 §5.2).
    pub(crate) fn join(&self, location: &str) -> Result<Self, Error> {
        let location = location.trim();
        // RFC 3986 §5.2.2: the fragment of the reference is dropped: it never reaches a
        // WebSocket server (RFC 6455 §3).
        let location = location
            .split_once('#')
            .map_or(location, |(before, _)| before);
        let scheme = if self.secure { "wss" } else { "ws" };
        let authority = self
            .uri
            .authority()
            .map_or("", |authority| authority.as_str());
        let base_path = self.uri.path();
        let resolved = if has_scheme(location) {
            location.to_owned()
        } else if location.starts_with("//") {
            format!("{scheme}:{location}")
        } else if location.starts_with('/') {
            let (path, query) = split_query(location);
            format!("{scheme}://{authority}{}{query}", remove_dot_segments(path))
        } else if location.is_empty() {
            self.url()
        } else if location.starts_with('?') {
            format!("{scheme}://{authority}{base_path}{location}")
        } else {
            // RFC 3986 §5.2.3: merge with the base path up to its last "/".
            let (path, query) = split_query(location);
            let directory = base_path
                .rfind('/')
                .map_or("/", |slash| &base_path[..=slash]);
            let merged = format!("{directory}{path}");
            format!(
                "{scheme}://{authority}{}{query}",
                remove_dot_segments(&merged)
            )
        };
        Target::parse(&resolved).map_err(|error| {
            Error::new(ErrorKind::Handshake).with_source(format!(
                "cannot follow redirect to {location:?}: {}",
                std::error::Error::source(&error).map_or(String::new(), ToString::to_string)
            ))
        })
    }
}

/// The port after `host` in `host_port`: `None` if absent or empty (RFC 3986 §3.2.3:
/// "URI producers and normalizers should omit the port component and its ':' delimiter
/// if port is empty").
pub(crate) fn parse_port(host_port: &str, host: &str) -> Result<Option<u16>, ()> {
    match host_port.strip_prefix(host).unwrap_or(host_port) {
        "" | ":" => Ok(None),
        rest => match rest.strip_prefix(':').map(str::parse::<u16>) {
            Some(Ok(port)) => Ok(Some(port)),
            _ => Err(()),
        },
    }
}

/// Whether a URI reference starts with a scheme (RFC 3986 §3.1:
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`).
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !scheme.contains('/')
}

/// Splits `path?query` into the path and `?query` (empty if none).
fn split_query(reference: &str) -> (&str, &str) {
    match reference.find('?') {
        Some(at) => reference.split_at(at),
        None => (reference, ""),
    }
}

/// RFC 3986 §5.2.4: removes `.` and `..` segments from an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut output: Vec<&str> = Vec::with_capacity(segments.len());
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                output.pop();
            }
            other => {
                output.push(other);
                continue;
            }
        }
        // A trailing "." or ".." leaves the path ending in "/".
        if last {
            output.push("");
        }
    }
    format!("/{}", output.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split() {
        let target = Target::parse("wss://Us%40er:p%3Ass@Example.COM/chat?x=1").unwrap();
        assert!(target.secure);
        assert_eq!(target.host, "example.com");
        assert_eq!(target.port, 443);
        assert_eq!(target.uri, "wss://Example.COM/chat?x=1");
        let credentials = target.credentials.unwrap();
        assert_eq!(credentials.user, "Us@er");
        assert_eq!(credentials.password, "p:ss");
        // RFC 7617 §2: base64 of "Us@er:p:ss".
        assert_eq!(credentials.basic(), "Basic VXNAZXI6cDpzcw==");

        let target = Target::parse("ws://[::1]:8080").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 8080));
        assert_eq!(target.host_port(), "[::1]:8080");
        assert_eq!(target.uri.path(), "/");
        assert!(target.credentials.is_none());
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "http://h/",
            "h",
            "ws://",
            "ws://user@h/",
            "ws://u:%ff@h/",
            "ws://h:99999/",
        ] {
            let error = Target::parse(url).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{url}");
        }
    }

    #[test]
    fn locations_resolve_as_rfc_3986_says() {
        let base = Target::parse("ws://a.example:81/b/c/d?q").unwrap();
        let cases = [
            ("wss://other/x", "wss://other/x"),
            ("//other:82/x", "ws://other:82/x"),
            ("/g?y#frag", "ws://a.example:81/g?y"),
            ("g", "ws://a.example:81/b/c/g"),
            ("./g", "ws://a.example:81/b/c/g"),
            ("../g", "ws://a.example:81/b/g"),
            ("../../../../g", "ws://a.example:81/g"),
            ("..", "ws://a.example:81/b/"),
            ("?y", "ws://a.example:81/b/c/d?y"),
            ("", "ws://a.example:81/b/c/d?q"),
            ("/a/./b/../c", "ws://a.example:81/a/c"),
        ];
        for (location, expected) in cases {
            assert_eq!(base.join(location).unwrap().url(), expected, "{location}");
        }
        assert_eq!(
            base.join("http://x/").unwrap_err().kind(),
            ErrorKind::Handshake
        );
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Target::parse("ws://h:80/x").unwrap();
        assert!(a.same_origin(&Target::parse("ws://H/y").unwrap()));
        assert!(!a.same_origin(&Target::parse("wss://h:80/").unwrap()));
        assert!(!a.same_origin(&Target::parse("ws://h:81/").unwrap()));
        assert!(!a.same_origin(&Target::parse("ws://g/").unwrap()));
    }
}
