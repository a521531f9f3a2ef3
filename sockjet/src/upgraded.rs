//! WebSockets over streams that another HTTP server upgraded.
//!
//! [`ServerBuilder::upgrade`] answers an opening handshake request that hyper (or any HTTP
//! stack) parsed, so that WebSocket and HTTP share one port: the HTTP server sends the
//! response sockjet builds, then hands over the upgraded stream, and
//! [`PendingUpgrade::finish`] runs the connection on it. [`Connection::from_upgraded`]
//! runs a connection over a stream whose handshake happened somewhere else entirely.

use std::{fmt, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use sockjet_proto::{HandshakeError, Protocol, Request, Response, ServerProtocol, Side};
use tokio::net::TcpStream;

use crate::{
    config::ConnectionConfig,
    connection::{Connection, Handshake, HandshakeResponse, Transport},
    server::{ServerBuilder, start},
    socket::Socket,
};

impl ServerBuilder {
    /// Checks an HTTP/1.1 WebSocket upgrade request that another HTTP server parsed (RFC
    /// 6455 §4.2.1, the same rules as [`accept`](Self::accept)) and negotiates
    /// permessage-deflate with this builder's options. The request's body is not looked
    /// at, nor its extensions copied.
    ///
    /// # Errors
    ///
    /// The response that refuses an invalid request: 400 (bad `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key`, ...), 405 (not GET), 426 with `Sec-WebSocket-Version: 13`
    /// (version other than 13) or 505 (not HTTP/1.1). Send it as it is.
    ///
    /// ```
    /// use sockjet::proto::http::{Request, StatusCode};
    /// let builder = sockjet::Server::builder();
    /// let request = Request::get("/chat")
    ///     .header("Host", "example.com")
    ///     .header("Upgrade", "websocket")
    ///     .header("Connection", "Upgrade")
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let upgrade = builder.upgrade(&request).unwrap();
    /// let (response, _pending) = upgrade.respond().unwrap();
    /// assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    ///
    /// let plain = Request::get("/chat").header("Host", "example.com").body(()).unwrap();
    /// assert_eq!(builder.upgrade(&plain).unwrap_err().status(), StatusCode::BAD_REQUEST);
    /// ```
    #[allow(clippy::result_large_err)] // The error is the response to send.
    pub fn upgrade<B>(&self, request: &http::Request<B>) -> Result<Upgrade, Response> {
        let head = head_of(request);
        let mut proto = self.server_protocol();
        let received = proto.receive_parsed_request(&head);
        self.prepare(proto, head, received)
    }

    /// Checks an extended CONNECT request (RFC 8441, WebSockets over HTTP/2) that another
    /// HTTP server parsed. `protocol` is its `:protocol` pseudo-header, which must be
    /// `websocket` (hyper keeps it in the `hyper::ext::Protocol` request extension). The
    /// response accepting it is a `200 OK`.
    ///
    /// # Errors
    ///
    /// As [`upgrade`](Self::upgrade): the response refusing the request.
    ///
    /// ```
    /// use sockjet::proto::http::{Method, Request, StatusCode, Version};
    /// let request = Request::builder()
    ///     .method(Method::CONNECT)
    ///     .version(Version::HTTP_2)
    ///     .uri("https://example.com/chat")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let builder = sockjet::Server::builder();
    /// let upgrade = builder.upgrade_extended_connect(&request, Some("websocket")).unwrap();
    /// assert_eq!(upgrade.response().status(), StatusCode::OK);
    /// ```
    #[allow(clippy::result_large_err)] // The error is the response to send.
    pub fn upgrade_extended_connect<B>(
        &self,
        request: &http::Request<B>,
        protocol: Option<&str>,
    ) -> Result<Upgrade, Response> {
        let head = head_of(request);
        let mut proto = self.server_protocol();
        let received = proto.receive_extended_connect(&head, protocol);
        self.prepare(proto, head, received)
    }

    /// A new handshake with this builder's options, the protocol limits coming from the
    /// connection options.
    fn server_protocol(&self) -> ServerProtocol {
        self.handshake.server_protocol(&self.connection, false)
    }

    #[allow(clippy::result_large_err)]
    fn prepare(
        &self,
        proto: ServerProtocol,
        request: Request,
        received: Result<(), HandshakeError>,
    ) -> Result<Upgrade, Response> {
        if let Err(error) = received {
            tracing::debug!(%error, "upgrade request refused");
            return Err(proto.error_response(&error));
        }
        let response = proto.accept(&request);
        Ok(Upgrade {
            proto,
            request,
            response,
            config: self.connection.clone(),
            peer_addr: None,
        })
    }
}

/// A valid upgrade request and the response that accepts it, still editable: add a
/// `Sec-WebSocket-Protocol`, a cookie, or turn it into a refusal. [`respond`] fixes it.
///
/// Made by [`ServerBuilder::upgrade`] or [`ServerBuilder::upgrade_extended_connect`].
///
/// [`respond`]: Self::respond
///
/// ```
/// # use sockjet::proto::http::{Request, header};
/// # let request = Request::get("/chat").header("Host", "h").header("Upgrade", "websocket")
/// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
/// #     .header("Sec-WebSocket-Version", "13").header("Sec-WebSocket-Protocol", "chat")
/// #     .body(()).unwrap();
/// let mut upgrade = sockjet::Server::builder().upgrade(&request).unwrap();
/// upgrade
///     .response_mut()
///     .headers_mut()
///     .insert(header::SEC_WEBSOCKET_PROTOCOL, "chat".parse().unwrap());
/// let (response, pending) = upgrade.respond().unwrap();
/// assert_eq!(response.headers()[header::SEC_WEBSOCKET_PROTOCOL], "chat");
/// # drop(pending);
/// ```
pub struct Upgrade {
    proto: ServerProtocol,
    request: Request,
    response: Response,
    config: Arc<ConnectionConfig>,
    peer_addr: Option<SocketAddr>,
}

impl Upgrade {
    /// The request being answered (method, URI, version and headers).
    ///
    /// ```
    /// # fn f(upgrade: &sockjet::Upgrade) { println!("{}", upgrade.request().uri().path()); }
    /// ```
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The response that accepts the request: `101 Switching Protocols` (`200 OK` for an
    /// extended CONNECT).
    ///
    /// ```
    /// # fn f(upgrade: &sockjet::Upgrade) { println!("{}", upgrade.response().status()); }
    /// ```
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The response, to edit before [`respond`](Self::respond). Removing its
    /// `Sec-WebSocket-Extensions` header refuses compression; a status other than 101 (2xx
    /// for an extended CONNECT) refuses the connection.
    ///
    /// ```
    /// # fn f(mut upgrade: sockjet::Upgrade) {
    /// use sockjet::proto::http::header::SET_COOKIE;
    /// upgrade.response_mut().headers_mut().insert(SET_COOKIE, "seen=1".parse().unwrap());
    /// # }
    /// ```
    pub fn response_mut(&mut self) -> &mut Response {
        &mut self.response
    }

    /// Sets the client's address, for [`Connection::peer_addr`]; the HTTP server knows it.
    ///
    /// ```
    /// # fn f(mut upgrade: sockjet::Upgrade) {
    /// upgrade.set_peer_addr(Some("127.0.0.1:50000".parse().unwrap()));
    /// # }
    /// ```
    pub fn set_peer_addr(&mut self, addr: Option<SocketAddr>) {
        self.peer_addr = addr;
    }

    /// Fixes the response. Send the returned response through the HTTP server; once it
    /// hands over the upgraded stream, [`PendingUpgrade::finish`] opens the connection.
    ///
    /// # Errors
    ///
    /// If [`response_mut`](Self::response_mut) turned the response into a refusal, that
    /// response, to send as it is.
    ///
    /// ```
    /// # fn f(upgrade: sockjet::Upgrade) {
    /// match upgrade.respond() {
    ///     Ok((response, pending)) => { /* send response, then pending.finish(stream) */ }
    ///     Err(refusal) => { /* send refusal */ }
    /// }
    /// # }
    /// ```
    #[allow(clippy::result_large_err)] // The error is the response to send.
    pub fn respond(mut self) -> Result<(Response, PendingUpgrade), Response> {
        self.proto
            .send_response(self.response.clone())
            .expect("a request received by upgrade() is answered once");
        if self.proto.state() != sockjet_proto::State::Open {
            return Err(self.response);
        }
        let pending = PendingUpgrade {
            protocol: self.proto.into_protocol(),
            config: self.config,
            handshake: Handshake {
                request: Box::new(self.request),
                // Kept parsed: the HTTP server writes it, sockjet never has its bytes.
                response: HandshakeResponse::Received(Box::new(self.response.clone())),
                peer_addr: self.peer_addr,
            },
        };
        Ok((self.response, pending))
    }
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade")
            .field("request", &self.request)
            .field("response", &self.response)
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

/// An accepted upgrade, waiting for the HTTP server to hand over the upgraded stream.
///
/// ```no_run
/// # async fn f(pending: sockjet::PendingUpgrade, stream: tokio::net::TcpStream) {
/// let mut ws = pending.finish(stream);
/// while let Ok(Some(message)) = ws.recv().await {
///     let _ = ws.send(message).await;
/// }
/// # }
/// ```
pub struct PendingUpgrade {
    protocol: Protocol,
    config: Arc<ConnectionConfig>,
    handshake: Handshake,
}

impl PendingUpgrade {
    /// The handshake request.
    ///
    /// ```
    /// # fn f(pending: &sockjet::PendingUpgrade) { println!("{}", pending.request().uri()); }
    /// ```
    pub fn request(&self) -> &Request {
        &self.handshake.request
    }

    /// Opens the connection on the upgraded stream and starts its driver task. Call it
    /// within a tokio runtime. Bytes the HTTP server read past the request head must come
    /// first out of `transport` (hyper's `Upgraded` does that).
    ///
    /// ```no_run
    /// # async fn f(pending: sockjet::PendingUpgrade, stream: tokio::io::DuplexStream) {
    /// let ws = pending.finish(stream);
    /// println!("{} open", ws.path());
    /// # }
    /// ```
    pub fn finish(self, transport: impl Transport) -> Connection {
        start(
            Socket::other(transport),
            self.protocol,
            self.config,
            self.handshake,
        )
    }

    /// Opens the connection on the TCP stream under the upgrade, for sockjet's TCP fast
    /// path (reads wait for readiness, idle connections hold no buffer). `read_ahead` are
    /// the bytes the HTTP server read past the request head (hyper's `Parts::read_buf`).
    /// The peer address comes from the socket if none was set.
    ///
    /// ```no_run
    /// # async fn f(pending: sockjet::PendingUpgrade, stream: tokio::net::TcpStream) {
    /// let ws = pending.finish_tcp(stream, sockjet::Bytes::new());
    /// # }
    /// ```
    pub fn finish_tcp(mut self, stream: TcpStream, read_ahead: Bytes) -> Connection {
        if self.handshake.peer_addr.is_none() {
            self.handshake.peer_addr = stream.peer_addr().ok();
        }
        // Upgraded streams carry small, latency-bound frames, as in `Server`.
        let _ = stream.set_nodelay(true);
        if !read_ahead.is_empty() {
            self.protocol.receive_data(&read_ahead);
        }
        start(
            Socket::from(stream),
            self.protocol,
            self.config,
            self.handshake,
        )
    }
}

impl fmt::Debug for PendingUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingUpgrade")
            .field("request", &self.handshake.request)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Runs a WebSocket over a stream whose opening handshake happened elsewhere (a
    /// stream another library upgraded, or a test pipe): as tokio-tungstenite's
    /// `WebSocketStream::from_raw_socket`. `side` says which end this is (a client masks
    /// its frames, RFC 6455 §5.3). No extension is in use; for one that was negotiated,
    /// use [`from_protocol`](Self::from_protocol).
    ///
    /// [`request`](Self::request) is then an empty `GET /`, [`response`](Self::response)
    /// an empty 101, and there is no subprotocol or peer address. Call it within a tokio
    /// runtime: it starts the connection's driver task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockjet::Error> {
    /// use sockjet::{Connection, ConnectionConfig, proto::Side};
    /// let (a, b) = tokio::io::duplex(64 * 1024);
    /// let client = Connection::from_upgraded(a, Side::Client, ConnectionConfig::default());
    /// let mut server = Connection::from_upgraded(b, Side::Server, ConnectionConfig::default());
    /// client.send("hi").await?;
    /// assert_eq!(server.recv().await?.unwrap().as_text(), Some("hi"));
    /// # Ok(()) }
    /// ```
    pub fn from_upgraded(
        transport: impl Transport,
        side: Side,
        config: ConnectionConfig,
    ) -> Connection {
        let protocol = Protocol::new(side, config.protocol.clone());
        Self::from_protocol(transport, protocol, config)
    }

    /// Runs a WebSocket over a stream with an open [`Protocol`] that the caller set up:
    /// its side, limits and any negotiated extension (see
    /// [`Protocol::enable_permessage_deflate`]). The protocol limits of `config` are not
    /// used; its timeouts, keepalive and queue sizes are. Otherwise as
    /// [`from_upgraded`](Self::from_upgraded).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use sockjet::proto::{Config, DeflateConfig, DeflateParams, PerMessageDeflate, Protocol, Side};
    /// let mut protocol = Protocol::new(Side::Server, Config::default());
    /// let deflate = PerMessageDeflate::new(Side::Server, DeflateParams::default(), &DeflateConfig::default());
    /// protocol.enable_permessage_deflate(deflate);
    /// let (stream, _peer) = tokio::io::duplex(4096);
    /// let ws = sockjet::Connection::from_protocol(stream, protocol, Default::default());
    /// assert!(ws.is_compressed());
    /// # }
    /// ```
    pub fn from_protocol(
        transport: impl Transport,
        protocol: Protocol,
        config: ConnectionConfig,
    ) -> Connection {
        let mut response = Response::default();
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        let handshake = Handshake {
            request: Box::default(),
            response: HandshakeResponse::Received(Box::new(response)),
            peer_addr: None,
        };
        start(
            Socket::other(transport),
            protocol,
            Arc::new(config),
            handshake,
        )
    }
}

/// The request without its body: method, URI, version and headers.
fn head_of<B>(request: &http::Request<B>) -> Request {
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    head
}
