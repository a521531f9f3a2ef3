//! [`serve`], [`Server`] and [`ServerBuilder`]: accept TCP connections, run the opening
//! handshake, and hand each WebSocket to a handler task.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
};

use http::HeaderValue;
use sockjet_proto::{ServerConfig, ServerProtocol};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, ToSocketAddrs},
    time::Sleep,
};
use tracing::Instrument;

use crate::{
    config::ConnectionConfig,
    connection::{Connection, Handshake, HandshakeResponse, Shared, Transport},
    driver::Driver,
    error::{Error, ErrorKind},
    hooks::Hooks,
    http_answer::{answer_and_close, linger_close, respond_to},
    listener::{ListenAddr, Listener},
    server_options::ServeOptions,
    socket::Socket,
    tracker::Tracker,
};

/// Serves WebSocket connections on `addr`, calling `handler` for each one in its own task.
///
/// Runs until the listener fails. When the handler returns, the connection is closed with
/// 1000 (if still open). See [`Server`] for options.
///
/// # Errors
///
/// Fails if the address cannot be bound.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     sockjet::serve("127.0.0.1:8765", |mut ws: sockjet::Connection| async move {
///         while let Ok(Some(message)) = ws.recv().await {
///             if ws.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .await
/// }
/// ```
pub async fn serve<H, F>(addr: impl ToSocketAddrs, handler: H) -> io::Result<()>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    Server::bind(addr).await?.serve(handler).await
}

/// Options for a [`Server`].
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use sockjet::{ConnectionConfig, Server};
/// let server = Server::builder()
///     .connection(ConnectionConfig::default().max_message_size(Some(16 << 20)))
///     .bind("127.0.0.1:0")
///     .await?;
/// println!("listening on {}", server.local_addr());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerBuilder {
    /// Shared by every connection, rather than copied into each.
    pub(crate) connection: Arc<ConnectionConfig>,
    pub(crate) handshake: HandshakeSettings,
    /// Request and response hooks, subprotocols (see `hooks.rs`).
    pub(crate) hooks: Hooks,
    /// TLS, limits, timeouts (see `server_options.rs`).
    pub(crate) serving: ServeOptions,
}

/// A server's handshake options, with the `Server` header made a shared value once:
/// cloning the configured string for every connection would cost an allocation each.
#[derive(Clone, Debug)]
pub(crate) struct HandshakeSettings {
    /// The options, without the `Server` header when it is in `server_header`.
    pub(crate) config: ServerConfig,
    pub(crate) server_header: Option<HeaderValue>,
}

impl HandshakeSettings {
    /// A new handshake with these options, the protocol limits coming from `connection`.
    pub(crate) fn server_protocol(
        &self,
        connection: &ConnectionConfig,
        deliver_invalid_requests: bool,
    ) -> ServerProtocol {
        let mut config = self.config.clone();
        config.protocol = connection.protocol.clone();
        config.deliver_invalid_requests |= deliver_invalid_requests;
        let mut proto = ServerProtocol::new(config);
        if let Some(server_header) = &self.server_header {
            proto.set_server_header(Some(server_header.clone()));
        }
        proto
    }

    /// The `Server` header's text, for the plain HTTP answers of hooks.
    pub(crate) fn server_header_text(&self) -> Option<&str> {
        match &self.server_header {
            Some(value) => value.to_str().ok(),
            None => self.config.server_header.as_deref(),
        }
    }
}

impl From<ServerConfig> for HandshakeSettings {
    fn from(mut config: ServerConfig) -> Self {
        // A value that is not a valid header stays in the options, where
        // `ServerProtocol::new` reports it as it always has.
        let server_header = match config.server_header.as_deref().map(HeaderValue::from_str) {
            Some(Ok(value)) => {
                config.server_header = None;
                Some(value)
            }
            _ => None,
        };
        Self {
            config,
            server_header,
        }
    }
}

impl Default for HandshakeSettings {
    fn default() -> Self {
        ServerConfig::default().into()
    }
}

impl ServerBuilder {
    /// Sets the connection options (timeouts, keepalive, limits).
    ///
    /// ```
    /// let builder = sockjet::Server::builder().connection(sockjet::ConnectionConfig::default());
    /// # drop(builder);
    /// ```
    pub fn connection(mut self, config: ConnectionConfig) -> Self {
        self.connection = Arc::new(config);
        self
    }

