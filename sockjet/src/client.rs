//! [`connect`] and [`ClientBuilder`]: open a WebSocket to a `ws://` or `wss://` URL.
//!
//! The client's parts, one module each (in `client/`): URL parsing and redirect resolution
//! ([`target`]), redirects ([`redirect`]), proxies ([`proxy`]), opening the byte stream
//! ([`dial`]: TCP, a proxy tunnel or a Unix socket, then TLS), and automatic reconnection
//! ([`reconnect`], [`backoff`]).

mod backoff;
mod dial;
mod options;
mod proxy;
mod reconnect;
mod redirect;
mod target;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use http::Uri;
use sockjet_proto::{ClientConfig, ClientProtocol, Event, HandshakeError, Outgoing};
use tokio::io::AsyncReadExt;

pub use backoff::Backoff;
pub use proxy::{Proxy, ProxyKind};
pub use reconnect::Reconnecting;

use self::{
    redirect::{DEFAULT_MAX_REDIRECTS, Hop},
    target::Target,
};
use crate::{
    config::ConnectionConfig,
    connection::{Connection, Handshake, HandshakeResponse, Transport},
    error::{Error, ErrorKind},
    server::{start, write_all_outgoing},
    socket::Socket,
};

/// Opens a WebSocket connection to `url` (`ws://` or `wss://`
/// `[user:password@]host[:port][/path][?query]`) with default options; see
/// [`ClientBuilder`] for others.
///
/// # Errors
///
/// Fails on a bad URL, a refused or timed-out TCP connection, a failed TLS handshake, or
/// a failed opening handshake ([`Error::handshake_error`] tells which; a non-101 answer
/// gives the HTTP status).
///
/// ```no_run
/// # async fn f() -> Result<(), sockjet::Error> {
/// let mut ws = sockjet::connect("ws://127.0.0.1:8765/chat").await?;
/// ws.send("hello").await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<Connection, Error> {
    ClientBuilder::new(url).connect().await
}

/// Options for a client connection.
///
/// By default a client:
/// - trusts the system's root certificates for `wss://` (see
///   [`ClientTls::native_roots`](crate::tls::ClientTls::native_roots));
/// - sends the credentials of the URL (`ws://user:password@host/`) as
///   `Authorization: Basic` (RFC 7617), percent-decoded, unless an `Authorization`
///   header is set;
/// - follows up to 10 redirects ([`max_redirects`](Self::max_redirects));
/// - uses the proxy the environment asks for ([`Proxy::from_env`]), never for loopback
///   addresses.
///
/// ```no_run
/// # async fn f() -> Result<(), sockjet::Error> {
/// use sockjet::{ClientBuilder, ConnectionConfig};
/// let ws = ClientBuilder::new("wss://example.com/feed")
///     .origin("https://example.com")
///     .subprotocols(["v2.feed", "v1.feed"])
///     .header("Authorization", "Bearer 7f3a")
///     .connection(ConnectionConfig::default().ping_interval(None))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    url: String,
    connection: ConnectionConfig,
    handshake: ClientConfig,
    max_redirects: usize,
    proxy: ProxyChoice,
    #[cfg(unix)]
    unix_socket: Option<PathBuf>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ClientTls>,
    /// The first invalid option given to a builder method, reported by `connect`.
    invalid: Option<String>,
}

/// Where the proxy of a connection comes from.
#[derive(Clone, Debug)]
enum ProxyChoice {
    /// The environment's, as [`Proxy::from_env`].
    FromEnv,
    /// This one.
    Explicit(Proxy),
    /// None.
    Direct,
}

/// What an opening handshake ended with.
enum Opened {
    Connection(Connection),
    /// A redirect to follow, to this `Location`.
    Redirect(String),
}

