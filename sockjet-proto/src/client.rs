//! [`ClientProtocol`]: the client side of the opening handshake (RFC 6455 §4.1), then the
//! open connection.

use std::mem;

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::BytesMut;
use http::{HeaderValue, StatusCode, Uri, Version, header};

use crate::{
    config::{ClientConfig, DEFAULT_MAX_LINE},
    error::{ApiMisuse, HandshakeError},
    extension::permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate},
    frame::mask::MaskKeys,
    handshake::{
        self, CONNECTION, HeadLimits, HeadParser, Request, Response, SEC_WEBSOCKET_ACCEPT,
        SEC_WEBSOCKET_PROTOCOL, UPGRADE, content_length, is_token, parse_response, require_token,
        single_value, split_list, trim_ows, write_request,
    },
    outgoing::Outgoing,
    protocol::{Event, Protocol, Side, State},
};

/// The client end of a connection, from the HTTP request to the end.
///
/// [`connect_request`] builds the opening handshake request (RFC 6455 §4.1) for a
/// `ws://` or `wss://` URI; [`send_request`] queues it, possibly edited. The server's
/// response is then checked as bytes arrive: a valid 101 comes out of [`next_event`] as
/// [`Event::Response`] and opens the connection, and every method then forwards to the
/// inner [`Protocol`], which also receives any frames that arrived behind the response
/// head. Anything else fails the handshake: [`handshake_error`] says why and
/// [`failed_response`] keeps the response (with up to 64 KiB of body for an HTTP error).
///
/// [`connect_request`]: Self::connect_request
/// [`send_request`]: Self::send_request
/// [`next_event`]: Self::next_event
/// [`handshake_error`]: Self::handshake_error
/// [`failed_response`]: Self::failed_response
///
/// ```
/// use sockjet_proto::{ClientConfig, ClientProtocol, Event, Message, State, http::Uri};
///
/// let uri: Uri = "ws://example.com/chat".parse().unwrap();
/// let key = *b"the sample nonce"; // random in real use: see `ClientProtocol::new`
/// let mut client = ClientProtocol::with_key(&uri, ClientConfig::default(), key);
/// client.send_request(client.connect_request()).unwrap();
/// let mut wire = Vec::new();
/// client.outgoing().drain_into(&mut wire);
/// assert!(wire.starts_with(b"GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
///
/// client.receive_data(
///     b"HTTP/1.1 101 Switching Protocols\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\
///       \x81\x02Hi",
/// );
/// assert!(matches!(client.next_event(), Some(Event::Response(_))));
/// assert_eq!(client.state(), State::Open);
/// assert_eq!(client.next_event(), Some(Event::Message(Message::text("Hi"))));
/// ```
#[derive(Debug)]
pub struct ClientProtocol {
    /// Runs the connection once the handshake succeeded. Before that it only collects
    /// [`outgoing`](Self::outgoing) bytes: nothing is sent through it.
    protocol: Protocol,
    phase: Phase,
    head_parser: HeadParser,
    /// Bytes received during the handshake: the response head, then (once the head was
    /// split off) whatever the server sent behind it.
    input: BytesMut,
    /// What [`connect_request`](Self::connect_request) returns.
    request: Request,
    request_sent: bool,
    /// `Sec-WebSocket-Accept` the server must send, computed from the key of the request
    /// actually sent; `None` if that request had no key.
    expected_accept: Option<String>,
    /// Subprotocols offered in the request actually sent.
    offered_subprotocols: Vec<String>,
    subprotocol: Option<String>,
    /// Whether the request actually sent offered permessage-deflate.
    offered_deflate: bool,
    /// The 101 response, until `next_event` returns it.
    pending_response: Option<Response>,
    handshake_error: Option<HandshakeError>,
    failed_response: Option<Response>,
    eof_received: bool,
    /// An EOF was queued because the handshake failed.
    eof_queued: bool,
    /// That EOF has not been collected by [`eof_to_send`](Self::eof_to_send) yet.
    eof_pending: bool,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the end of the response head.
    ReadingResponse,
    /// The server refused the upgrade with a body of `length` bytes, kept for the
    /// application to see.
    ReadingRejectionBody { response: Response, length: usize },
    /// A valid 101 was received: `protocol` runs the connection.
    Open,
    /// The handshake failed; input is ignored.
    Closed,
}

