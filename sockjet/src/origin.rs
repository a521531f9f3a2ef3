//! An allow-list of origins: browsers send the page's origin in the `Origin` header of
//! every WebSocket handshake (RFC 6455 §4.1, §10.2), and a server that only serves its
//! own pages refuses the others with 403, so that a page elsewhere cannot use a visitor's
//! cookies to open a connection in their name (cross-site WebSocket hijacking).
//!
//! ```no_run
//! use sockjet::{Server, origin::OriginPolicy};
//! # async fn f() -> std::io::Result<()> {
//! let origins = OriginPolicy::new()
//!     .allow("https://example.com")
//!     .allow("https://*.example.com") // any subdomain, at any depth
//!     .allow_missing(true); // non-browser clients send no Origin (the default)
//! let server = Server::builder().request_hook(origins).bind("0.0.0.0:8765").await?;
//! # Ok(()) }
//! ```

use std::{fmt, str::FromStr};

use http::{StatusCode, header};
use sockjet_proto::{Request, Response};

use crate::hooks::{RequestHook, respond};

/// Origins a server accepts; use it as a request hook
/// ([`ServerBuilder::request_hook`](crate::ServerBuilder::request_hook)). A request whose
/// `Origin` is not allowed is answered with 403.
///
/// Origins are compared as RFC 6454 serialises them: scheme and host without regard to
/// case, and the port only when it is not the scheme's default (`https://a.example:443`
/// is `https://a.example`). A request without `Origin` is allowed unless
/// [`allow_missing(false)`](Self::allow_missing): browsers always send one, other
/// clients usually none. A request with several `Origin` headers, or one that is not an
/// origin, is refused (unless it is literally allowed, as `null` can be).
///
/// ```
/// use sockjet::origin::OriginPolicy;
/// let policy = OriginPolicy::new().allow("https://*.example.com");
/// assert!(policy.is_allowed(Some("https://chat.example.com")));
/// assert!(policy.is_allowed(Some("HTTPS://A.B.Example.COM")));
/// assert!(!policy.is_allowed(Some("https://example.com")));
/// assert!(!policy.is_allowed(Some("https://evil.com.example.org.attacker")));
/// assert!(!policy.is_allowed(Some("https://evilexample.com")));
/// assert!(policy.is_allowed(None));
/// ```
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    allowed: Vec<OriginPattern>,
    allow_missing: bool,
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl OriginPolicy {
    /// A policy that allows requests without `Origin` and no origin yet.
    ///
    /// ```
    /// let policy = sockjet::origin::OriginPolicy::new();
    /// assert!(!policy.is_allowed(Some("https://example.com")));
    /// assert!(policy.is_allowed(None));
    /// ```
    pub fn new() -> Self {
        Self {
            allowed: Vec::new(),
            allow_missing: true,
        }
    }

    /// Allows an origin or a pattern (see [`OriginPattern`]).
    ///
    /// # Panics
    ///
    /// If `pattern` is not an origin or pattern; parse it with [`OriginPattern::from_str`]
    /// and use [`allow_pattern`](Self::allow_pattern) to handle the error instead.
    ///
    /// ```
    /// let policy = sockjet::origin::OriginPolicy::new().allow("http://localhost:3000");
    /// assert!(policy.is_allowed(Some("http://localhost:3000")));
    /// assert!(!policy.is_allowed(Some("http://localhost:3001")));
    /// ```
    pub fn allow(self, pattern: &str) -> Self {
        let pattern = pattern
            .parse()
            .unwrap_or_else(|error| panic!("{pattern:?}: {error}"));
        self.allow_pattern(pattern)
    }

    /// Allows an origin or a pattern parsed beforehand.
    ///
    /// ```
    /// use sockjet::origin::{OriginPattern, OriginPolicy};
    /// let pattern: OriginPattern = "https://*.example.com".parse().unwrap();
    /// let policy = OriginPolicy::new().allow_pattern(pattern);
    /// assert!(policy.is_allowed(Some("https://www.example.com")));
    /// ```
    pub fn allow_pattern(mut self, pattern: OriginPattern) -> Self {
        self.allowed.push(pattern);
        self
    }

    /// Sets whether a request without an `Origin` header is allowed (default: yes).
    ///
    /// ```
    /// let policy = sockjet::origin::OriginPolicy::new().allow_missing(false);
    /// assert!(!policy.is_allowed(None));
    /// ```
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Whether an `Origin` header value (or its absence) is allowed.
    ///
    /// ```
    /// let policy = sockjet::origin::OriginPolicy::new().allow("null");
    /// assert!(policy.is_allowed(Some("null")));
    /// ```
    pub fn is_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let parsed = Origin::parse(origin).ok();
        self.allowed
            .iter()
            .any(|pattern| pattern.matches(origin, parsed.as_ref()))
    }

    /// Checks a request: the 403 response that refuses it if its origin is not allowed,
    /// `None` if it may go on.
    ///
    /// ```
    /// use sockjet::origin::OriginPolicy;
    /// let policy = OriginPolicy::new().allow("https://example.com");
    /// let request = sockjet::Request::builder()
    ///     .header("origin", "https://attacker.example")
    ///     .body(())
    ///     .unwrap();
    /// assert_eq!(policy.refusal(&request).unwrap().status(), 403);
    /// ```
    pub fn refusal(&self, request: &Request) -> Option<Response> {
        let mut values = request.headers().get_all(header::ORIGIN).iter();
        let allowed = match (values.next(), values.next()) {
            (None, _) => self.is_allowed(None),
            // RFC 6454 §7.3: a user agent "MUST NOT include more than one Origin header".
            (Some(_), Some(_)) => false,
            (Some(value), None) => value
                .to_str()
                .is_ok_and(|origin| self.is_allowed(Some(origin))),
        };
        (!allowed).then(|| respond(StatusCode::FORBIDDEN, "origin not allowed\n"))
    }
}