impl ClientBuilder {
    /// Starts building a connection to `url`.
    ///
    /// ```
    /// let _builder = sockjet::ClientBuilder::new("ws://localhost:8765");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection: ConnectionConfig::default(),
            handshake: ClientConfig::default(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            proxy: ProxyChoice::FromEnv,
            #[cfg(unix)]
            unix_socket: None,
            #[cfg(feature = "tls")]
            tls: None,
            invalid: None,
        }
    }

    /// Sets the connection options (timeouts, keepalive, limits). The open timeout
    /// bounds the whole opening: proxy, TLS, handshake and every redirect.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").connection(sockjet::ConnectionConfig::default());
    /// ```
    pub fn connection(mut self, config: ConnectionConfig) -> Self {
        self.connection = config;
        self
    }

    /// Sets the handshake options (headers, origin, subprotocols, user agent), replacing
    /// those set by [`header`](Self::header), [`origin`](Self::origin),
    /// [`subprotocols`](Self::subprotocols) and [`user_agent`](Self::user_agent).
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h")
    ///     .handshake(sockjet::proto::ClientConfig::default().origin(Some("http://h".into())));
    /// ```
    pub fn handshake(mut self, config: ClientConfig) -> Self {
        self.handshake = config;
        self
    }

    /// Follows at most `count` redirects (301, 302, 303, 307, 308 with a `Location`);
    /// default 10, `0` to follow none (the redirect is then an
    /// [`HandshakeError::UnexpectedStatus`]).
    ///
    /// A relative `Location` is resolved against the current URL. On a hop to another
    /// origin (scheme, host or port), `Authorization`, `Cookie` and the URL's credentials
    /// are dropped; a redirect from `wss://` to `ws://` is refused, as is one to another
    /// origin over a Unix socket. More than `count` redirects fail with an error that
    /// says how many were followed.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").max_redirects(0);
    /// ```
    pub fn max_redirects(mut self, count: usize) -> Self {
        self.max_redirects = count;
        self
    }

    /// Connects through `proxy` (HTTP CONNECT or SOCKS5), whatever the environment says.
    ///
    /// ```
    /// # fn f() -> Result<(), sockjet::Error> {
    /// use sockjet::{ClientBuilder, Proxy};
    /// let _b = ClientBuilder::new("wss://example.com")
    ///     .proxy(Proxy::parse("http://user:pass@127.0.0.1:3128")?);
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyChoice::Explicit(proxy);
        self
    }

    /// Connects directly, ignoring proxy environment variables.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").no_proxy();
    /// ```
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Direct;
        self
    }

    /// Sets the TLS settings of `wss://` connections (trusted certificate authorities,
    /// or a whole rustls configuration). Default: the system's roots.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), sockjet::Error> {
    /// use sockjet::{ClientBuilder, tls::ClientTls};
    /// let _b = ClientBuilder::new("wss://localhost:8443").tls(ClientTls::ca_file("ca.pem")?);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects to the Unix domain socket at `path` instead of the URL's host and port.
    /// The URL still gives the `Host` header, the request target and, for `wss://`, the
    /// TLS server name. No proxy is used.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://localhost/chat").unix_socket("/run/app.sock");
    /// ```
    #[cfg(unix)]
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix_socket = Some(path.into());
        self
    }

    /// Connects to the Unix domain socket at `path` and runs the opening handshake; see
    /// [`unix_socket`](Self::unix_socket).
    ///
    /// # Errors
    ///
    /// See [`connect`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sockjet::Error> {
    /// let ws = sockjet::ClientBuilder::new("ws://localhost/chat")
    ///     .connect_unix("/run/app.sock")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(unix)]
    pub async fn connect_unix(self, path: impl Into<PathBuf>) -> Result<Connection, Error> {
        self.unix_socket(path).connect().await
    }

    /// Connects (over TCP, a proxy tunnel or a Unix socket, then TLS for `wss://`) and
    /// runs the opening handshake, following redirects, within the open timeout.
    ///
    /// # Errors
    ///
    /// See [`connect`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sockjet::Error> {
    /// let ws = sockjet::ClientBuilder::new("ws://127.0.0.1:8765").connect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Connection, Error> {
        let timeout = self.connection.open_timeout;
        within_open_timeout(timeout, self.open()).await
    }

    /// Runs the opening handshake over a transport that is already connected to the
    /// server (a TLS stream, a Unix socket, a proxy tunnel, an in-memory pipe), within the
    /// open timeout. The URL gives the request's path and `Host`. Redirects are not
    /// followed: there is no way to open another transport.
    ///
    /// # Errors
    ///
    /// See [`connect`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sockjet::Error> {
    /// let stream = tokio::net::TcpStream::connect("127.0.0.1:8765").await?;
    /// let ws = sockjet::ClientBuilder::new("ws://127.0.0.1:8765/chat")
    ///     .connect_on(stream)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_on(self, transport: impl Transport) -> Result<Connection, Error> {
        let timeout = self.connection.open_timeout;
        let attempt = async {
            self.check_options()?;
            let hop = Hop::first(Target::parse(&self.url)?, self.handshake.headers.clone());
            match self
                .handshake_on(Socket::other(transport), &hop, None, false)
                .await?
            {
                Opened::Connection(connection) => Ok(connection),
                Opened::Redirect(_) => unreachable!("redirects are not followed here"),
            }
        };
        within_open_timeout(timeout, attempt).await
    }

    /// Opens the connection, following redirects.
    async fn open(&self) -> Result<Connection, Error> {
        self.check_options()?;
        let mut hop = Hop::first(Target::parse(&self.url)?, self.handshake.headers.clone());
        let mut followed = 0;
        loop {
            let (socket, peer) = self.dial(&hop.target).await?;
            let follow = self.max_redirects > 0;
            let location = match self.handshake_on(socket, &hop, peer, follow).await? {
                Opened::Connection(connection) => return Ok(connection),
                Opened::Redirect(location) => location,
            };
            if followed == self.max_redirects {
                return Err(redirect::too_many(followed, &location));
            }
            let origin = hop.target.clone();
            hop.follow(&location)?;
            self.check_redirect_route(&origin, &hop.target)?;
            followed += 1;
        }
    }

    /// A Unix socket reaches one server: a redirect elsewhere cannot be followed on it.
    fn check_redirect_route(&self, from: &Target, to: &Target) -> Result<(), Error> {
        #[cfg(unix)]
        if self.unix_socket.is_some() && !from.same_origin(to) {
            return Err(Error::new(ErrorKind::Handshake).with_source(format!(
                "cannot follow a redirect to another origin ({}) over a Unix socket",
                to.url()
            )));
        }
        let _ = (from, to);
        Ok(())
    }

    /// Runs the client handshake on an already connected transport.
    async fn handshake_on(
        &self,
        mut stream: Socket,
        hop: &Hop,
        peer: Option<SocketAddr>,
        follow_redirects: bool,
    ) -> Result<Opened, Error> {
        let mut config = self.handshake.clone();
        config.headers = hop.request_headers();
        config.protocol = self.connection.protocol.clone();
        let mut proto = ClientProtocol::new(&hop.target.uri, config);
        let request = proto.connect_request();
        proto.send_request(request.clone())?;
        write_all_outgoing(&mut stream, proto.outgoing()).await?;
        loop {
            let read = stream.read_buf(proto.receive_buffer()).await?;
            if read == 0 {
                proto.receive_eof();
            }
            if let Some(Event::Response(response)) = proto.next_event() {
                *proto.outgoing() = Outgoing::default();
                let handshake = Handshake {
                    request: Box::new(request),
                    response: HandshakeResponse::Received(response),
                    peer_addr: peer,
                };
                return Ok(Opened::Connection(start(
                    stream,
                    proto.into_protocol(),
                    Arc::new(self.connection.clone()),
                    handshake,
                )));
            }
            if let Some(error) = proto.handshake_error() {
                let location = proto.failed_response().and_then(redirect::location);
                if let (true, Some(location)) = (follow_redirects, location) {
                    return Ok(Opened::Redirect(location.to_owned()));
                }
                return Err(Error::from(error.clone()));
            }
        }
    }
}

