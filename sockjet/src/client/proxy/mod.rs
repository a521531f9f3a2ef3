//! [`Proxy`]: reaching a WebSocket server through an HTTP CONNECT or SOCKS5 proxy.
//!
//! RFC 6455 §4.1: "the client SHOULD use the CONNECT method [through an HTTP proxy]", or
//! a SOCKS5 proxy (RFC 1928). Either way the proxy opens a TCP tunnel to the server and
//! the WebSocket handshake (inside TLS for `wss://`) runs through it end to end.

mod env;
mod http_connect;
mod socks;

use std::fmt;

use http::Uri;
use tokio::net::TcpStream;

use super::target::{Credentials, Target, parse_port};
use crate::error::{Error, ErrorKind};

/// A proxy server: `http://[user:password@]host[:port]` (HTTP CONNECT, RFC 9110 §9.3.6)
/// or `socks5h://` / `socks5://[user:password@]host[:port]` (SOCKS5, RFC 1928, with
/// username/password authentication, RFC 1929).
///
/// The default port is 80 for `http://` and 1080 for SOCKS5. Credentials in the URL are
/// percent-decoded and sent as `Proxy-Authorization: Basic` to an HTTP proxy, or as the
/// SOCKS5 username and password.
///
/// With SOCKS5, the server's host name is sent to the proxy, which resolves it: the
/// client resolves nothing itself (what curl calls `socks5h`). `socks5://` means the same
/// here, so that a name that only the proxy can resolve still works and no DNS query
/// leaks from the client.
///
/// Proxies for a client come from [`ClientBuilder::proxy`](crate::ClientBuilder::proxy),
/// or else from the environment ([`from_env`](Self::from_env)) unless
/// [`ClientBuilder::no_proxy`](crate::ClientBuilder::no_proxy) is set.
///
/// ```
/// use sockjet::{Proxy, ProxyKind};
/// let proxy = Proxy::parse("http://alice:s3cr%40t@proxy.example:3128").unwrap();
/// assert_eq!(proxy.kind(), ProxyKind::Http);
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.example", 3128));
/// assert_eq!(proxy.username(), Some("alice"));
/// // The password never shows.
/// assert_eq!(proxy.to_string(), "http://alice@proxy.example:3128");
/// ```
#[derive(Clone)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

/// The protocol spoken to a [`Proxy`].
///
/// ```
/// assert_ne!(sockjet::ProxyKind::Http, sockjet::ProxyKind::Socks5);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ProxyKind {
    /// An HTTP proxy, asked for a tunnel with `CONNECT`.
    Http,
    /// A SOCKS5 proxy; host names are resolved by the proxy.
    Socks5,
}