impl From<OriginPolicy> for RequestHook {
    fn from(policy: OriginPolicy) -> Self {
        RequestHook::new(move |request, _peer| policy.refusal(request))
    }
}

/// An allowed origin: exact (`https://example.com`, `http://localhost:8000`, `null`) or a
/// pattern whose host starts with `*.` (`https://*.example.com`), which matches any host
/// made of one or more whole DNS labels in front of the rest: `https://a.example.com` and
/// `https://a.b.example.com`, but neither `https://example.com` nor
/// `https://evilexample.com`. The scheme and the port must match exactly (a pattern
/// without a port matches only the scheme's default port).
///
/// ```
/// use sockjet::origin::OriginPattern;
/// assert!("https://*.example.com".parse::<OriginPattern>().is_ok());
/// assert!("https://example.com/path".parse::<OriginPattern>().is_err());
/// assert!("https://exa*mple.com".parse::<OriginPattern>().is_err());
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OriginPattern(PatternKind);

#[derive(Clone, Debug, Eq, PartialEq)]
enum PatternKind {
    /// An origin that is not `scheme://host[:port]`, such as `null`: compared as a string
    /// (ASCII case-insensitively).
    Literal(String),
    Exact(Origin),
    /// `scheme://*.suffix[:port]`; `suffix` is stored without its leading dot.
    Subdomains(Origin),
}

impl OriginPattern {
    fn matches(&self, raw: &str, origin: Option<&Origin>) -> bool {
        match (&self.0, origin) {
            (PatternKind::Literal(literal), _) => literal.eq_ignore_ascii_case(raw),
            (PatternKind::Exact(exact), Some(origin)) => exact == origin,
            (PatternKind::Subdomains(suffix), Some(origin)) => {
                // Whole labels only: the host must end with ".suffix" and have at least
                // one (non-empty, as parsing checked) label in front.
                origin.scheme == suffix.scheme
                    && origin.port == suffix.port
                    && origin
                        .host
                        .strip_suffix(suffix.host.as_str())
                        .and_then(|front| front.strip_suffix('.'))
                        .is_some_and(|front| !front.is_empty())
            }
            (_, None) => false,
        }
    }
}

impl FromStr for OriginPattern {
    type Err = InvalidOrigin;

