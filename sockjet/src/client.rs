//! [`connect`] and [`ClientBuilder`]: open a WebSocket to a `ws://` URL.

use std::{net::SocketAddr, sync::Arc};

use http::Uri;
use sockjet_proto::{ClientConfig, ClientProtocol, Event, HandshakeError, Outgoing};
use tokio::{io::AsyncReadExt, net::TcpStream};

use crate::{
    config::ConnectionConfig,
    connection::{Connection, Handshake, HandshakeResponse, Transport},
    error::{Error, ErrorKind},
    server::{start, write_all_outgoing},
    socket::Socket,
};

/// Opens a WebSocket connection to `url` (`ws://host[:port][/path][?query]`) with default
/// options; see [`ClientBuilder`] for others.
///
/// # Errors
///
/// Fails on a bad URL, a refused or timed-out TCP connection, or a failed handshake
/// ([`Error::handshake_error`] tells which; a non-101 answer gives the HTTP status).
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
/// ```no_run
/// # async fn f() -> Result<(), sockjet::Error> {
/// use sockjet::{ClientBuilder, ConnectionConfig};
/// let ws = ClientBuilder::new("ws://127.0.0.1:8765")
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
        }
    }

    /// Sets the connection options (timeouts, keepalive, limits).
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").connection(sockjet::ConnectionConfig::default());
    /// ```
    pub fn connection(mut self, config: ConnectionConfig) -> Self {
        self.connection = config;
        self
    }

    /// Sets the handshake options (headers, origin, subprotocols, user agent).
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h")
    ///     .handshake(sockjet::proto::ClientConfig::default().origin(Some("http://h".into())));
    /// ```
    pub fn handshake(mut self, config: ClientConfig) -> Self {
        self.handshake = config;
        self
    }

    /// Connects over TCP and runs the opening handshake, within the open timeout.
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
        let uri = parse_url(&self.url)?;
        let timeout = self.connection.open_timeout;
        let attempt = self.connect_uri(uri);
        within_open_timeout(timeout, attempt).await
    }

    /// Runs the opening handshake over a transport that is already connected to the
    /// server (a TLS stream, a Unix socket, a proxy tunnel, an in-memory pipe), within the
    /// open timeout. The URL gives the request's path and `Host`.
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
        let uri = parse_url(&self.url)?;
        let timeout = self.connection.open_timeout;
        let attempt = self.handshake_on(Socket::other(transport), &uri, None);
        within_open_timeout(timeout, attempt).await
    }

    async fn connect_uri(self, uri: Uri) -> Result<Connection, Error> {
        let host = uri.host().expect("parse_url checked the host");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr().ok();
        self.handshake_on(Socket::from(stream), &uri, peer).await
    }

    /// Runs the client handshake on an already connected transport.
    async fn handshake_on(
        self,
        mut stream: Socket,
        uri: &Uri,
        peer: Option<SocketAddr>,
    ) -> Result<Connection, Error> {
        let mut config = self.handshake;
        config.protocol = self.connection.protocol.clone();
        let mut proto = ClientProtocol::new(uri, config);
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
                    request,
                    response: HandshakeResponse::Received(response),
                    peer_addr: peer,
                };
                return Ok(start(
                    stream,
                    proto.into_protocol(),
                    Arc::new(self.connection),
                    handshake,
                ));
            }
            if let Some(error) = proto.handshake_error() {
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

/// Checks a WebSocket URL the way [`connect`] does: `ws://host[:port][/path][?query]`.
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`], its source saying why (`wss://` is not supported yet).
///
/// ```
/// let uri = sockjet::parse_url("ws://127.0.0.1:8765/chat").unwrap();
/// assert_eq!(uri.path(), "/chat");
/// assert!(sockjet::parse_url("http://example.com").is_err());
/// ```
pub fn parse_url(url: &str) -> Result<Uri, Error> {
    let invalid =
        |why: &str| Error::new(ErrorKind::InvalidUrl).with_source(format!("{url}: {why}"));
    let uri: Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") => return Err(invalid("wss:// (TLS) is not supported yet")),
        Some(other) => return Err(invalid(&format!("scheme must be ws://, not {other}://"))),
        None => return Err(invalid("missing ws:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("missing host"));
    }
    Ok(uri)
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
        assert!(parse_url("wss://localhost").is_err());
    }
}