impl ClientProtocol {
    /// Creates the client end of a connection to `uri`, with a random
    /// `Sec-WebSocket-Key` from the operating system.
    ///
    /// # Panics
    ///
    /// As [`with_key`](Self::with_key), or if the operating system's random source fails.
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, ClientProtocol, State};
    /// let uri = "wss://example.com/feed".parse().unwrap();
    /// let client = ClientProtocol::new(&uri, ClientConfig::default());
    /// assert_eq!(client.state(), State::Connecting);
    /// ```
    pub fn new(uri: &Uri, config: ClientConfig) -> Self {
        // RFC 6455 §4.1: the nonce "MUST be selected randomly for each connection".
        let mut key = [0; 16];
        getrandom::fill(&mut key).expect("the OS random source failed");
        Self::with_key(uri, config, key)
    }

    /// Creates the client end of a connection to `uri` with a given `Sec-WebSocket-Key`
    /// nonce, for deterministic tests. Real connections use [`new`](Self::new): RFC 6455
    /// §4.1 requires a random key for each connection.
    ///
    /// # Panics
    ///
    /// If `uri` is not a `ws://` or `wss://` URI with a host, if
    /// [`ClientConfig::origin`] or [`ClientConfig::user_agent`] is not a valid header
    /// value, or if a subprotocol is not an HTTP token. A driver validates user input
    /// before calling this.
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com:8080/".parse().unwrap();
    /// let client = ClientProtocol::with_key(&uri, ClientConfig::default(), [0; 16]);
    /// let request = client.connect_request();
    /// assert_eq!(request.headers()["host"], "example.com:8080");
    /// assert_eq!(request.headers()["sec-websocket-key"], "AAAAAAAAAAAAAAAAAAAAAA==");
    /// ```
    pub fn with_key(uri: &Uri, config: ClientConfig, key: [u8; 16]) -> Self {
        let key = STANDARD.encode(key);
        let request = build_request(uri, &config, &key);
        let limits = HeadLimits {
            max_start_line: DEFAULT_MAX_LINE,
            max_header_bytes: config.max_header_bytes,
            max_headers: config.max_headers,
        };
        Self {
            protocol: Protocol::new(Side::Client, config.protocol),
            phase: Phase::ReadingResponse,
            head_parser: HeadParser::new(limits),
            input: BytesMut::with_capacity(INITIAL_CAPACITY),
            request,
            request_sent: false,
            expected_accept: Some(handshake::accept_key(key.as_bytes())),
            offered_subprotocols: config.subprotocols,
            subprotocol: None,
            offered_deflate: false,
            pending_response: None,
            handshake_error: None,
            failed_response: None,
            eof_received: false,
            eof_queued: false,
            eof_pending: false,
        }
    }

    /// Replaces the source of masking keys of the inner [`Protocol`]; tests use a fixed
    /// source to get deterministic frames.
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, ClientProtocol, MaskKeys};
    /// struct Zero;
    /// impl MaskKeys for Zero { fn next_key(&mut self) -> [u8; 4] { [0; 4] } }
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let client = ClientProtocol::new(&uri, ClientConfig::default()).with_mask_keys(Zero);
    /// # drop(client);
    /// ```
    pub fn with_mask_keys(mut self, keys: impl MaskKeys + 'static) -> Self {
        self.protocol = self.protocol.with_mask_keys(keys);
        self
    }

    // ----- getters -----

    /// The connection state: [`State::Connecting`] until the response is received, then
    /// the inner [`Protocol`]'s state after a valid 101, or [`State::Closed`] if the
    /// handshake failed.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol, State};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_eof();
    /// assert_eq!(client.state(), State::Closed);
    /// ```
    pub fn state(&self) -> State {
        match self.phase {
            Phase::ReadingResponse | Phase::ReadingRejectionBody { .. } => State::Connecting,
            Phase::Open => self.protocol.state(),
            Phase::Closed => State::Closed,
        }
    }

    /// Why the opening handshake failed, if it did.
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, ClientProtocol, HandshakeError, http::StatusCode};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    /// assert_eq!(
    ///     client.handshake_error(),
    ///     Some(&HandshakeError::UnexpectedStatus(StatusCode::NOT_FOUND))
    /// );
    /// ```
    pub fn handshake_error(&self) -> Option<&HandshakeError> {
        self.handshake_error.as_ref()
    }

    /// The response that failed the handshake, if it was complete enough to parse. For an
    /// HTTP error with a `Content-Length` of at most 64 KiB, the body is included.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way");
    /// assert_eq!(client.failed_response().unwrap().body(), "no way");
    /// ```
    pub fn failed_response(&self) -> Option<&Response> {
        self.failed_response.as_ref()
    }

    /// The subprotocol the server chose among those offered, once open.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let client = ClientProtocol::new(&uri, ClientConfig::default().subprotocols(["chat"]));
    /// assert_eq!(client.subprotocol(), None);
    /// ```
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Bytes received and not yet turned into events (see [`Protocol::buffered_len`]).
    /// During the handshake, the part of the head read so far and what followed it. A
    /// driver stops reading while this is large and the application is not taking events.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_data(b"HTTP/1.1 ");
    /// assert_eq!(client.buffered_len(), 9);
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
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let client = ClientProtocol::new(&uri, ClientConfig::default());
    /// assert_eq!(client.protocol().close_error(), None);
    /// ```
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The inner connection, to send messages once open. Do not send anything before the
    /// 101 response: RFC 6455 §4.1 says the client "MUST wait for a response from the
    /// server before sending any further data".
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol, State};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::with_key(&uri, ClientConfig::default(), [0; 16]);
    /// client.send_request(client.connect_request()).unwrap();
    /// client.receive_data(
    ///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n\r\n",
    /// );
    /// assert_eq!(client.state(), State::Open);
    /// client.protocol_mut().send_text("hello").unwrap();
    /// ```
    pub fn protocol_mut(&mut self) -> &mut Protocol {
        &mut self.protocol
    }

    /// Hands over the open connection. Call it only once [`Event::Response`] was taken
    /// from [`next_event`](Self::next_event); a debug build panics if the handshake has
    /// not succeeded.
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, ClientProtocol, Event, State};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::with_key(&uri, ClientConfig::default(), [0; 16]);
    /// client.send_request(client.connect_request()).unwrap();
    /// client.receive_data(
    ///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n\r\n",
    /// );
    /// assert!(matches!(client.next_event(), Some(Event::Response(_))));
    /// assert_eq!(client.into_protocol().state(), State::Open);
    /// ```
    pub fn into_protocol(self) -> Protocol {
        debug_assert!(
            matches!(self.phase, Phase::Open),
            "into_protocol before the handshake succeeded"
        );
        self.protocol
    }

    // ----- sending the request -----

    /// Builds the opening handshake request (RFC 6455 §4.1): `GET` with the URI's path and
    /// query, `Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version`, then `Origin`, `Sec-WebSocket-Protocol`, `User-Agent` and
    /// the extra headers of the [`ClientConfig`]. Edit it before
    /// [`send_request`](Self::send_request) if needed.
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "wss://example.com:443/chat?room=1".parse().unwrap();
    /// let client = ClientProtocol::new(&uri, ClientConfig::default());
    /// let request = client.connect_request();
    /// assert_eq!(request.uri(), "/chat?room=1");
    /// assert_eq!(request.headers()["host"], "example.com"); // default port left out
    /// assert_eq!(request.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn connect_request(&self) -> Request {
        self.request.clone()
    }

    /// Queues `request` in [`outgoing`](Self::outgoing). The response is checked against
    /// this request: its `Sec-WebSocket-Key` and the subprotocols it offers.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse::NotConnecting`] if a request was already sent or the handshake is
    /// over.
    ///
    /// ```
    /// use sockjet_proto::{ApiMisuse, ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.send_request(client.connect_request()).unwrap();
    /// assert!(!client.outgoing().is_empty());
    /// assert_eq!(client.send_request(client.connect_request()), Err(ApiMisuse::NotConnecting));
    /// ```
    pub fn send_request(&mut self, request: Request) -> Result<(), ApiMisuse> {
        if self.request_sent || !matches!(self.phase, Phase::ReadingResponse) {
            return Err(ApiMisuse::NotConnecting);
        }
        self.request_sent = true;
        let headers = request.headers();
        self.expected_accept = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(|key| handshake::accept_key(trim_ows(key.as_bytes())));
        self.offered_subprotocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| split_list(value.as_bytes()))
            .filter_map(|offer| std::str::from_utf8(offer).ok().map(str::to_owned))
            .collect();
        self.offered_deflate = headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .any(|value| value.as_bytes().starts_with(b"permessage-deflate"));
        let mut head = BytesMut::with_capacity(512);
        write_request(&request, &mut head);
        self.protocol.outgoing().push_bytes(head.freeze());
        Ok(())
    }

    // ----- receiving data -----

    /// Feeds bytes received from the network. Never fails: an invalid response becomes a
    /// [`handshake_error`](Self::handshake_error).
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol, State};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n");
    /// assert_eq!(client.state(), State::Connecting);
    /// ```
    pub fn receive_data(&mut self, data: &[u8]) {
        debug_assert!(!self.eof_received, "receive_data after receive_eof");
        match self.phase {
            Phase::Open => self.protocol.receive_data(data),
            Phase::Closed => {}
            _ => {
                self.input.extend_from_slice(data);
                self.receive_response();
            }
        }
    }

    /// The input buffer, for drivers that read from the socket straight into it. Append
    /// only; then call [`next_event`](Self::next_event). During the handshake this is a
    /// small buffer of the handshake's own; once open, the inner [`Protocol`]'s.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_buffer().extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    /// assert_eq!(client.next_event(), None);
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

    /// Reports the end of the incoming stream. Before the response head is complete this
    /// fails the handshake with [`HandshakeError::UnexpectedEof`].
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol, HandshakeError};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_eof();
    /// assert_eq!(client.handshake_error(), Some(&HandshakeError::UnexpectedEof));
    /// ```
    pub fn receive_eof(&mut self) {
        if matches!(self.phase, Phase::Open) {
            self.protocol.receive_eof();
            return;
        }
        self.eof_received = true;
        self.receive_response();
    }

    // ----- outputs -----

    /// The next event: first [`Event::Response`] (once, for a valid 101 only), then the
    /// inner [`Protocol`]'s events.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// assert_eq!(client.next_event(), None);
    /// ```
    pub fn next_event(&mut self) -> Option<Event> {
        // A driver may have read straight into `receive_buffer`.
        self.receive_response();
        match self.phase {
            Phase::Open => match self.pending_response.take() {
                Some(response) => Some(Event::Response(Box::new(response))),
                None => self.protocol.next_event(),
            },
            _ => None,
        }
    }

    /// The bytes to write to the network: the handshake request, then frames.
    ///
    /// ```
    /// use bytes::Buf;
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.send_request(client.connect_request()).unwrap();
    /// assert!(client.outgoing().chunk().starts_with(b"GET / HTTP/1.1\r\n"));
    /// ```
    pub fn outgoing(&mut self) -> &mut Outgoing {
        self.protocol.outgoing()
    }

    /// Whether the driver should now half-close the TCP connection (after writing
    /// [`outgoing`](Self::outgoing)). Returns `true` once: after the handshake failed on
    /// a response, or when the open connection ends.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// client.receive_data(b"HTTP/1.1 500 Internal Server Error\r\n\r\n");
    /// assert!(client.eof_to_send());
    /// assert!(!client.eof_to_send());
    /// ```
    pub fn eof_to_send(&mut self) -> bool {
        match self.phase {
            Phase::Open => self.protocol.eof_to_send(),
            _ => mem::take(&mut self.eof_pending),
        }
    }

    /// Whether the TCP connection is expected to close soon: the driver should close it
    /// after a timeout if the server does not. True once the handshake failed on a
    /// response.
    ///
    /// ```
    /// # use sockjet_proto::{ClientConfig, ClientProtocol};
    /// let uri = "ws://example.com/".parse().unwrap();
    /// let mut client = ClientProtocol::new(&uri, ClientConfig::default());
    /// assert!(!client.close_expected());
    /// ```
    pub fn close_expected(&self) -> bool {
        match self.phase {
            Phase::Open => self.protocol.close_expected(),
            _ => self.eof_queued,
        }
    }

    // ----- handshake -----

    /// Looks for a complete response head (and the body of a refusal) in `input`, and
    /// validates it once found.
    fn receive_response(&mut self) {
        if matches!(self.phase, Phase::ReadingResponse) {
            let head_len = match self.head_parser.find_end(&self.input) {
                Ok(Some(head_len)) => head_len,
                Ok(None) => {
                    if self.eof_received {
                        self.fail(HandshakeError::UnexpectedEof, None);
                    }
                    return;
                }
                Err(error) => return self.fail(error, None),
            };
            let head = self.input.split_to(head_len);
            let response = match parse_response(&head, self.head_parser.limits()) {
                Ok(response) => response,
                Err(error) => return self.fail(error, None),
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let deflate = self
                    .protocol
                    .config()
                    .deflate
                    .clone()
                    .filter(|_| self.offered_deflate);
                let validated = validate_response(
                    &response,
                    self.expected_accept.as_deref(),
                    &self.offered_subprotocols,
                )
                .and_then(|subprotocol| {
                    Ok((subprotocol, accept_extensions(&response, deflate.as_ref())?))
                });
                return match validated {
                    Ok((subprotocol, params)) => {
                        if let (Some(params), Some(config)) = (params, &deflate) {
                            self.protocol
                                .enable_permessage_deflate(PerMessageDeflate::new(
                                    Side::Client,
                                    params,
                                    config,
                                ));
                        }
                        self.open(response, subprotocol)
                    }
                    Err(error) => self.fail(error, Some(response)),
                };
            }
            // RFC 6455 §4.1: "If the status code received from the server is not 101, the
            // client handles the response per HTTP [RFC2616] procedures." Keep a short
            // body (an error page, an authentication challenge) for the application.
            match content_length(response.headers()) {
                Ok(Some(length)) if length > 0 && length <= MAX_REJECTION_BODY as u64 => {
                    self.phase = Phase::ReadingRejectionBody {
                        response,
                        length: length as usize,
                    };
                }
                _ => {
                    let status = response.status();
                    return self.fail(HandshakeError::UnexpectedStatus(status), Some(response));
                }
            }
        }
        if let Phase::ReadingRejectionBody { length, .. } = self.phase {
            if self.input.len() < length && !self.eof_received {
                return;
            }
            let Phase::ReadingRejectionBody { mut response, .. } =
                mem::replace(&mut self.phase, Phase::Closed)
            else {
                unreachable!("matched just above");
            };
            // Truncated if the server closed early.
            let body_len = length.min(self.input.len());
            *response.body_mut() = self.input.split_to(body_len).freeze();
            let status = response.status();
            self.fail(HandshakeError::UnexpectedStatus(status), Some(response));
        }
    }

    fn open(&mut self, response: Response, subprotocol: Option<String>) {
        self.phase = Phase::Open;
        self.subprotocol = subprotocol;
        self.pending_response = Some(response);
        // Frames may follow the 101 head in the same read.
        let behind_head = mem::take(&mut self.input);
        if !behind_head.is_empty() {
            self.protocol.receive_data(&behind_head);
        }
        if self.eof_received {
            self.protocol.receive_eof();
        }
    }

    /// Records the failure and closes; the response is kept for the application. After an
    /// EOF during the head there is nobody to talk to, so no EOF is queued.
    fn fail(&mut self, error: HandshakeError, response: Option<Response>) {
        if error != HandshakeError::UnexpectedEof {
            self.eof_queued = true;
            self.eof_pending = true;
        }
        self.phase = Phase::Closed;
        self.input = BytesMut::new();
        self.handshake_error = Some(error);
        self.failed_response = response;
    }
}