    /// Sets the handshake options (HTTP head limits). The protocol limits come from
    /// [`connection`](Self::connection), and
    /// [`deliver_invalid_requests`](ServerConfig::deliver_invalid_requests) is always on,
    /// so that [request hooks](crate::hooks) see every well-formed request.
    ///
    /// ```
    /// let builder = sockjet::Server::builder()
    ///     .handshake(sockjet::proto::ServerConfig::default().max_headers(64));
    /// # drop(builder);
    /// ```
    pub fn handshake(mut self, config: ServerConfig) -> Self {
        self.handshake = config.into();
        self
    }

    /// Runs the server side of the opening handshake over a transport that is already
    /// connected to a client (a TLS stream, a Unix socket, a stream accepted by another
    /// server), within the open timeout, and returns the connection. A failed handshake
    /// is answered with its HTTP error before the error is returned.
    ///
    /// # Errors
    ///
    /// The handshake failed, timed out, or the transport failed.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sockjet::Error> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8765").await?;
    /// let (stream, _) = listener.accept().await?;
    /// let ws = sockjet::Server::builder().accept(stream).await?;
    /// # Ok(()) }
    /// ```
    pub async fn accept(&self, transport: impl Transport) -> Result<Connection, Error> {
        let deadline = pin!(self.connection.open_timeout.map(tokio::time::sleep));
        accept_on(Socket::other(transport), None, self, deadline.as_pin_mut())
            .await
            .map(spawn_driver)
    }

    /// Binds the listening socket.
    ///
    /// # Errors
    ///
    /// Fails if the address cannot be bound.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::builder().bind("127.0.0.1:8765").await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server::new(Listener::tcp(listener), self))
    }
}

/// A bound WebSocket server.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let server = sockjet::Server::bind("127.0.0.1:0").await?;
/// let addr = server.local_addr();
/// tokio::spawn(server.serve(|ws| async move { drop(ws) }));
/// println!("ws://{addr}");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    pub(crate) listener: Listener,
    pub(crate) settings: Arc<ServerBuilder>,
    pub(crate) tracker: Arc<Tracker>,
}

impl Server {
    /// Starts building a server with options.
    ///
    /// ```
    /// let _builder = sockjet::Server::builder();
    /// ```
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Binds a server with default options.
    ///
    /// # Errors
    ///
    /// Fails if the address cannot be bound.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::bind("127.0.0.1:8765").await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        ServerBuilder::default().bind(addr).await
    }

    /// The TCP address the server listens on (useful after binding port 0). For a server
    /// on a Unix socket ([`ServerBuilder::bind_unix`]), which has no TCP address, this is
    /// `0.0.0.0:0`: use [`listen_addr`](Self::listen_addr) there.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::bind("127.0.0.1:0").await?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        match self.listen_addr() {
            ListenAddr::Tcp(addr) => addr,
            _ => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Accepts connections forever, running `handler` for each WebSocket in its own task.
    /// A failed handshake is answered with its HTTP error and never reaches the handler.
    /// A [`ShutdownHandle`](crate::ShutdownHandle) can stop it gracefully; see
    /// [`serve_with_shutdown`](Self::serve_with_shutdown).
    ///
    /// # Errors
    ///
    /// Returns only if accepting fails in a way that cannot be retried.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// sockjet::Server::bind("127.0.0.1:8765").await?
    ///     .serve(|ws| async move { let _ = ws.send("hello").await; })
    ///     .await
    /// # }
    /// ```
    pub async fn serve<H, F>(self, handler: H) -> io::Result<()>
    where
        H: Fn(Connection) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        self.serve_with_shutdown(handler, std::future::pending())
            .await
    }
}

