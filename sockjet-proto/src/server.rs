//! [`ServerProtocol`]: the server side of the opening handshake (RFC 6455 §4.2), then the
//! open connection.

mod upgrade;
mod validate;

use std::mem;

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};

use crate::{
    config::ServerConfig,
    error::{ApiMisuse, HandshakeError},
    extension::permessage_deflate::{DeflateParams, PerMessageDeflate},
    handshake::{
        self, HeadLimits, HeadParser, Request, Response, parse_request, trim_ows, validate_key,
        write_response,
    },
    outgoing::Outgoing,
    protocol::{Event, Protocol, Side, State},
};

use upgrade::RequestSource;
use validate::validate_request;

/// The server end of a connection, from the first byte of the HTTP request to the end.
///
/// It reads the opening handshake request and checks it against RFC 6455 §4.2.1. An
/// invalid request never reaches the application: the core answers it with the matching
/// HTTP error (400, 405, 414, 426, 431, 505), records [`handshake_error`] and closes
/// (unless [`ServerConfig::deliver_invalid_requests`] asks to see well-formed HTTP
/// requests that are not handshakes: then they come out as [`Event::Request`] too, and
/// [`request_error`] says what is wrong with them). A
/// valid one comes out of [`next_event`] as [`Event::Request`]; the application answers it
/// with [`send_response`], passing [`accept`] (possibly edited: cookies, a subprotocol) or
/// [`reject`]. After a 101 the connection is open and every method forwards to the inner
/// [`Protocol`], which also receives any bytes that arrived behind the request head.
///
/// The call order is the one of [`Protocol`]: `receive_*`, then `next_event` until `None`,
/// then write [`outgoing`] and half-close if [`eof_to_send`].
///
/// [`handshake_error`]: Self::handshake_error
/// [`request_error`]: Self::request_error
/// [`next_event`]: Self::next_event
/// [`send_response`]: Self::send_response
/// [`accept`]: Self::accept
/// [`reject`]: Self::reject
/// [`outgoing`]: Self::outgoing
/// [`eof_to_send`]: Self::eof_to_send
///
/// ```
/// use sockjet_proto::{Event, Message, ServerConfig, ServerProtocol, State};
///
/// let mut server = ServerProtocol::new(ServerConfig::default());
/// server.receive_data(
///     b"GET /chat HTTP/1.1\r\n\
///       Host: example.com\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///       Sec-WebSocket-Version: 13\r\n\r\n",
/// );
/// let Some(Event::Request(request)) = server.next_event() else { panic!() };
/// assert_eq!(request.uri().path(), "/chat");
/// let response = server.accept(&request);
/// server.send_response(response).unwrap();
/// assert_eq!(server.state(), State::Open);
///
/// let mut wire = Vec::new();
/// server.outgoing().drain_into(&mut wire);
/// assert!(wire.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
///
/// // A masked text frame "Hi" from the client.
/// server.receive_data(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
/// assert_eq!(server.next_event(), Some(Event::Message(Message::text("Hi"))));
/// ```
#[derive(Debug)]
pub struct ServerProtocol {
    /// Runs the connection once the handshake succeeded. Before that it only collects
    /// [`outgoing`](Self::outgoing) bytes: nothing is sent through it.
    protocol: Protocol,
    phase: Phase,
    head_parser: HeadParser,
    /// Bytes received during the handshake: the request head, then (once the head was
    /// split off) whatever the client sent behind it.
    input: BytesMut,
    server_header: Option<HeaderValue>,
    /// The valid request, until `next_event` returns it.
    /// Boxed from the parse on: it moves through the driver and into the connection,
    /// and every move would copy its 224 bytes.
    pending_request: Option<Box<Request>>,
    handshake_error: Option<HandshakeError>,
    /// Deliver well-formed requests that are not valid handshakes (see
    /// [`ServerConfig::deliver_invalid_requests`]).
    deliver_invalid_requests: bool,
    /// What is wrong with the request delivered, if it is not a valid handshake.
    request_error: Option<HandshakeError>,
    subprotocol: Option<String>,
    /// permessage-deflate parameters agreed with the request's offer, and the response
    /// header value that announces them.
    negotiated_deflate: Option<(DeflateParams, String)>,
    eof_received: bool,
    /// An EOF was queued by the handshake (after an error response or a rejection).
    eof_queued: bool,
    /// That EOF has not been collected by [`eof_to_send`](Self::eof_to_send) yet.
    eof_pending: bool,
    /// Where the request came from: the bytes of [`receive_data`](Self::receive_data), or
    /// another HTTP server (see [`receive_parsed_request`](Self::receive_parsed_request)).
    source: RequestSource,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the end of the request head.
    ReadingRequest,
    /// The request is valid; the application answers it with `send_response`.
    RequestReceived,
    /// A 101 was sent: `protocol` runs the connection.
    Open,
    /// The handshake failed or was rejected; input is ignored.
    Closed,
}