/// Runs an opening `attempt`, failing with [`ErrorKind::Timeout`] after `timeout`.
async fn within_open_timeout(
    timeout: Option<std::time::Duration>,
    attempt: impl std::future::Future<Output = Result<Connection, Error>>,
) -> Result<Connection, Error> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, attempt).await.map_err(|_| {
            Error::new(ErrorKind::Timeout).with_source(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "opening handshake timed out",
            ))
        })?,
        None => attempt.await,
    }
}

/// Checks a WebSocket URL the way [`connect`] does:
/// `ws://` or `wss://` `[user:password@]host[:port][/path][?query]`.
///
/// Returns the URL without its credentials.
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`], its source saying why.
///
/// ```
/// let uri = sockjet::parse_url("ws://127.0.0.1:8765/chat").unwrap();
/// assert_eq!(uri.path(), "/chat");
/// assert_eq!(sockjet::parse_url("wss://user:pw@example.com").unwrap(), "wss://example.com/");
/// assert!(sockjet::parse_url("http://example.com").is_err());
/// ```
pub fn parse_url(url: &str) -> Result<Uri, Error> {
    Target::parse(url).map(|target| target.uri)
}

impl From<&HandshakeError> for Error {
    fn from(error: &HandshakeError) -> Self {
        Error::from(error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("ws://localhost:8765/path?q=1").is_ok());
        assert!(parse_url("wss://localhost").is_ok());
        assert_eq!(
            parse_url("http://localhost").unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
        assert_eq!(
            parse_url("localhost").unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
        assert_eq!(
            parse_url("ws://").unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
    }
}