/// Builds the request of RFC 6455 §4.1 for `uri`.
fn build_request(uri: &Uri, config: &ClientConfig, key: &str) -> Request {
    let default_port = match uri.scheme_str() {
        Some("ws") => 80,
        Some("wss") => 443,
        _ => panic!("ClientProtocol needs a ws:// or wss:// URI, not {uri:?}"),
    };
    let host = uri
        .host()
        .unwrap_or_else(|| panic!("ClientProtocol needs a URI with a host, not {uri:?}"));
    // RFC 6455 §4.1: "The request MUST contain a |Host| header field whose value contains
    // /host/ plus optionally ":" followed by /port/ (when not using the default port)."
    let host = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    // RFC 6455 §3: the resource name is "/" if the path is empty, then "?" and the query.
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };

    let mut request = Request::new(());
    *request.uri_mut() = target.parse().expect("a Uri's own path and query parse");
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&host).expect("a Uri's host is a header value"),
    );
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(key).expect("base64 is a header value"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static(handshake::WEBSOCKET_VERSION),
    );
    if let Some(origin) = &config.origin {
        let origin = HeaderValue::from_str(origin).expect("ClientConfig::origin is a header value");
        headers.insert(header::ORIGIN, origin);
    }
    if !config.subprotocols.is_empty() {
        // RFC 6455 §4.1: the subprotocol values "MUST be non-empty strings with characters
        // in the range U+0021 to U+007E not including separator characters".
        for subprotocol in &config.subprotocols {
            assert!(
                is_token(subprotocol.as_bytes()),
                "subprotocol {subprotocol:?} is not an HTTP token"
            );
        }
        let offer = HeaderValue::from_str(&config.subprotocols.join(", "))
            .expect("tokens are header values");
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, offer);
    }
    if let Some(deflate) = &config.protocol.deflate {
        let offer = HeaderValue::from_str(&deflate.client_offer()).expect("offers are tokens");
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer);
    }
    if let Some(user_agent) = &config.user_agent {
        let user_agent =
            HeaderValue::from_str(user_agent).expect("ClientConfig::user_agent is a header value");
        headers.insert(header::USER_AGENT, user_agent);
    }
    // Extra headers replace those of the same name.
    for name in config.headers.keys() {
        headers.remove(name);
    }
    for (name, value) in &config.headers {
        headers.append(name.clone(), value.clone());
    }
    request
}