impl ServerProtocol {
    /// Creates the server end of a new TCP (or TLS) connection, in [`State::Connecting`].
    ///
    /// # Panics
    ///
    /// If [`ServerConfig::server_header`] is not a valid header value (it contains control
    /// characters).
    ///
    /// ```
    /// use sockjet_proto::{ServerConfig, ServerProtocol, State};
    /// let server = ServerProtocol::new(ServerConfig::default());
    /// assert_eq!(server.state(), State::Connecting);
    /// ```
    pub fn new(config: ServerConfig) -> Self {
        // The value takes over the string's memory instead of copying it.
        let server_header = config.server_header.map(|value| {
            HeaderValue::from_maybe_shared(Bytes::from(value))
                .expect("ServerConfig::server_header is a header value")
        });
        Self {
            protocol: Protocol::new(Side::Server, config.protocol),
            phase: Phase::ReadingRequest,
            head_parser: HeadParser::new(HeadLimits {
                max_start_line: config.max_request_line,
                max_header_bytes: config.max_header_bytes,
                max_headers: config.max_headers,
            }),
            input: BytesMut::with_capacity(INITIAL_CAPACITY),
            server_header,
            pending_request: None,
            handshake_error: None,
            deliver_invalid_requests: config.deliver_invalid_requests,
            request_error: None,
            subprotocol: None,
            negotiated_deflate: None,
            eof_received: false,
            eof_queued: false,
            eof_pending: false,
            source: RequestSource::Wire,
        }
    }

    /// Replaces the value of the `Server` header that responses carry (`None`: no such
    /// header). A server that makes a `ServerProtocol` per connection can configure it
    /// without one (`server_header(None)`) and set a value it keeps, whose clones share
    /// its bytes, instead of having each connection copy the configured string.
    ///
    /// ```
    /// use sockjet_proto::{ServerConfig, ServerProtocol, http::HeaderValue};
    /// let shared = HeaderValue::from_static("example/1");
    /// let mut server = ServerProtocol::new(ServerConfig::default().server_header(None));
    /// server.set_server_header(Some(shared.clone()));
    /// ```
    pub fn set_server_header(&mut self, value: Option<HeaderValue>) {
        self.server_header = value;
    }

    // ----- getters -----

    /// The connection state: [`State::Connecting`] until a response is sent, then the
    /// inner [`Protocol`]'s state after a 101, or [`State::Closed`] after an error or a
    /// rejection.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol, State};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_eof();
    /// assert_eq!(server.state(), State::Closed);
    /// ```
    pub fn state(&self) -> State {
        match self.phase {
            Phase::ReadingRequest | Phase::RequestReceived => State::Connecting,
            Phase::Open => self.protocol.state(),
            Phase::Closed => State::Closed,
        }
    }