impl Proxy {
    /// Parses a proxy URL: `http://`, `socks5h://` or `socks5://`, with optional
    /// `user:password@` and port, and nothing after the host but an optional `/`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`] for another scheme (`https://` proxies, which would need
    /// TLS to the proxy itself, and SOCKS4 are not supported), a missing host, a path or
    /// query, or a user name without a password.
    ///
    /// ```
    /// use sockjet::Proxy;
    /// assert_eq!(Proxy::parse("socks5h://127.0.0.1").unwrap().port(), 1080);
    /// assert!(Proxy::parse("ftp://proxy.example").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::new(ErrorKind::InvalidUrl).with_source(format!("proxy {url:?}: {why}"))
        };
        let uri: Uri = url.trim().parse().map_err(|_| invalid("not a valid URL"))?;
        let (kind, default_port) = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => (ProxyKind::Http, 80),
            Some("socks5" | "socks5h") => (ProxyKind::Socks5, 1080),
            Some("https") => {
                return Err(invalid(
                    "https:// proxies (TLS to the proxy) are not supported; use http://",
                ));
            }
            Some(other) => {
                return Err(invalid(&format!(
                    "scheme {other}:// is not supported (http://, socks5:// or socks5h://)"
                )));
            }
            None => return Err(invalid("missing scheme (http://, socks5:// or socks5h://)")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        if authority.host().is_empty() || authority.host() == "[]" {
            return Err(invalid("missing host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("a proxy URL has no path or query"));
        }
        let credentials = authority
            .as_str()
            .rsplit_once('@')
            .map(|(userinfo, _)| Credentials::from_userinfo(userinfo))
            .transpose()
            .map_err(|why| invalid(&why))?;
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, host_port)| host_port);
        let port = match parse_port(host_port, authority.host()) {
            Ok(port) => port.unwrap_or(default_port),
            Err(()) => return Err(invalid("invalid port")),
        };
        Ok(Self {
            kind,
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            credentials,
        })
    }

    /// The proxy that the environment asks for to reach the WebSocket `url`, as Python
    /// `websockets` (15 and later) chooses it by default; `None` for a direct connection.
    ///
    /// Variables are read in lower case first, then in upper case; an empty one counts
    /// as unset. For `wss://` URLs: `wss_proxy`, `socks_proxy`, `https_proxy`, then
    /// `all_proxy`; for `ws://`: `ws_proxy`, `socks_proxy`, `https_proxy`, `http_proxy`,
    /// then `all_proxy` (a proxy that tunnels with CONNECT serves both). A value without
    /// a scheme means `http://` (`socks5h://` in `socks_proxy`). In a CGI script (when
    /// `REQUEST_METHOD` is set) `HTTP_PROXY` is ignored: a request header could set it
    /// ("httpoxy").
    ///
    /// No proxy is used for:
    /// - `localhost`, `*.localhost` and loopback addresses (`127.0.0.0/8`, `::1`), as Go's
    ///   `net/http` does: a proxy elsewhere cannot reach this machine's loopback;
    /// - hosts matched by `no_proxy`: a comma-separated list where `*` matches every host,
    ///   `example.com` (or `.example.com`, `*.example.com`) matches that host and its
    ///   subdomains, and an entry with a port (`example.com:8443`, `[::1]:8080`) only
    ///   that port. Matching is case-insensitive; IP ranges (CIDR) are not supported.
    ///
    /// Reads the process environment; [`from_env_with`](Self::from_env_with) takes any
    /// lookup function instead (for tests, or a configuration file).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`] if `url` is not a WebSocket URL, or if the chosen
    /// variable is not a valid proxy URL (the error names the variable).
    ///
    /// ```
    /// // Loopback addresses never go through a proxy.
    /// assert!(sockjet::Proxy::from_env("ws://127.0.0.1:8765/").unwrap().is_none());
    /// ```
    pub fn from_env(url: &str) -> Result<Option<Self>, Error> {
        Self::from_env_with(url, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables given by `lookup` instead of the
    /// process environment.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    ///
    /// ```
    /// use sockjet::Proxy;
    /// let vars = |name: &str| match name {
    ///     "https_proxy" => Some("http://proxy.corp:3128".to_owned()),
    ///     "no_proxy" => Some("internal.corp,.local".to_owned()),
    ///     _ => None,
    /// };
    /// let proxy = Proxy::from_env_with("wss://api.example.com/", vars).unwrap().unwrap();
    /// assert_eq!(proxy.host(), "proxy.corp");
    /// assert!(Proxy::from_env_with("ws://db.internal.corp/", vars).unwrap().is_none());
    /// ```
    pub fn from_env_with(
        url: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let target = Target::parse(url)?;
        env::proxy_for(&target, &lookup)
    }

    /// The protocol spoken to the proxy.
    ///
    /// ```
    /// let proxy = sockjet::Proxy::parse("socks5://127.0.0.1:1080").unwrap();
    /// assert_eq!(proxy.kind(), sockjet::ProxyKind::Socks5);
    /// ```
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or IP address (without brackets).
    ///
    /// ```
    /// assert_eq!(sockjet::Proxy::parse("http://[::1]:3128").unwrap().host(), "::1");
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    ///
    /// ```
    /// assert_eq!(sockjet::Proxy::parse("http://proxy.example").unwrap().port(), 80);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name sent to the proxy, if any.
    ///
    /// ```
    /// assert_eq!(sockjet::Proxy::parse("http://proxy.example").unwrap().username(), None);
    /// ```
    pub fn username(&self) -> Option<&str> {
        self.credentials
            .as_ref()
            .map(|credentials| credentials.user.as_str())
    }

    /// Opens a TCP connection to the proxy and asks it for a tunnel to `target`.
    pub(crate) async fn open_tunnel(
        &self,
        target: &Target,
        user_agent: Option<&str>,
    ) -> Result<TcpStream, Error> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| {
                Error::from(std::io::Error::new(
                    error.kind(),
                    format!("cannot reach proxy {self}: {error}"),
                ))
            })?;
        stream.set_nodelay(true)?;
        match self.kind {
            ProxyKind::Http => http_connect::tunnel(stream, self, target, user_agent).await,
            ProxyKind::Socks5 => socks::tunnel(stream, self, target).await,
        }
    }

    fn authority(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Display for Proxy {
    /// The proxy's URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5h",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = self.username() {
            write!(f, "{user}@")?;
        }
        f.write_str(&self.authority())
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Proxy").field(&self.to_string()).finish()
    }
}

/// A proxy that refused, or failed to set up, the tunnel: a [`ErrorKind::Handshake`]
/// failure (trying again will not help), or a network error when the proxy says it could
/// not reach the server.
fn proxy_error(kind: ErrorKind, message: String) -> Error {
    match kind {
        ErrorKind::Io => Error::from(std::io::Error::other(message)),
        kind => Error::new(kind).with_source(message),
    }
}

impl Proxy {
    /// The process environment's proxy for `target`.
    pub(crate) fn from_process_env(target: &Target) -> Result<Option<Self>, Error> {
        env::proxy_for(target, &|name| std::env::var(name).ok())
    }
}