/// Checks a 101 response against RFC 6455 §4.1 ("the client MUST validate the server's
/// response as follows"), returning the chosen subprotocol.
fn validate_response(
    response: &Response,
    expected_accept: Option<&str>,
    offered_subprotocols: &[String],
) -> Result<Option<String>, HandshakeError> {
    if response.version() != Version::HTTP_11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let headers = response.headers();
    // Item 2: "If the response lacks an |Upgrade| header field or the |Upgrade| header field
    // contains a value that is not an ASCII case-insensitive match for the value
    // "websocket", the client MUST _Fail the WebSocket Connection_."
    require_token(headers, &UPGRADE, "websocket")?;
    // Item 3: "If the response lacks a |Connection| header field or the |Connection| header
    // field doesn't contain a token that is an ASCII case-insensitive match for the value
    // "Upgrade", the client MUST _Fail the WebSocket Connection_."
    require_token(headers, &CONNECTION, "upgrade")?;
    // Item 4: "If the response lacks a |Sec-WebSocket-Accept| header field or the
    // |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of [...]
    // but ignoring any leading and trailing whitespace, the client MUST _Fail the
    // WebSocket Connection_."
    let accept = single_value(headers, &SEC_WEBSOCKET_ACCEPT)
        .map_err(|_| HandshakeError::InvalidAccept)?
        .ok_or(HandshakeError::MissingHeader(SEC_WEBSOCKET_ACCEPT.display))?;
    if expected_accept.map(str::as_bytes) != Some(trim_ows(accept.as_bytes())) {
        return Err(HandshakeError::InvalidAccept);
    }
    // Item 5 (extensions) is checked by `accept_extensions`.
    // Item 6: "If the response includes a |Sec-WebSocket-Protocol| header field and this
    // header field indicates the use of a subprotocol that was not present in the client's
    // handshake [...], the client MUST _Fail the WebSocket Connection_."
    let chosen = single_value(headers, &SEC_WEBSOCKET_PROTOCOL).map_err(|_| {
        HandshakeError::UnexpectedNegotiation("more than one subprotocol".to_owned())
    })?;
    let Some(chosen) = chosen else {
        return Ok(None);
    };
    let chosen = trim_ows(chosen.as_bytes());
    match offered_subprotocols
        .iter()
        .find(|offer| offer.as_bytes() == chosen)
    {
        Some(offer) => Ok(Some(offer.clone())),
        None => Err(HandshakeError::UnexpectedNegotiation(format!(
            "subprotocol {} not offered",
            String::from_utf8_lossy(chosen)
        ))),
    }
}

/// RFC 6455 §4.1 item 5: "If the response includes a |Sec-WebSocket-Extensions| header
/// field and this header field indicates the use of an extension that was not present in
/// the client's handshake [...], the client MUST _Fail the WebSocket Connection_." The only
/// extension offered is permessage-deflate, checked against RFC 7692 §5.
fn accept_extensions(
    response: &Response,
    offered: Option<&DeflateConfig>,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let values: Vec<&str> = response
        .headers()
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    match offered {
        Some(config) => config.client_accept(&values).map(Some),
        None => Err(HandshakeError::UnexpectedNegotiation(format!(
            "extension {} not offered",
            values.join(", ")
        ))),
    }
}

/// Largest body of a refusal kept for the application.
const MAX_REJECTION_BODY: usize = 64 * 1024;

/// Capacity of the handshake's input buffer: a 101 response is usually under 200 bytes.
const INITIAL_CAPACITY: usize = 1024;