/// Runs the server side of the opening handshake on any transport, failing with a
/// timeout when `deadline` (if any) passes, then starts the connection; its driver is the
/// caller's to run.
pub(crate) async fn accept_on(
    mut stream: Socket,
    peer: Option<SocketAddr>,
    settings: &ServerBuilder,
    deadline: Option<Pin<&mut Sleep>>,
) -> Result<(Connection, Driver), Error> {
    let mut proto = settings
        .handshake
        .server_protocol(&settings.connection, true);
    // What this future holds across an `.await` is in every handshake's state: the rare
    // paths (hooks, refusals) box theirs or hold little.
    let exchange = async {
        let mut request = loop {
            let read = stream.read_buf(proto.receive_buffer()).await?;
            if read == 0 {
                proto.receive_eof();
            }
            if let Some(request) = proto.take_request() {
                break request;
            }
            if let Some(error) = proto.handshake_error() {
                let error = error.clone();
                // The core wrote the HTTP error response; deliver it, then close.
                answer_and_close(&mut stream, proto.outgoing()).await?;
                return Err(Error::from(error));
            }
        };
        let hooks = &settings.hooks;
        let answered = match hooks.run_request_hooks_now(&mut request, peer) {
            Ok(answered) => answered,
            Err(()) => Box::pin(hooks.run_request_hooks(&mut request, peer)).await,
        };
        let server_header = settings.handshake.server_header_text();
        request = match respond_to(hooks, server_header, &mut proto, request, answered) {
            Ok(request) => request,
            Err(refusal) => {
                answer_and_close(&mut stream, proto.outgoing()).await?;
                return Err(refusal);
            }
        };
        // Keep the response as the bytes sent: parsed headers would cost a few times more
        // for every connection, and few handlers look at them. Taken from the output
        // queue as they are, neither copied nor frozen (a frozen buffer allocates the
        // header that shares it).
        let head = proto.outgoing().take_all();
        stream.write_all(&head).await?;
        stream.flush().await?;
        Ok((request, HandshakeResponse::sent(head)))
    };
    let outcome = match deadline {
        Some(deadline) => within(deadline, exchange).await,
        None => exchange.await,
    };
    let (request, response) = match outcome {
        Ok(exchanged) => exchanged,
        Err(error) => {
            if proto.close_expected() {
                // An HTTP answer was sent: close without a reset, in the background.
                tokio::spawn(linger_close(stream).in_current_span());
            }
            return Err(error);
        }
    };
    let handshake = Handshake {
        request,
        response,
        peer_addr: peer,
    };
    Ok(start_with_driver(
        stream,
        proto.into_protocol(),
        settings.connection.clone(),
        handshake,
    ))
}

pin_project_lite::pin_project! {
    /// Runs `work` until it completes or `deadline` passes, which fails it with a
    /// timeout. Unlike `tokio::time::timeout`, the timer is the caller's, to be reused
    /// afterwards; a struct rather than an `async fn`, whose argument and local would each
    /// hold `work`.
    pub(crate) struct Within<'a, F> {
        #[pin]
        work: F,
        deadline: Pin<&'a mut Sleep>,
    }
}

/// See [`Within`].
pub(crate) fn within<F>(deadline: Pin<&mut Sleep>, work: F) -> Within<'_, F> {
    Within { work, deadline }
}

impl<T, F: Future<Output = Result<T, Error>>> Future for Within<'_, F> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.work.poll(cx) {
            return Poll::Ready(outcome);
        }
        this.deadline
            .as_mut()
            .poll(cx)
            .map(|()| Err(Error::new(ErrorKind::Timeout)))
    }
}

pub(crate) async fn write_all_outgoing<T: Transport>(
    stream: &mut T,
    outgoing: &mut sockjet_proto::Outgoing,
) -> io::Result<()> {
    while !outgoing.is_empty() {
        stream.write_buf(outgoing).await?;
    }
    stream.flush().await
}

/// Wraps an open protocol in a connection and spawns its driver.
pub(crate) fn start(
    stream: Socket,
    proto: sockjet_proto::Protocol,
    config: Arc<ConnectionConfig>,
    handshake: Handshake,
) -> Connection {
    spawn_driver(start_with_driver(stream, proto, config, handshake))
}

/// Wraps an open protocol in a connection and returns its driver, for the caller to run.
pub(crate) fn start_with_driver(
    stream: Socket,
    proto: sockjet_proto::Protocol,
    config: Arc<ConnectionConfig>,
    handshake: Handshake,
) -> (Connection, Driver) {
    let shared = Shared::new(stream, proto, config, handshake);
    let driver = Driver::new(shared.clone());
    (Connection::new(shared), driver)
}

/// Runs `driver` as a task of its own.
pub(crate) fn spawn_driver((connection, driver): (Connection, Driver)) -> Connection {
    tokio::spawn(driver.in_current_span());
    connection
}