    fn from_str(text: &str) -> Result<Self, InvalidOrigin> {
        if text.eq_ignore_ascii_case("null") {
            return Ok(Self(PatternKind::Literal("null".to_owned())));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or(InvalidOrigin("expected scheme://host[:port]"))?;
        match rest.strip_prefix("*.") {
            Some(suffix) => {
                let origin = Origin::parse(&format!("{scheme}://{suffix}"))?;
                if origin.host.starts_with('[') {
                    return Err(InvalidOrigin("a wildcard needs a DNS name after it"));
                }
                Ok(Self(PatternKind::Subdomains(origin)))
            }
            None => Ok(Self(PatternKind::Exact(Origin::parse(text)?))),
        }
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            PatternKind::Literal(literal) => f.write_str(literal),
            PatternKind::Exact(origin) => write!(f, "{origin}"),
            PatternKind::Subdomains(origin) => {
                write!(f, "{}://*.{}", origin.scheme, origin.host)?;
                match origin.port {
                    Some(port) => write!(f, ":{port}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why a string is not an origin or origin pattern.
///
/// ```
/// let error = "example.com".parse::<sockjet::origin::OriginPattern>().unwrap_err();
/// assert_eq!(error.to_string(), "invalid origin: expected scheme://host[:port]");
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct InvalidOrigin(&'static str);

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid origin: {}", self.0)
    }
}

impl std::error::Error for InvalidOrigin {}

/// A tuple origin (RFC 6454 §4), normalised: scheme and host in lower case, the port only
/// when it is not the scheme's default.
#[derive(Clone, Debug, Eq, PartialEq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses a serialised origin (RFC 6454 §6.2): `scheme "://" host [ ":" port ]`.
    fn parse(text: &str) -> Result<Self, InvalidOrigin> {
        let (scheme, authority) = text
            .split_once("://")
            .ok_or(InvalidOrigin("expected scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let mut scheme_chars = scheme.bytes();
        if !scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(InvalidOrigin("invalid scheme"));
        }
        let (host, port) = split_port(authority)?;
        let host = host.to_ascii_lowercase();
        if host.starts_with('[') {
            let inside = &host[1..host.len() - 1];
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(InvalidOrigin("invalid IPv6 address"));
            }
        } else if !is_dns_name(&host) {
            return Err(InvalidOrigin("invalid host"));
        }
        let default_port = match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        };
        let port = port.filter(|port| Some(*port) != default_port);
        Ok(Self { scheme, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Splits `host[:port]` (the host may be a bracketed IPv6 address).
fn split_port(authority: &str) -> Result<(&str, Option<u16>), InvalidOrigin> {
    let host_end = if authority.starts_with('[') {
        authority.find(']').ok_or(InvalidOrigin("unclosed ["))? + 1
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    if host.is_empty() {
        return Err(InvalidOrigin("missing host"));
    }
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok((host, None)),
        None => Err(InvalidOrigin("an origin has no path, query or user")),
        Some(port) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => {
            let port = port.parse().map_err(|_| InvalidOrigin("invalid port"))?;
            Ok((host, Some(port)))
        }
        Some(_) => Err(InvalidOrigin("invalid port")),
    }
}

/// Dot-separated labels of letters, digits and hyphens (A-labels: an internationalised
/// name arrives in the `Origin` header as punycode), none empty, no trailing dot.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins_compare_as_serialised() {
        let policy = OriginPolicy::new()
            .allow("https://Example.com")
            .allow("http://localhost:8000");
        assert!(policy.is_allowed(Some("https://example.com")));
        assert!(policy.is_allowed(Some("HTTPS://EXAMPLE.COM:443")));
        assert!(policy.is_allowed(Some("http://localhost:8000")));
        assert!(!policy.is_allowed(Some("http://localhost")));
        assert!(!policy.is_allowed(Some("http://example.com")));
        assert!(!policy.is_allowed(Some("https://example.com.")));
        assert!(!policy.is_allowed(Some("https://example.com/")));
        assert!(!policy.is_allowed(Some("https://example.com@evil.test")));
        assert!(!policy.is_allowed(Some("null")));
        assert!(!policy.is_allowed(Some("")));
    }

    #[test]
    fn patterns_match_whole_labels_only() {
        let policy = OriginPolicy::new().allow("https://*.example.com");
        assert!(policy.is_allowed(Some("https://a.example.com")));
        assert!(policy.is_allowed(Some("https://a.b.example.com")));
        assert!(!policy.is_allowed(Some("https://example.com")));
        assert!(!policy.is_allowed(Some("https://.example.com")));
        assert!(!policy.is_allowed(Some("https://a..example.com")));
        assert!(!policy.is_allowed(Some("https://aexample.com")));
        assert!(!policy.is_allowed(Some("https://a.example.com.evil.test")));
        assert!(!policy.is_allowed(Some("https://evil.com.example.org.attacker")));
        assert!(!policy.is_allowed(Some("http://a.example.com")));
        assert!(!policy.is_allowed(Some("https://a.example.com:8443")));
        let with_port = OriginPolicy::new().allow("https://*.example.com:8443");
        assert!(with_port.is_allowed(Some("https://a.example.com:8443")));
        assert!(!with_port.is_allowed(Some("https://a.example.com")));
    }

    #[test]
    fn ipv6_origins() {
        let policy = OriginPolicy::new().allow("http://[::1]:8080");
        assert!(policy.is_allowed(Some("http://[::1]:8080")));
        assert!(!policy.is_allowed(Some("http://[::2]:8080")));
        assert!("http://[nope]".parse::<OriginPattern>().is_err());
        assert!("http://*.[::1]".parse::<OriginPattern>().is_err());
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://*",
            "https://*.",
            "https://a.*.example.com",
            "https://*example.com",
            "https://example.com/",
            "https://example.com:",
            "https://example.com:99999",
            "https://exa mple.com",
            "1http://example.com",
        ] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad}");
        }
        let pattern: OriginPattern = "HTTPS://*.Example.com:443".parse().unwrap();
        assert_eq!(pattern.to_string(), "https://*.example.com");
    }

    #[test]
    fn missing_origin_is_configurable() {
        assert!(OriginPolicy::new().is_allowed(None));
        assert!(!OriginPolicy::new().allow_missing(false).is_allowed(None));
    }

    #[test]
    fn repeated_or_binary_origin_headers_are_refused() {
        let policy = OriginPolicy::new().allow("https://example.com");
        let request = Request::builder()
            .header("origin", "https://example.com")
            .header("origin", "https://example.com")
            .body(())
            .unwrap();
        assert!(policy.refusal(&request).is_some());
        let request = Request::builder()
            .header(
                "origin",
                http::HeaderValue::from_bytes(b"https://\xffexample.com").unwrap(),
            )
            .body(())
            .unwrap();
        assert!(policy.refusal(&request).is_some());
    }
}
