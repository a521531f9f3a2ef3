//! Opening handshake requests that another HTTP server read and parsed (hyper, axum, ...):
//! an HTTP/1.1 `Upgrade` (RFC 6455 §4.2.1) or an HTTP/2 extended CONNECT (RFC 8441 §4-5).
//! The core checks them with the same rules as the bytes it reads itself and negotiates
//! the same extensions; the other server sends the response it builds.

use http::{HeaderValue, Method, StatusCode, Version, header};

use super::{Phase, ServerProtocol, validate_request};
use crate::{
    error::HandshakeError,
    handshake::{Request, Response, validate_version},
};

/// Where the request being answered came from.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum RequestSource {
    /// Bytes given to `receive_data`: the core writes the response.
    Wire,
    /// An HTTP/1.1 `Upgrade` request parsed by another server.
    HttpServer,
    /// An HTTP/2 (or HTTP/3) extended CONNECT request parsed by another server.
    ExtendedConnect,
}

impl RequestSource {
    /// Whether a response with `status` opens the connection.
    pub(super) fn is_success(self, status: StatusCode) -> bool {
        match self {
            // RFC 8441 §5: "a 2xx series status code" accepts the extended CONNECT.
            Self::ExtendedConnect => status.is_success(),
            Self::Wire | Self::HttpServer => status == StatusCode::SWITCHING_PROTOCOLS,
        }
    }
}

impl ServerProtocol {
    /// Takes an HTTP/1.1 upgrade request that another HTTP server read and parsed, in place
    /// of its bytes: the core checks it against RFC 6455 §4.2.1 as
    /// [`receive_data`](Self::receive_data) would (method, version, `Host`, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`, no body) and negotiates
    /// permessage-deflate.
    ///
    /// Then answer as usual: [`accept`](Self::accept) builds the 101 (edit it to add a
    /// subprotocol or cookies), [`send_response`](Self::send_response) records it without
    /// writing anything (the other server sends it), and once that server hands over the
    /// upgraded stream, [`into_protocol`](Self::into_protocol) runs the connection on it.
    /// The HTTP head limits of [`ServerConfig`](crate::ServerConfig) do not apply: the
    /// other server enforced its own.
    ///
    /// Call it on a new `ServerProtocol`, instead of `receive_data`; a debug build panics
    /// otherwise.
    ///
    /// # Errors
    ///
    /// Why the request is not a valid opening handshake. Answer it with
    /// [`error_response`](Self::error_response): 400, 405, 426 (with
    /// `Sec-WebSocket-Version: 13`) or 505.
    ///
    /// ```
    /// use sockjet_proto::{Request, ServerConfig, ServerProtocol, State, http::StatusCode};
    /// let request = Request::builder()
    ///     .uri("/chat")
    ///     .header("Host", "example.com")
    ///     .header("Upgrade", "websocket")
    ///     .header("Connection", "Upgrade")
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_parsed_request(&request).unwrap();
    /// let response = server.accept(&request);
    /// assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    /// server.send_response(response.clone()).unwrap();
    /// assert!(server.outgoing().is_empty());
    /// // Give `response` to the HTTP server; run this on the stream it upgrades:
    /// let protocol = server.into_protocol();
    /// assert_eq!(protocol.state(), State::Open);
    /// ```
    pub fn receive_parsed_request(&mut self, request: &Request) -> Result<(), HandshakeError> {
        self.receive_parsed(request, RequestSource::HttpServer, validate_request)
    }

    /// Takes an extended CONNECT request (RFC 8441 for HTTP/2, RFC 9220 for HTTP/3) that
    /// another HTTP server parsed: the WebSocket runs on one stream of that connection.
    /// `protocol` is the request's `:protocol` pseudo-header, which `http::Request` does
    /// not carry (hyper keeps it in the `hyper::ext::Protocol` extension).
    ///
    /// RFC 8441 §5: the method is CONNECT, `:protocol` is `websocket`, `:scheme` and
    /// `:path` are present, and `Sec-WebSocket-Version` is 13; there is no
    /// `Sec-WebSocket-Key`. [`accept`](Self::accept) then builds a `200 OK` (no
    /// `Sec-WebSocket-Accept`), and the rest goes as after
    /// [`receive_parsed_request`](Self::receive_parsed_request).
    ///
    /// # Errors
    ///
    /// Why the request is not a valid extended CONNECT for a WebSocket. Answer it with
    /// [`error_response`](Self::error_response).
    ///
    /// ```
    /// use sockjet_proto::{Request, ServerConfig, ServerProtocol, http::{Method, StatusCode, Version}};
    /// let request = Request::builder()
    ///     .method(Method::CONNECT)
    ///     .version(Version::HTTP_2)
    ///     .uri("https://example.com/chat")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let mut server = ServerProtocol::new(ServerConfig::default());
    /// server.receive_extended_connect(&request, Some("websocket")).unwrap();
    /// let response = server.accept(&request);
    /// assert_eq!(response.status(), StatusCode::OK);
    /// assert!(!response.headers().contains_key("sec-websocket-accept"));
    /// server.send_response(response).unwrap();
    /// ```
    pub fn receive_extended_connect(
        &mut self,
        request: &Request,
        protocol: Option<&str>,
    ) -> Result<(), HandshakeError> {
        self.receive_parsed(request, RequestSource::ExtendedConnect, |request| {
            validate_extended_connect(request, protocol)
        })
    }

