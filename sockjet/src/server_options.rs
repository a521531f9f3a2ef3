//! The [`ServerBuilder`] options of the server's transport and lifecycle: TLS, connection
//! limits, the handshake timeout, graceful shutdown, and binding a Unix domain socket or
//! serving on a listener bound elsewhere.

use std::{io, time::Duration};

use crate::server::{Server, ServerBuilder};

/// Transport and lifecycle options, kept inside [`ServerBuilder`].
#[derive(Clone, Debug)]
pub(crate) struct ServeOptions {
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::ServerTls>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) retry_after: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            #[cfg(feature = "tls")]
            tls: None,
            max_connections: None,
            max_connections_per_ip: None,
            retry_after: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    pub(crate) fn has_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

impl ServerBuilder {
    /// Serves `wss://`: every accepted connection runs the TLS handshake (in its own task,
    /// within the [handshake timeout](Self::handshake_timeout)) before the WebSocket one.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let tls = sockjet::tls::ServerTls::from_pem_files("cert.pem", "key.pem")?;
    /// let server = sockjet::Server::builder().tls(tls).bind("0.0.0.0:8443").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ServerTls) -> Self {
        self.serving.tls = Some(tls);
        self
    }

    /// Limits the connections open at once, handshakes included (no limit by default).
    ///
    /// A connection over the limit is answered at once with `503 Service Unavailable`,
    /// `Retry-After` (see [`retry_after`](Self::retry_after)) and `Connection: close`,
    /// written from bytes prepared when the server was bound, and closed: it costs no
    /// task, no buffer and no protocol state. Over TLS, where a plain-text answer would be
    /// unreadable and a TLS handshake is the expense the limit avoids, the answer is a TLS
    /// fatal `internal_error` alert instead.
    ///
    /// ```
    /// let builder = sockjet::Server::builder().max_connections(10_000);
    /// # drop(builder);
    /// ```
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.serving.max_connections = Some(limit);
        self
    }

    /// Limits the connections open at once from one client IP address (no limit by
    /// default; IPv4-mapped IPv6 addresses count as their IPv4 address; Unix sockets have
    /// no address and are not counted).
    ///
    /// A connection over the limit is answered with `429 Too Many Requests` (RFC 6585)
    /// and `Retry-After`, then closed, like [`max_connections`](Self::max_connections)
    /// does. 429 rather than 503: the server is fine, this client is over its share, and
    /// load balancers that take 503 as a sign of an unhealthy server must not be misled.
    ///
    /// ```
    /// let builder = sockjet::Server::builder().max_connections_per_ip(32);
    /// # drop(builder);
    /// ```
    pub fn max_connections_per_ip(mut self, limit: usize) -> Self {
        self.serving.max_connections_per_ip = Some(limit);
        self
    }

    /// The `Retry-After` of the answers to refused connections, rounded up to whole
    /// seconds (default 5 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = sockjet::Server::builder().max_connections(100).retry_after(Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.serving.retry_after = delay;
        self
    }

    /// Time allowed for a new connection's TLS handshake and HTTP opening handshake
    /// together (default 10 s). A client that sends nothing, or trickles its request, is
    /// dropped when it expires; it holds its place in
    /// [`max_connections`](Self::max_connections) until then. The HTTP part is also
    /// bounded by [`ConnectionConfig::open_timeout`](crate::ConnectionConfig::open_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = sockjet::Server::builder().handshake_timeout(Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.serving.handshake_timeout = timeout;
        self
    }

    /// Time a graceful shutdown waits for connections to finish their closing handshake
    /// and their handlers to return, before it ends what is left (default 10 s). See
    /// [`Server::serve_with_shutdown`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = sockjet::Server::builder().shutdown_timeout(Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.serving.shutdown_timeout = timeout;
        self
    }

    /// Binds a Unix domain socket at `path` instead of a TCP address. Serving works as over
    /// TCP; [`Connection::peer_addr`](crate::Connection::peer_addr) is `None`. The socket
    /// file is removed when the server stops; binding fails if `path` exists.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound (the path exists, its directory does not, ...).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::builder().bind_unix("/run/app/ws.sock").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(unix)]
    pub async fn bind_unix(self, path: impl AsRef<std::path::Path>) -> io::Result<Server> {
        let listener = crate::listener::Listener::bind_unix(path.as_ref())?;
        Ok(Server::new(listener, self))
    }

    /// Serves on a TCP listener that is already bound and listening, instead of binding
    /// one: for socket options [`bind`](Self::bind) does not set, such as `SO_REUSEPORT`
    /// to share a port between processes (made with `socket2`, then converted with
    /// [`TcpListener::from_std`](tokio::net::TcpListener::from_std)).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let server = sockjet::Server::builder().listener(listener);
    /// println!("listening on {}", server.local_addr());
    /// # Ok(()) }
    /// ```
    pub fn listener(self, listener: tokio::net::TcpListener) -> Server {
        Server::new(crate::listener::Listener::tcp(listener), self)
    }
}
