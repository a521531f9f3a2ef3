//! What an application plugs into the engine: a [`Handler`] per worker thread, called with
//! a [`Socket`] for the connection an event concerns.

use sockjet_proto::{
    ApiMisuse, CloseCode, ConnectionClosed, Message, PreparedMessage, Protocol, Request, Response,
    State,
};

/// Identifies a connection within its worker for the connection's life (slot and
/// generation: an id is never reused while a handler could still hold it in a useful way).
///
/// ```
/// use std::collections::HashMap;
/// use sockjet_uring::{ConnectionClosed, Handler, Message, Socket, SocketId};
///
/// /// Counts each connection's messages.
/// #[derive(Default)]
/// struct Counter(HashMap<SocketId, u64>);
///
/// impl Handler for Counter {
///     fn message(&mut self, socket: &mut Socket<'_>, _message: Message) {
///         *self.0.entry(socket.id()).or_default() += 1;
///     }
///     fn closed(&mut self, id: SocketId, _closed: &ConnectionClosed) {
///         self.0.remove(&id);
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// The callbacks of a server. Each worker thread has its own handler (made by the factory
/// given to [`Server::run`](crate::Server::run)), so a handler needs no locking; it runs on
/// the worker's thread and must not block it.
///
/// ```
/// use sockjet_uring::{Handler, Message, Socket};
///
/// /// Sends every message back to its sender.
/// struct Echo;
///
/// impl Handler for Echo {
///     fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
///         let _ = socket.send(message);
///     }
/// }
/// ```
pub trait Handler: 'static {
    /// A request arrived: `Some(response)` answers it instead of opening a WebSocket
    /// (a health check, a redirect, a refusal), and the connection then closes. `None`
    /// (the default) goes on with the handshake. Requests that are not valid WebSocket
    /// handshakes come here only with
    /// [`ServerConfig::deliver_invalid_requests`](sockjet_proto::ServerConfig::deliver_invalid_requests);
    /// otherwise they get their error response at once.
    ///
    /// ```
    /// use sockjet_uring::{Handler, Message, Request, Response, Socket};
    /// use sockjet_uring::http::StatusCode;
    ///
    /// struct Healthy;
    ///
    /// impl Handler for Healthy {
    ///     fn request(&mut self, request: &Request) -> Option<Response> {
    ///         (request.uri().path() == "/healthz").then(|| {
    ///             let mut response = Response::new("ok\n".into());
    ///             *response.status_mut() = StatusCode::OK;
    ///             response
    ///         })
    ///     }
    ///
    ///     fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
    ///         let _ = socket.send(message);
    ///     }
    /// }
    /// ```
    fn request(&mut self, request: &Request) -> Option<Response> {
        let _ = request;
        None
    }

    /// A connection completed its opening handshake.
    fn open(&mut self, socket: &mut Socket<'_>, request: &Request) {
        let _ = (socket, request);
    }

    /// A message arrived (fragments already joined, text already validated as UTF-8).
    fn message(&mut self, socket: &mut Socket<'_>, message: Message);

    /// A connection that was open has ended; `closed` tells how.
    fn closed(&mut self, id: SocketId, closed: &ConnectionClosed) {
        let _ = (id, closed);
    }
}

/// One open connection, lent to a [`Handler`] callback: what it sends is written out, in
/// order, once the callback returns.
///
/// ```
/// use sockjet_uring::{Handler, Message, Socket};
///
/// struct Shout;
///
/// impl Handler for Shout {
///     fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
///         if let Message::Text(text) = message {
///             let _ = socket.send_text(&text.to_uppercase());
///         }
///         if socket.buffered_amount() > 1 << 20 {
///             socket.close(sockjet_uring::CloseCode::POLICY_VIOLATION, "reading too slowly");
///         }
///     }
/// }
/// ```
pub struct Socket<'a> {
    pub(crate) id: SocketId,
    pub(crate) protocol: &'a mut Protocol,
    pub(crate) in_flight: usize,
    /// The connection's socket, for its addresses.
    pub(crate) fd: i32,
}

impl Socket<'_> {
    /// This connection's id.
    pub fn id(&self) -> SocketId {
        self.id
    }

    /// The peer's address: a system call (`getpeername`) each time, since the engine
    /// accepts without asking for it, so ask only when it is needed (logging, limits).
    ///
    /// # Errors
    ///
    /// The socket is no longer connected.
    #[cfg(target_os = "linux")]
    pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        use std::os::fd::FromRawFd as _;
        // SAFETY: `fd` is this connection's open socket, which the engine closes only
        // after the handler's last call for it; ManuallyDrop keeps this borrow from
        // closing it.
        #[allow(unsafe_code)]
        let stream =
            std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.fd) });
        stream.peer_addr()
    }

    /// Sends a message (compressed if permessage-deflate was negotiated).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is closing or closed.
    pub fn send(&mut self, message: impl Into<Message>) -> Result<(), ApiMisuse> {
        self.protocol.send_message(message.into())
    }

    /// Sends a text message, copying `text` once into the output.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is closing or closed.
    pub fn send_text(&mut self, text: &str) -> Result<(), ApiMisuse> {
        self.protocol.send_text(text)
    }

    /// Sends a binary message, copying `data` once into the output.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is closing or closed.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ApiMisuse> {
        self.protocol.send_binary(data)
    }

    /// Sends a message encoded once for many connections (broadcast).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is closing or closed.
    pub fn send_prepared(&mut self, message: &mut PreparedMessage) -> Result<(), ApiMisuse> {
        self.protocol.send_prepared(message)
    }

    /// Sends a ping; the peer's pong is answered by nothing (keepalive is the engine's).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is closing or closed.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ApiMisuse> {
        self.protocol.send_ping(payload)
    }

    /// Starts the closing handshake with `code` and `reason`; does nothing if it has
    /// already started.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.protocol.state() == State::Open {
            let _ = self.protocol.send_close(code, reason);
        }
    }

    /// Bytes queued for this connection and not yet taken by the kernel: how far the peer
    /// is behind (the `bufferedAmount` of browsers' WebSocket).
    pub fn buffered_amount(&mut self) -> usize {
        self.protocol.outgoing().len() + self.in_flight
    }

    /// The connection's protocol state.
    pub fn state(&self) -> State {
        self.protocol.state()
    }
}