    /// The HTTP response that answers a request refused by
    /// [`receive_parsed_request`](Self::receive_parsed_request) or
    /// [`receive_extended_connect`](Self::receive_extended_connect): the one
    /// [`reject`](Self::reject) builds for the error's status, with the error as its text.
    /// For an extended CONNECT, a 405 lists `Allow: CONNECT`, and the HTTP/1.1-only
    /// `Connection` and `Upgrade` headers are left out (RFC 9113 §8.2.2: "An endpoint MUST
    /// NOT generate an HTTP/2 message containing connection-specific header fields").
    ///
    /// ```
    /// use sockjet_proto::{HandshakeError, ServerConfig, ServerProtocol};
    /// let server = ServerProtocol::new(ServerConfig::default());
    /// let response = server.error_response(&HandshakeError::UnsupportedVersion);
    /// assert_eq!(response.status(), 426);
    /// assert_eq!(response.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn error_response(&self, error: &HandshakeError) -> Response {
        let mut response = self.reject(error.status(), &error.to_string());
        if self.source == RequestSource::ExtendedConnect {
            let headers = response.headers_mut();
            headers.remove(header::CONNECTION);
            headers.remove(header::UPGRADE);
            if headers.contains_key(header::ALLOW) {
                headers.insert(header::ALLOW, HeaderValue::from_static("CONNECT"));
            }
        }
        response
    }

    /// Checks a parsed request with `validate` and negotiates the extensions, as
    /// `receive_data` does for the bytes of one.
    fn receive_parsed(
        &mut self,
        request: &Request,
        source: RequestSource,
        validate: impl FnOnce(&Request) -> Result<(), HandshakeError>,
    ) -> Result<(), HandshakeError> {
        let fresh = matches!(self.phase, Phase::ReadingRequest) && self.input.is_empty();
        debug_assert!(
            fresh,
            "receive_parsed_request on a ServerProtocol that received data"
        );
        if !fresh {
            return Err(HandshakeError::MalformedHttp(
                "a request was already received".to_owned(),
            ));
        }
        self.source = source;
        let negotiated = validate(request).and_then(|()| self.negotiate_deflate(request));
        match negotiated {
            Ok(deflate) => {
                self.negotiated_deflate = deflate;
                self.phase = Phase::RequestReceived;
                Ok(())
            }
            Err(error) => {
                // The other server answers and keeps the connection: no EOF to send.
                self.phase = Phase::Closed;
                self.handshake_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The `200 OK` that accepts an extended CONNECT: the negotiated extension and the
    /// `Server` header; the application adds `Sec-WebSocket-Protocol` if it picks one.
    pub(super) fn accept_extended_connect(&self) -> Response {
        let mut response = Response::default();
        self.insert_negotiated_headers(response.headers_mut());
        response
    }
}

/// Checks an extended CONNECT request against RFC 8441 §4 and §5.
fn validate_extended_connect(
    request: &Request,
    protocol: Option<&str>,
) -> Result<(), HandshakeError> {
    // RFC 8441 §4: "the :method pseudo-header field is set to CONNECT".
    if request.method() != Method::CONNECT {
        return Err(HandshakeError::MethodNotAllowed);
    }
    // RFC 8441 is an HTTP/2 extension and RFC 9220 carries it to HTTP/3; an HTTP/1.1
    // CONNECT is a proxy tunnel, not a WebSocket.
    if request.version() < Version::HTTP_2 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    // RFC 8441 §5: "The :protocol pseudo-header field MUST be included in the CONNECT
    // request, and it MUST have a value of "websocket"".
    match protocol {
        None => return Err(HandshakeError::MissingHeader(":protocol")),
        Some("websocket") => {}
        Some(other) => {
            return Err(HandshakeError::InvalidHeader {
                name: ":protocol",
                reason: format!("{other:?} is not websocket"),
            });
        }
    }
    // RFC 8441 §4: "On requests bearing the :protocol pseudo-header field, the :scheme and
    // :path pseudo-header fields MUST be included"; the path is the resource name.
    if request.uri().scheme().is_none() || !request.uri().path().starts_with('/') {
        return Err(HandshakeError::MalformedHttp(
            "extended CONNECT without :scheme and :path".to_owned(),
        ));
    }
    // RFC 8441 §5 keeps `Sec-WebSocket-Version` (RFC 6455 §4.2.1 item 6).
    validate_version(request.headers())
}