    /// Why the opening handshake failed, if the client's request was invalid or the
    /// connection ended before it was complete. `None` after an explicit
    /// [`reject`](Self::reject).
    ///
    /// ```
    /// use sockjet_proto::{HandshakeError, ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n");
    /// assert_eq!(server.next_event(), None);
    /// assert_eq!(server.handshake_error(), Some(&HandshakeError::MethodNotAllowed));
    /// ```
    pub fn handshake_error(&self) -> Option<&HandshakeError> {
        self.handshake_error.as_ref()
    }

    /// Why the request delivered by [`next_event`](Self::next_event) is not a valid
    /// opening handshake, with [`ServerConfig::deliver_invalid_requests`] set; `None` for
    /// a valid one. The application may answer such a request as plain HTTP (any status
    /// but 101); [`accept`](Self::accept) answers it with this error. Once the response is
    /// sent, the error moves to [`handshake_error`](Self::handshake_error).
    ///
    /// ```
    /// use sockjet_proto::{Event, HandshakeError, ServerConfig, ServerProtocol};
    /// use sockjet_proto::http::StatusCode;
    /// let config = ServerConfig::default().deliver_invalid_requests(true);
    /// let mut server = ServerProtocol::new(config);
    /// server.receive_data(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    /// let Some(Event::Request(request)) = server.next_event() else { panic!() };
    /// assert_eq!(request.uri().path(), "/healthz");
    /// assert_eq!(server.request_error(), Some(&HandshakeError::MissingHeader("Upgrade")));
    /// let mut ok = sockjet_proto::Response::new("ok".into());
    /// *ok.status_mut() = StatusCode::OK;
    /// server.send_response(ok).unwrap();
    /// assert!(server.eof_to_send());
    /// ```
    pub fn request_error(&self) -> Option<&HandshakeError> {
        self.request_error.as_ref()
    }

    /// The subprotocol of the 101 response that was sent (its `Sec-WebSocket-Protocol`
    /// header), if any.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// assert_eq!(ServerProtocol::new(ServerConfig::default()).subprotocol(), None);
    /// ```
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Bytes received and not yet turned into events (see [`Protocol::buffered_len`]).
    /// During the handshake, the part of the head read so far and what followed it. A
    /// driver stops reading while this is large and the application is not taking events.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(b"GET / HTTP/1.1\r\n");
    /// assert_eq!(server.buffered_len(), 16);
    /// ```
    pub fn buffered_len(&self) -> usize {
        match self.phase {
            Phase::Open => self.protocol.buffered_len(),
            _ => self.input.len(),
        }
    }

    /// The inner connection, for its getters (such as
    /// [`close_error`](Protocol::close_error)).
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let server = ServerProtocol::new(ServerConfig::default());
    /// assert_eq!(server.protocol().close_error(), None);
    /// ```
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The inner connection, to send messages once open. Do not send anything before the
    /// 101 response: it would reach the client ahead of the response.
    ///
    /// ```
    /// # use sockjet_proto::{Event, ServerConfig, ServerProtocol, State};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(
    ///     b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    /// );
    /// let Some(Event::Request(request)) = server.next_event() else { panic!() };
    /// server.send_response(server.accept(&request)).unwrap();
    /// assert_eq!(server.state(), State::Open);
    /// server.protocol_mut().send_text("welcome").unwrap();
    /// ```
    pub fn protocol_mut(&mut self) -> &mut Protocol {
        &mut self.protocol
    }

    /// Hands over the open connection, for a driver that no longer needs the handshake
    /// (the request and response were kept by the application).
    ///
    /// Call it only once a 101 response was sent; a debug build panics otherwise.
    ///
    /// ```
    /// use sockjet_proto::{Event, ServerConfig, ServerProtocol, State};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(
    ///     b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    /// );
    /// let Some(Event::Request(request)) = server.next_event() else { panic!() };
    /// server.send_response(server.accept(&request)).unwrap();
    /// let protocol = server.into_protocol();
    /// assert_eq!(protocol.state(), State::Open);
    /// ```
    pub fn into_protocol(self) -> Protocol {
        debug_assert!(
            matches!(self.phase, Phase::Open),
            "into_protocol before the handshake succeeded"
        );
        self.protocol
    }

    // ----- receiving data -----

    /// Feeds bytes received from the network. Never fails: an invalid request becomes an
    /// HTTP error response in [`outgoing`](Self::outgoing) and a
    /// [`handshake_error`](Self::handshake_error).
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol, State};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(b"GET / HTTP/1.1\r\n");
    /// assert_eq!(server.state(), State::Connecting);
    /// ```
    pub fn receive_data(&mut self, data: &[u8]) {
        debug_assert!(!self.eof_received, "receive_data after receive_eof");
        match self.phase {
            Phase::Open => self.protocol.receive_data(data),
            Phase::Closed => {}
            _ => {
                self.input.extend_from_slice(data);
                self.receive_request();
            }
        }
    }

    /// The input buffer, for drivers that read from the socket straight into it. Append
    /// only; then call [`next_event`](Self::next_event). During the handshake this is a
    /// small buffer of the handshake's own; once open, the inner [`Protocol`]'s.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// let buffer = server.receive_buffer();
    /// assert!(buffer.capacity() > buffer.len());
    /// buffer.extend_from_slice(b"GET / HTTP/1.1\r\n");
    /// assert_eq!(server.next_event(), None);
    /// ```
    pub fn receive_buffer(&mut self) -> &mut BytesMut {
        match self.phase {
            Phase::Open => return self.protocol.receive_buffer(),
            // Whatever a driver reads now is dropped at the next call.
            Phase::Closed => self.input.clear(),
            _ => {}
        }
        if self.input.capacity() - self.input.len() < INITIAL_CAPACITY / 2 {
            self.input.reserve(INITIAL_CAPACITY);
        }
        &mut self.input
    }

    /// Reports the end of the incoming stream. Before the request head is complete this
    /// fails the handshake with [`HandshakeError::UnexpectedEof`], without a response.
    ///
    /// ```
    /// # use sockjet_proto::{HandshakeError, ServerConfig, ServerProtocol, State};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(b"GET / HT");
    /// server.receive_eof();
    /// assert_eq!(server.state(), State::Closed);
    /// assert_eq!(server.handshake_error(), Some(&HandshakeError::UnexpectedEof));
    /// assert!(server.outgoing().is_empty());
    /// ```
    pub fn receive_eof(&mut self) {
        if matches!(self.phase, Phase::Open) {
            self.protocol.receive_eof();
            return;
        }
        self.eof_received = true;
        self.receive_request();
    }

    // ----- answering the request -----

    /// Builds the 101 response that accepts `request` (RFC 6455 §4.2.2): `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept` and `Server`. Edit it before
    /// [`send_response`](Self::send_response) to add headers, such as the chosen
    /// `Sec-WebSocket-Protocol`.
    ///
    /// A request that did not come from [`next_event`](Self::next_event) may lack a valid
    /// `Sec-WebSocket-Key`; it gets the 400 response of [`reject`](Self::reject) instead.
    /// So does, with its own status, a request delivered although it is not a valid
    /// handshake (see [`request_error`](Self::request_error)).
    ///
    /// ```
    /// use sockjet_proto::{Request, ServerConfig, ServerProtocol, http::StatusCode};
    /// let server = ServerProtocol::new(ServerConfig::default());
    /// let request = Request::builder()
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .body(())
    ///     .unwrap();
    /// let response = server.accept(&request);
    /// assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    /// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /// ```
    pub fn accept(&self, request: &Request) -> Response {
        if let Some(error) = &self.request_error {
            return self.reject(error.status(), &error.to_string());
        }
        if self.source == RequestSource::ExtendedConnect {
            return self.accept_extended_connect();
        }
        let key = match validate_key(request.headers()) {
            Ok(key) => key,
            Err(error) => return self.reject(error.status(), &error.to_string()),
        };
        let accept = handshake::accept_key_value(key);
        let mut response = Response::default();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        self.insert_negotiated_headers(headers);
        response
    }

    /// The headers every accepting response carries, over HTTP/1.1 or HTTP/2: the
    /// negotiated extension and the `Server` header.
    fn insert_negotiated_headers(&self, headers: &mut http::HeaderMap) {
        if let Some((_, extension)) = &self.negotiated_deflate {
            let value = HeaderValue::from_str(extension).expect("negotiation writes tokens");
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
        if let Some(server) = &self.server_header {
            headers.insert(header::SERVER, server.clone());
        }
    }

    /// Builds a plain-text HTTP error response that refuses the connection, such as 401,
    /// 403 or 404. The body is `text`.
    ///
    /// A 405 gets `Allow: GET` and a 426 gets `Upgrade: websocket` with
    /// `Sec-WebSocket-Version: 13`, as RFC 9110 §15.5.6, §15.5.22 and RFC 6455 §4.2.2
    /// require.
    ///
    /// ```
    /// use sockjet_proto::{ServerConfig, ServerProtocol, http::StatusCode};
    /// let server = ServerProtocol::new(ServerConfig::default());
    /// let response = server.reject(StatusCode::FORBIDDEN, "no entry");
    /// assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// assert_eq!(response.headers()["content-length"], "8");
    /// assert_eq!(response.body(), "no entry");
    /// ```
    pub fn reject(&self, status: StatusCode, text: &str) -> Response {
        let body = Bytes::copy_from_slice(text.as_bytes());
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        if status == StatusCode::UPGRADE_REQUIRED {
            // RFC 9110 §15.5.22: "The server MUST send an Upgrade header field in a 426
            // response", and §7.8: "A sender of Upgrade MUST also send an "Upgrade"
            // connection option in the Connection header field".
            headers.insert(
                header::CONNECTION,
                HeaderValue::from_static("Upgrade, close"),
            );
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            // RFC 6455 §4.2.2: send "a |Sec-WebSocket-Version| header field indicating the
            // version(s) the server is capable of understanding".
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static(handshake::WEBSOCKET_VERSION),
            );
        } else {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            // RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a
            // 405 response".
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        if let Some(server) = &self.server_header {
            headers.insert(header::SERVER, server.clone());
        }
        response
    }

    /// Sends the answer to the request. A 101 opens the connection: bytes the client sent
    /// behind its request are handed to the inner [`Protocol`], and later events are
    /// frames. Any other status closes it: [`eof_to_send`](Self::eof_to_send) becomes
    /// `true` and further input is ignored.
    ///
    /// For a request taken with [`receive_parsed_request`](Self::receive_parsed_request) or
    /// [`receive_extended_connect`](Self::receive_extended_connect), the HTTP server that
    /// read it sends the response: nothing goes to [`outgoing`](Self::outgoing), and a
    /// rejection leaves the connection to that server. After an extended CONNECT, any 2xx
    /// opens the connection (RFC 8441 §5).
    ///
    /// A 101 may only answer a request that was received; a rejection may also be sent
    /// earlier, without waiting for the request.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse::NotConnecting`] if a response was already sent (or the core answered
    /// an invalid request itself), or for a 101 before the request;
    /// [`ApiMisuse::AcceptInvalidRequest`] for a 101 in answer to a request that is not a
    /// valid handshake (see [`request_error`](Self::request_error)).
    ///
    /// ```
    /// use sockjet_proto::{ServerConfig, ServerProtocol, State, http::StatusCode};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// let response = server.reject(StatusCode::SERVICE_UNAVAILABLE, "try later");
    /// server.send_response(response).unwrap();
    /// assert_eq!(server.state(), State::Closed);
    /// assert!(server.eof_to_send());
    /// ```
    pub fn send_response(&mut self, response: Response) -> Result<(), ApiMisuse> {
        let switching = self.source.is_success(response.status());
        match self.phase {
            Phase::RequestReceived => {}
            Phase::ReadingRequest if !switching => {}
            _ => return Err(ApiMisuse::NotConnecting),
        }
        // RFC 6455 §4.2.1: a server that finds the request is not a valid handshake "MUST
        // stop processing the client's handshake"; any answer but a 101 is fine.
        if switching && self.request_error.is_some() {
            return Err(ApiMisuse::AcceptInvalidRequest);
        }
        // The application may answer without having taken the request.
        self.pending_request = None;
        // A request read by another HTTP server is answered by that server, which keeps
        // the connection if it is not upgraded: nothing to write, nothing to close.
        if self.source == RequestSource::Wire {
            self.write_response(&response);
        }
        if !switching {
            self.handshake_error = self.request_error.take();
            match self.source {
                RequestSource::Wire => self.close_after_response(),
                _ => self.phase = Phase::Closed,
            }
            return Ok(());
        }
        self.subprotocol = response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| std::str::from_utf8(trim_ows(value.as_bytes())).ok())
            .map(str::to_owned);
        // Compression is on if the response still announces the negotiated extension (the
        // application may have removed the header to refuse it).
        let announced = response
            .headers()
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .any(|value| value.as_bytes().starts_with(b"permessage-deflate"));
        self.open(announced);
        Ok(())
    }

    /// Accepts the opening handshake and sends the 101, as `send_response(accept(request))`
    /// would, byte for byte, without building an [`http::Response`]: for a server with
    /// nothing to add to the response (no subprotocol, no edited headers), which saves
    /// most of the cost of answering. Returns `false`, having sent nothing, when the
    /// request cannot be accepted this way (it is not a valid handshake, or it came from
    /// another HTTP server): answer it with [`accept`](Self::accept) and
    /// [`send_response`](Self::send_response) then.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse::NotConnecting`] if no request is waiting for its answer.
    ///
    /// ```
    /// use sockjet_proto::{Event, ServerConfig, ServerProtocol, State};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(
    ///     b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///       Sec-WebSocket-Version: 13\r\n\r\n",
    /// );
    /// let Some(Event::Request(request)) = server.next_event() else { panic!() };
    /// assert!(server.send_accept(&request).unwrap());
    /// assert_eq!(server.state(), State::Open);
    /// let mut wire = Vec::new();
    /// server.outgoing().drain_into(&mut wire);
    /// assert!(wire.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    /// ```
    pub fn send_accept(&mut self, request: &Request) -> Result<bool, ApiMisuse> {
        if !matches!(self.phase, Phase::RequestReceived) {
            return Err(ApiMisuse::NotConnecting);
        }
        if self.request_error.is_some() || self.source != RequestSource::Wire {
            return Ok(false);
        }
        let Ok(key) = validate_key(request.headers()) else {
            return Ok(false);
        };
        let mut accept = [0u8; handshake::ACCEPT_KEY_LEN];
        let accept = handshake::encode_accept_key(key, &mut accept);
        // What `write_response` writes for `accept`'s response: the same headers, in the
        // same order and spelling, straight into the output queue's buffer.
        // Reserved to the byte: a server keeps this buffer as the response sent for the
        // connection's life (`Outgoing::take_all`), so it carries no spare room.
        let extension_len = self
            .negotiated_deflate
            .as_ref()
            .map_or(0, |(_, extension)| {
                EXTENSIONS_PREFIX.len() + extension.len() + 2
            });
        let server_len = self
            .server_header
            .as_ref()
            .map_or(0, |server| SERVER_PREFIX.len() + server.len() + 2);
        let head = self.protocol.outgoing().tail_mut();
        head.reserve(SWITCHING_HEAD.len() + accept.len() + 2 + extension_len + server_len + 2);
        head.extend_from_slice(SWITCHING_HEAD);
        head.extend_from_slice(accept);
        head.extend_from_slice(b"\r\n");
        if let Some((_, extension)) = &self.negotiated_deflate {
            head.extend_from_slice(EXTENSIONS_PREFIX);
            head.extend_from_slice(extension.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if let Some(server) = &self.server_header {
            head.extend_from_slice(SERVER_PREFIX);
            head.extend_from_slice(server.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        self.pending_request = None;
        self.subprotocol = None;
        let announced = self.negotiated_deflate.is_some();
        self.open(announced);
        Ok(true)
    }

    /// After a 101 (or an extended CONNECT's 2xx) was sent: compression if the response
    /// announced the negotiated extension, and the bytes behind the request head handed to
    /// the protocol as frames.
    fn open(&mut self, deflate_announced: bool) {
        if let (true, Some((params, _))) = (deflate_announced, self.negotiated_deflate.take()) {
            let config = self.protocol.config().deflate.clone().unwrap_or_default();
            self.protocol
                .enable_permessage_deflate(PerMessageDeflate::new(Side::Server, params, &config));
        }
        self.phase = Phase::Open;
        // The bytes behind the request head are frames (a client MUST wait for the
        // response before sending them, RFC 6455 §4.1, but one that does not still gets
        // them delivered in order).
        // The handshake's buffer, warm and usually empty, becomes the protocol's.
        self.protocol.adopt_input(mem::take(&mut self.input));
        if self.eof_received {
            self.protocol.receive_eof();
        }
    }

    // ----- outputs -----

    /// The next event: first [`Event::Request`] (once, for a valid request only), then,
    /// after a 101, the inner [`Protocol`]'s events.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// assert_eq!(server.next_event(), None);
    /// ```
    pub fn next_event(&mut self) -> Option<Event> {
        // A driver may have read straight into `receive_buffer`.
        self.receive_request();
        match self.phase {
            Phase::RequestReceived => self.pending_request.take().map(Event::Request),
            Phase::Open => self.protocol.next_event(),
            _ => None,
        }
    }

    /// The request, once complete and valid: what [`next_event`](Self::next_event) gives
    /// as [`Event::Request`], for a driver that waits for the request alone.
    /// `None` before, and after it was taken either way.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(
    ///     b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///       Sec-WebSocket-Version: 13\r\n\r\n",
    /// );
    /// assert_eq!(server.take_request().unwrap().uri(), "/chat");
    /// assert!(server.take_request().is_none() && server.next_event().is_none());
    /// ```
    pub fn take_request(&mut self) -> Option<Box<Request>> {
        self.receive_request();
        match self.phase {
            Phase::RequestReceived => self.pending_request.take(),
            _ => None,
        }
    }

    /// The bytes to write to the network: the handshake response, then frames.
    ///
    /// ```
    /// use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(b"GET / HTTP/1.0\r\n\r\n");
    /// let mut wire = Vec::new();
    /// server.outgoing().drain_into(&mut wire);
    /// assert!(wire.starts_with(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"));
    /// ```
    pub fn outgoing(&mut self) -> &mut Outgoing {
        self.protocol.outgoing()
    }

    /// Whether the driver should now half-close the TCP connection (after writing
    /// [`outgoing`](Self::outgoing)). Returns `true` once: after an error response or a
    /// rejection, or when the open connection ends.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_data(b"PUT / HTTP/1.1\r\n\r\n");
    /// assert!(server.eof_to_send());
    /// assert!(!server.eof_to_send());
    /// ```
    pub fn eof_to_send(&mut self) -> bool {
        match self.phase {
            Phase::Open => self.protocol.eof_to_send(),
            _ => mem::take(&mut self.eof_pending),
        }
    }

    /// Whether the TCP connection is expected to close soon: the driver should close it
    /// after a timeout if the client does not. True once an error response or a rejection
    /// was sent.
    ///
    /// ```
    /// # use sockjet_proto::{ServerConfig, ServerProtocol};
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// assert!(!server.close_expected());
    /// server.receive_data(b"PUT / HTTP/1.1\r\n\r\n");
    /// assert!(server.close_expected());
    /// ```
    pub fn close_expected(&self) -> bool {
        match self.phase {
            Phase::Open => self.protocol.close_expected(),
            _ => self.eof_queued,
        }
    }

    // ----- handshake -----

    /// Looks for a complete request head in `input`, and validates it once found.
    fn receive_request(&mut self) {
        if !matches!(self.phase, Phase::ReadingRequest) {
            return;
        }
        let head_len = match self.head_parser.find_end(&self.input) {
            Ok(Some(head_len)) => head_len,
            Ok(None) => {
                if self.eof_received {
                    self.fail(HandshakeError::UnexpectedEof);
                }
                return;
            }
            Err(error) => return self.fail(error),
        };
        // Parsed in place, then skipped: `parse_request` copies what it keeps, and
        // splitting the head off would cost an allocation to share the buffer.
        let parsed = parse_request(&self.input[..head_len], self.head_parser.limits());
        self.input.advance(head_len);
        let request = match parsed {
            Ok(request) => request,
            Err(error) => return self.fail(error),
        };
        let checked = validate_request(&request).and_then(|()| {
            self.negotiated_deflate = self.negotiate_deflate(&request)?;
            Ok(())
        });
        match checked {
            Ok(()) => {}
            // Well-formed HTTP, just not a handshake: the application may answer it.
            Err(error) if self.deliver_invalid_requests => self.request_error = Some(error),
            Err(error) => return self.fail(error),
        }
        self.phase = Phase::RequestReceived;
        self.pending_request = Some(request);
    }

    /// Picks the first acceptable permessage-deflate offer of the request, if compression
    /// is configured (RFC 7692 §5).
    fn negotiate_deflate(
        &self,
        request: &Request,
    ) -> Result<Option<(DeflateParams, String)>, HandshakeError> {
        let Some(config) = &self.protocol.config().deflate else {
            return Ok(None);
        };
        let offers: Vec<&str> = request
            .headers()
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if offers.is_empty() {
            return Ok(None);
        }
        config.server_negotiate(&offers)
    }

    /// Answers an invalid request with the error's status and closes. After an EOF during
    /// the head there is nobody to answer, so nothing is sent.
    fn fail(&mut self, error: HandshakeError) {
        if error != HandshakeError::UnexpectedEof {
            let response = self.reject(error.status(), &error.to_string());
            self.write_response(&response);
            self.close_after_response();
        } else {
            self.phase = Phase::Closed;
            self.input = BytesMut::new();
        }
        self.handshake_error = Some(error);
    }

    fn write_response(&mut self, response: &Response) {
        let mut head = BytesMut::with_capacity(256 + response.body().len());
        write_response(response, &mut head);
        self.protocol.outgoing().push_bytes(head.freeze());
    }

    fn close_after_response(&mut self) {
        self.phase = Phase::Closed;
        self.input = BytesMut::new();
        self.eof_queued = true;
        self.eof_pending = true;
    }
}

/// The start of an accepting response, up to the `Sec-WebSocket-Accept` value.
const SWITCHING_HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: ";

/// Starts the `Sec-WebSocket-Extensions` line of a 101.
const EXTENSIONS_PREFIX: &[u8] = b"Sec-WebSocket-Extensions: ";

/// Starts the `Server` line of a response.
const SERVER_PREFIX: &[u8] = b"Server: ";

/// Capacity of the handshake's input buffer: a typical browser request is 500 to 800
/// bytes, and it grows as needed up to the limits.
const INITIAL_CAPACITY: usize = 1024;
