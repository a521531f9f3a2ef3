//! RFC 6455 §4.2: the server side of the opening handshake, bytes in and bytes out.

use sockjet_proto::{
    Event, HandshakeError, Message, ServerConfig, ServerProtocol, State,
    handshake::accept_key,
    http::{Method, StatusCode, Version},
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The headers of a valid request, one line each.
const VALID_HEADERS: [&str; 5] = [
    "Host: example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
];

fn request_bytes(request_line: &str, headers: &[&str]) -> Vec<u8> {
    let mut bytes = format!("{request_line}\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes
}

fn valid_request() -> Vec<u8> {
    request_bytes("GET /chat?room=1 HTTP/1.1", &VALID_HEADERS)
}

/// The valid headers with the one starting with `name` replaced by `replacement` (or
/// removed if `replacement` is `None`).
fn headers_with(name: &str, replacement: Option<&'static str>) -> Vec<&'static str> {
    let mut found = false;
    let headers = VALID_HEADERS
        .iter()
        .filter_map(|header| {
            if header.starts_with(&format!("{name}:")) {
                found = true;
                replacement
            } else {
                Some(*header)
            }
        })
        .collect();
    assert!(found, "no {name} header to replace");
    headers
}

fn sent(server: &mut ServerProtocol) -> Vec<u8> {
    let mut wire = Vec::new();
    server.outgoing().drain_into(&mut wire);
    wire
}

/// A response as read back from the wire.
#[derive(Debug)]
struct WireResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl WireResponse {
    fn parse(wire: &[u8]) -> Self {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut slots);
        let httparse::Status::Complete(head_len) = response.parse(wire).unwrap() else {
            panic!("incomplete response: {:?}", String::from_utf8_lossy(wire));
        };
        assert_eq!(response.version, Some(1));
        Self {
            status: response.code.unwrap(),
            headers: response
                .headers
                .iter()
                .map(|header| {
                    let value = String::from_utf8(header.value.to_vec()).unwrap();
                    (header.name.to_owned(), value)
                })
                .collect(),
            body: wire[head_len..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = values.next().map(|(_, value)| value.as_str());
        assert!(values.next().is_none(), "{name} repeated");
        value
    }
}

/// Feeds `bytes` to a new server (all at once) and takes its events.
fn server_receiving(bytes: &[u8]) -> (ServerProtocol, Vec<Event>) {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(bytes);
    let events = std::iter::from_fn(|| server.next_event()).collect();
    (server, events)
}

/// Checks that the core answered `bytes` by itself with `status`, a plain-text body naming
/// the error, and EOF, without an event for the application.
fn assert_refused(bytes: &[u8], status: u16, error: HandshakeError) -> WireResponse {
    let (mut server, events) = server_receiving(bytes);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(server.handshake_error(), Some(&error));
    assert_eq!(server.state(), State::Closed);
    assert!(server.eof_to_send());
    assert!(server.close_expected());
    let response = WireResponse::parse(&sent(&mut server));
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.body, error.to_string().as_bytes());
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        response.header("Content-Length"),
        Some(&*response.body.len().to_string())
    );
    assert_eq!(
        response.header("Connection").map(|c| c.contains("close")),
        Some(true)
    );
    // Later input is ignored.
    server.receive_data(&valid_request());
    assert_eq!(server.next_event(), None);
    assert!(server.outgoing().is_empty());
    response
}

fn expected_request() -> sockjet_proto::Request {
    let mut builder = sockjet_proto::Request::builder()
        .method(Method::GET)
        .uri("/chat?room=1")
        .version(Version::HTTP_11);
    for header in VALID_HEADERS {
        let (name, value) = header.split_once(": ").unwrap();
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap()
}

// ----- valid requests -----

#[test]
fn server_receives_valid_request() {
    let (mut server, events) = server_receiving(&valid_request());
    assert_eq!(events, [Event::Request(Box::new(expected_request()))]);
    let Event::Request(request) = &events[0] else {
        unreachable!()
    };
    assert_eq!(request.uri().path(), "/chat");
    assert_eq!(request.uri().query(), Some("room=1"));
    assert_eq!(request.headers().len(), 5);
    assert_eq!(server.state(), State::Connecting);
    assert_eq!(server.handshake_error(), None);
    assert!(server.outgoing().is_empty());
    assert!(!server.eof_to_send());
}

#[test]
fn server_receives_valid_request_byte_by_byte() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    let bytes = valid_request();
    let mut events = Vec::new();
    for byte in &bytes {
        server.receive_data(std::slice::from_ref(byte));
        events.extend(std::iter::from_fn(|| server.next_event()));
    }
    assert_eq!(events, [Event::Request(Box::new(expected_request()))]);
    assert_eq!(server.state(), State::Connecting);
}

#[test]
fn server_receives_request_read_into_receive_buffer() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_buffer().extend_from_slice(&valid_request());
    assert_eq!(
        server.next_event(),
        Some(Event::Request(Box::new(expected_request())))
    );
}

#[test]
fn server_accepts_connection_token_list_and_any_case() {
    let headers = [
        "hOsT: example.com",
        "upgrade: WebSocket",
        "Connection: keep-alive, Upgrade",
        "SEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version: 13",
    ];
    let (_, events) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(matches!(&events[..], [Event::Request(_)]), "{events:?}");
}

#[test]
fn server_accepts_split_connection_and_upgrade_lists() {
    let headers = [
        "Host: example.com",
        "Upgrade: h2c, websocket",
        "Connection: keep-alive",
        "Connection: upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Content-Length: 0",
    ];
    let (_, events) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(matches!(&events[..], [Event::Request(_)]), "{events:?}");
}

#[test]
fn server_sends_accept_response() {
    let (mut server, events) = server_receiving(&valid_request());
    let Some(Event::Request(request)) = events.into_iter().next() else {
        panic!()
    };
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    server.send_response(response).unwrap();
    assert_eq!(server.state(), State::Open);
    assert!(!server.eof_to_send());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sent(&mut server),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Server: sockjet/{version}\r\n\r\n"
        )
        .as_bytes()
    );
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn server_sends_edited_accept_response_with_subprotocol() {
    let headers = [
        &VALID_HEADERS[..],
        &["Sec-WebSocket-Protocol: chat, superchat"],
    ]
    .concat();
    let (mut server, events) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    let Some(Event::Request(request)) = events.into_iter().next() else {
        panic!()
    };
    let mut response = server.accept(&request);
    response
        .headers_mut()
        .insert("sec-websocket-protocol", "superchat".parse().unwrap());
    server.send_response(response).unwrap();
    assert_eq!(server.subprotocol(), Some("superchat"));
    let response = WireResponse::parse(&sent(&mut server));
    assert_eq!(response.header("Sec-WebSocket-Protocol"), Some("superchat"));
}

#[test]
fn server_receives_frame_behind_request_head() {
    let mut bytes = valid_request();
    // A masked text frame "Hi", sent without waiting for the response.
    bytes.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
    let (mut server, events) = server_receiving(&bytes);
    let [Event::Request(request)] = &events[..] else {
        panic!("{events:?}")
    };
    server.send_response(server.accept(request)).unwrap();
    assert_eq!(
        server.next_event(),
        Some(Event::Message(Message::text("Hi")))
    );
    assert_eq!(server.next_event(), None);
}

#[test]
fn server_receives_frame_arriving_before_response() {
    let (mut server, events) = server_receiving(&valid_request());
    let [Event::Request(request)] = &events[..] else {
        panic!("{events:?}")
    };
    // Half a frame before the response, the rest after.
    server.receive_data(&[0x81, 0x82, 1, 2]);
    assert_eq!(server.next_event(), None);
    server.send_response(server.accept(request)).unwrap();
    assert_eq!(server.next_event(), None);
    server.receive_data(&[3, 4, b'H' ^ 1, b'i' ^ 2]);
    assert_eq!(
        server.next_event(),
        Some(Event::Message(Message::text("Hi")))
    );
}

#[test]
fn server_into_protocol_keeps_frames_behind_head() {
    let mut bytes = valid_request();
    bytes.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
    let (mut server, events) = server_receiving(&bytes);
    let [Event::Request(request)] = &events[..] else {
        panic!("{events:?}")
    };
    server.send_response(server.accept(request)).unwrap();
    let mut protocol = server.into_protocol();
    assert_eq!(
        protocol.next_event(),
        Some(Event::Message(Message::text("Hi")))
    );
}

#[test]
fn server_sends_frames_after_response() {
    let (mut server, events) = server_receiving(&valid_request());
    let [Event::Request(request)] = &events[..] else {
        panic!("{events:?}")
    };
    server.send_response(server.accept(request)).unwrap();
    sent(&mut server);
    server.protocol_mut().send_text("Hi").unwrap();
    assert_eq!(sent(&mut server), [0x81, 0x02, b'H', b'i']);
}

#[test]
fn server_receives_eof_behind_request_then_accepts() {
    let (mut server, _) = server_receiving(&valid_request());
    server.receive_eof();
    assert_eq!(server.state(), State::Connecting);
    assert_eq!(server.handshake_error(), None);
}

// ----- rejection by the application -----

#[test]
fn server_rejects_request() {
    let (mut server, events) = server_receiving(&valid_request());
    assert_eq!(events.len(), 1);
    let response = server.reject(StatusCode::FORBIDDEN, "Forbidden origin\n");
    server.send_response(response).unwrap();
    assert_eq!(server.state(), State::Closed);
    assert_eq!(server.handshake_error(), None);
    assert!(server.eof_to_send());
    assert!(!server.eof_to_send());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        String::from_utf8(sent(&mut server)).unwrap(),
        format!(
            "HTTP/1.1 403 Forbidden\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 17\r\n\
             Connection: close\r\n\
             Server: sockjet/{version}\r\n\r\n\
             Forbidden origin\n"
        )
    );
    // Frames after a rejection are ignored.
    server.receive_data(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
    assert_eq!(server.next_event(), None);
    assert_eq!(
        server.send_response(server.reject(StatusCode::GONE, "")),
        Err(sockjet_proto::ApiMisuse::NotConnecting)
    );
}

#[test]
fn server_rejects_before_request_is_complete() {
    let mut server = ServerProtocol::new(ServerConfig::default().server_header(None));
    server.receive_data(b"GET / HTTP/1.1\r\n");
    server
        .send_response(server.reject(StatusCode::SERVICE_UNAVAILABLE, "busy"))
        .unwrap();
    assert_eq!(server.state(), State::Closed);
    let response = WireResponse::parse(&sent(&mut server));
    assert_eq!(response.status, 503);
    assert_eq!(response.header("Server"), None);
    assert_eq!(response.body, b"busy");
}

#[test]
fn server_refuses_to_send_101_before_request() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    let mut response = sockjet_proto::Response::default();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    assert_eq!(
        server.send_response(response),
        Err(sockjet_proto::ApiMisuse::NotConnecting)
    );
    assert_eq!(server.state(), State::Connecting);
    assert!(server.outgoing().is_empty());
}

#[test]
fn server_accept_of_request_without_key_is_400() {
    let server = ServerProtocol::new(ServerConfig::default());
    let request = sockjet_proto::Request::builder().uri("/").body(()).unwrap();
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

// ----- invalid requests answered by the core -----

#[test]
fn server_receives_post() {
    let response = assert_refused(
        &request_bytes("POST /chat HTTP/1.1", &VALID_HEADERS),
        405,
        HandshakeError::MethodNotAllowed,
    );
    assert_eq!(response.header("Allow"), Some("GET"));
}

#[test]
fn server_receives_lowercase_method() {
    // Methods are case-sensitive (RFC 9110 §9.1).
    assert_refused(
        &request_bytes("get /chat HTTP/1.1", &VALID_HEADERS),
        405,
        HandshakeError::MethodNotAllowed,
    );
}

#[test]
fn server_receives_http_1_0() {
    assert_refused(
        &request_bytes("GET /chat HTTP/1.0", &VALID_HEADERS),
        505,
        HandshakeError::UnsupportedHttpVersion,
    );
}

#[test]
fn server_receives_http_2_0_version() {
    assert_refused(
        &request_bytes("GET /chat HTTP/2.0", &VALID_HEADERS),
        505,
        HandshakeError::UnsupportedHttpVersion,
    );
}

#[test]
fn server_receives_request_without_host() {
    assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers_with("Host", None)),
        400,
        HandshakeError::MissingHeader("Host"),
    );
}

#[test]
fn server_receives_request_with_two_hosts() {
    let headers = [&VALID_HEADERS[..], &["Host: other.example"]].concat();
    let (server, _) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::InvalidHeader { name: "Host", .. })
    ));
}

#[test]
fn server_receives_request_without_upgrade() {
    assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers_with("Upgrade", None)),
        400,
        HandshakeError::MissingHeader("Upgrade"),
    );
}

#[test]
fn server_receives_request_upgrading_to_other_protocol() {
    let headers = headers_with("Upgrade", Some("Upgrade: h2c"));
    let (mut server, events) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(events.is_empty());
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::InvalidHeader {
            name: "Upgrade",
            ..
        })
    ));
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 400);
}

#[test]
fn server_receives_request_without_connection() {
    assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers_with("Connection", None)),
        400,
        HandshakeError::MissingHeader("Connection"),
    );
}

#[test]
fn server_receives_request_with_connection_keep_alive_only() {
    let headers = headers_with("Connection", Some("Connection: keep-alive"));
    let (mut server, _) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::InvalidHeader {
            name: "Connection",
            ..
        })
    ));
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 400);
}

#[test]
fn server_receives_request_without_key() {
    assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers_with("Sec-WebSocket-Key", None)),
        400,
        HandshakeError::MissingHeader("Sec-WebSocket-Key"),
    );
}

#[test]
fn server_receives_request_with_invalid_keys() {
    for key in [
        "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==",         // 10 bytes
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSEh", // 18 bytes
        "Sec-WebSocket-Key: not base64 at all!!!!!!!", // not base64
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",   // missing padding
    ] {
        let headers = headers_with("Sec-WebSocket-Key", Some(key));
        let (mut server, events) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
        assert!(events.is_empty(), "{key}");
        assert!(
            matches!(
                server.handshake_error(),
                Some(HandshakeError::InvalidHeader {
                    name: "Sec-WebSocket-Key",
                    ..
                })
            ),
            "{key}: {:?}",
            server.handshake_error()
        );
        assert_eq!(WireResponse::parse(&sent(&mut server)).status, 400, "{key}");
    }
}

#[test]
fn server_receives_request_with_two_keys() {
    let headers = [
        &VALID_HEADERS[..],
        &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="],
    ]
    .concat();
    let (server, _) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::InvalidHeader {
            name: "Sec-WebSocket-Key",
            ..
        })
    ));
}

#[test]
fn server_receives_request_with_old_version() {
    let headers = headers_with("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8"));
    let response = assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers),
        426,
        HandshakeError::UnsupportedVersion,
    );
    assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
    assert_eq!(response.header("Upgrade"), Some("websocket"));
}

#[test]
fn server_receives_request_without_version() {
    let response = assert_refused(
        &request_bytes(
            "GET / HTTP/1.1",
            &headers_with("Sec-WebSocket-Version", None),
        ),
        426,
        HandshakeError::UnsupportedVersion,
    );
    assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn server_receives_request_with_body() {
    let headers = [&VALID_HEADERS[..], &["Content-Length: 2"]].concat();
    let mut bytes = request_bytes("GET / HTTP/1.1", &headers);
    bytes.extend_from_slice(b"hi");
    let (server, events) = server_receiving(&bytes);
    assert!(events.is_empty());
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::InvalidHeader {
            name: "Content-Length",
            ..
        })
    ));

    let headers = [&VALID_HEADERS[..], &["Transfer-Encoding: chunked"]].concat();
    let mut bytes = request_bytes("GET / HTTP/1.1", &headers);
    bytes.extend_from_slice(b"0\r\n\r\n");
    let (mut server, events) = server_receiving(&bytes);
    assert!(events.is_empty());
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::InvalidHeader {
            name: "Transfer-Encoding",
            ..
        })
    ));
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 400);
}

#[test]
fn server_receives_malformed_request() {
    for bytes in [
        &b"GET / HTTP/1.1\nHost: a\n\n"[..],             // bare LF
        b"GET / HTTP/1.1\r\nHost a\r\n\r\n",             // no colon
        b"GET / HTTP/1.1\r\nBad Header: a\r\n\r\n",      // space in name
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n", // TLS on a plain port
    ] {
        let (mut server, events) = server_receiving(bytes);
        assert!(events.is_empty());
        assert!(
            matches!(
                server.handshake_error(),
                Some(HandshakeError::MalformedHttp(_))
            ),
            "{bytes:?}: {:?}",
            server.handshake_error()
        );
        assert_eq!(WireResponse::parse(&sent(&mut server)).status, 400);
    }
}

#[test]
fn server_receives_request_target_that_is_not_a_path() {
    for request_line in ["GET * HTTP/1.1", "GET example.com:443 HTTP/1.1"] {
        let (server, events) = server_receiving(&request_bytes(request_line, &VALID_HEADERS));
        assert!(events.is_empty(), "{request_line}");
        assert!(
            matches!(
                server.handshake_error(),
                Some(HandshakeError::MalformedHttp(_))
            ),
            "{request_line}: {:?}",
            server.handshake_error()
        );
    }
}

#[test]
fn server_receives_absolute_request_target() {
    // RFC 9112 §3.2.2: "a server MUST accept the absolute-form in requests".
    let bytes = request_bytes(
        "GET http://example.com/chat?room=1 HTTP/1.1",
        &VALID_HEADERS,
    );
    let (_, events) = server_receiving(&bytes);
    let [Event::Request(request)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(request.uri().path(), "/chat");
    assert_eq!(request.uri().query(), Some("room=1"));
}

// ----- limits -----

#[test]
fn server_receives_9_kib_request_line() {
    let line = format!("GET /{} HTTP/1.1", "a".repeat(9 * 1024));
    assert_refused(
        &request_bytes(&line, &VALID_HEADERS),
        414,
        HandshakeError::RequestLineTooLong,
    );
}

#[test]
fn server_detects_long_request_line_before_its_end() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(b"GET /");
    server.receive_data(&vec![b'a'; 8 * 1024]);
    // No CRLF yet: the line is already over the limit.
    assert_eq!(server.next_event(), None);
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::RequestLineTooLong)
    );
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 414);
}

#[test]
fn server_accepts_request_line_at_configured_limit() {
    let config = ServerConfig::default().max_request_line(100);
    // 100 bytes with the CRLF.
    let line = format!(
        "GET /{} HTTP/1.1",
        "a".repeat(100 - "GET / HTTP/1.1\r\n".len())
    );
    let mut server = ServerProtocol::new(config.clone());
    server.receive_data(&request_bytes(&line, &VALID_HEADERS));
    assert!(matches!(server.next_event(), Some(Event::Request(_))));

    let longer = line.replacen("/", "/a", 1);
    let mut server = ServerProtocol::new(config);
    server.receive_data(&request_bytes(&longer, &VALID_HEADERS));
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::RequestLineTooLong)
    );
}

#[test]
fn server_receives_129_headers() {
    let extra: Vec<String> = (0..123)
        .map(|index| format!("X-Extra-{index}: 1"))
        .collect();
    let mut headers: Vec<&str> = VALID_HEADERS.to_vec();
    headers.extend(extra.iter().map(String::as_str));
    // 128 headers pass.
    assert_eq!(headers.len(), 128);
    let (_, events) = server_receiving(&request_bytes("GET / HTTP/1.1", &headers));
    assert!(matches!(&events[..], [Event::Request(_)]));
    // 129 do not.
    headers.push("X-One-Too-Many: 1");
    assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers),
        431,
        HandshakeError::HeadersTooLarge,
    );
}

#[test]
fn server_detects_too_many_headers_before_end_of_head() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(b"GET / HTTP/1.1\r\n");
    for index in 0..129 {
        assert_eq!(server.state(), State::Connecting, "at {index}");
        server.receive_data(format!("X-Header-{index}: 1\r\n").as_bytes());
    }
    // No empty line yet.
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::HeadersTooLarge)
    );
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 431);
}

#[test]
fn server_receives_9_kib_header_block() {
    let big = format!("X-Big: {}", "b".repeat(9 * 1024));
    let headers = [&VALID_HEADERS[..], &[big.as_str()]].concat();
    assert_refused(
        &request_bytes("GET / HTTP/1.1", &headers),
        431,
        HandshakeError::HeadersTooLarge,
    );
}

#[test]
fn server_detects_large_header_block_before_end_of_head() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(b"GET / HTTP/1.1\r\nX-Big: ");
    for _ in 0..9 {
        server.receive_data(&[b'b'; 1024]);
    }
    assert_eq!(server.next_event(), None);
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::HeadersTooLarge)
    );
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 431);
}

/// Feeds `bytes` one byte at a time, calling `next_event` after each, and counts requests.
fn requests_received_bytewise(config: ServerConfig, bytes: &[u8]) -> usize {
    let mut server = ServerProtocol::new(config);
    let mut requests = 0;
    for byte in bytes {
        server.receive_data(std::slice::from_ref(byte));
        while let Some(event) = server.next_event() {
            assert!(matches!(event, Event::Request(_)), "{event:?}");
            requests += 1;
        }
    }
    assert_eq!(server.handshake_error(), None);
    requests
}

#[test]
fn server_receives_8000_byte_head_byte_by_byte() {
    // A header block just under the 8 KiB limit. The unit tests of `HeadParser` check that
    // each byte is examined once (a count, not a time); this checks the whole path.
    let filler: Vec<String> = (0..100)
        .map(|index| format!("X-F{index:03}: {}", "f".repeat(69)))
        .collect();
    let mut headers: Vec<&str> = VALID_HEADERS.to_vec();
    headers.extend(filler.iter().map(String::as_str));
    let bytes = request_bytes("GET / HTTP/1.1", &headers);
    let header_block = bytes.len() - "GET / HTTP/1.1\r\n".len();
    assert!((8000..8192).contains(&header_block), "{header_block}");
    assert_eq!(
        requests_received_bytewise(ServerConfig::default(), &bytes),
        1
    );
}

#[test]
fn server_receives_256_kib_header_byte_by_byte_in_linear_time() {
    // With the limits raised, a 256 KiB header line fed one byte at a time: linear work is
    // about 256 Ki steps, while rescanning the head (or just the current line) on every
    // byte would be some 34 billion byte comparisons, minutes even in a release build.
    let config = ServerConfig::default()
        .max_request_line(1 << 20)
        .max_header_bytes(1 << 20);
    let big = format!("X-Big: {}", "b".repeat(256 * 1024));
    let headers = [&VALID_HEADERS[..], &[big.as_str()]].concat();
    let bytes = request_bytes("GET / HTTP/1.1", &headers);
    let started = std::time::Instant::now();
    assert_eq!(requests_received_bytewise(config, &bytes), 1);
    // A bound two orders of magnitude above the linear time of a debug build, and far below
    // the quadratic one, so that it neither flakes nor misses a regression.
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
}

// ----- end of stream -----

#[test]
fn server_receives_eof_before_end_of_head() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n");
    server.receive_eof();
    assert_eq!(server.next_event(), None);
    assert_eq!(server.state(), State::Closed);
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::UnexpectedEof)
    );
    assert!(server.outgoing().is_empty());
    assert!(!server.eof_to_send());
}

#[test]
fn server_receives_eof_without_data() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_eof();
    assert_eq!(server.state(), State::Closed);
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::UnexpectedEof)
    );
    assert!(server.outgoing().is_empty());
}

#[test]
fn server_receives_eof_after_long_line() {
    // The limit is what the bytes show, even if the stream then ends.
    let mut server = ServerProtocol::new(ServerConfig::default().max_request_line(16));
    server.receive_buffer().extend_from_slice(&[b'a'; 20]);
    server.receive_eof();
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::RequestLineTooLong)
    );
    assert_eq!(WireResponse::parse(&sent(&mut server)).status, 414);
}

/// `send_accept` writes what `send_response(accept(request))` writes, byte for byte, and
/// leaves the connection in the same state: with and without a `Server` header, with and
/// without permessage-deflate negotiated, with frames already behind the request head.
#[test]
fn send_accept_writes_the_same_response_as_accept_then_send_response() {
    use sockjet_proto::{Config, DeflateConfig};
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
    let mut with_offer = VALID_HEADERS.to_vec();
    with_offer.push(offer);
    let deflate = Config::default().deflate(Some(DeflateConfig::default()));
    let cases = [
        (ServerConfig::default(), VALID_HEADERS.to_vec()),
        (
            ServerConfig::default().server_header(None),
            VALID_HEADERS.to_vec(),
        ),
        (
            ServerConfig::default().protocol(deflate.clone()),
            with_offer.clone(),
        ),
        (
            ServerConfig::default()
                .protocol(deflate)
                .server_header(Some("x/1".into())),
            with_offer,
        ),
    ];
    // A masked text frame "hi" right behind the head.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    for (config, headers) in cases {
        let mut input = request_bytes("GET /chat HTTP/1.1", &headers);
        input.extend_from_slice(&frame);
        let run = |fast: bool| {
            let mut server = ServerProtocol::new(config.clone());
            server.receive_data(&input);
            let Some(Event::Request(request)) = server.next_event() else {
                panic!("no request")
            };
            if fast {
                assert!(server.send_accept(&request).unwrap());
            } else {
                let response = server.accept(&request);
                server.send_response(response).unwrap();
            }
            let wire = match fast {
                // A server keeps these bytes as the response sent, so they carry no spare
                // room (`Outgoing::take_all` hands over the buffer itself).
                true => {
                    let head = server.outgoing().take_all();
                    assert_eq!(head.capacity(), head.len(), "spare room in the 101");
                    head.to_vec()
                }
                false => sent(&mut server),
            };
            let events: Vec<_> = std::iter::from_fn(|| server.next_event()).collect();
            let state = server.state();
            (wire, state, server.into_protocol().is_compressing(), events)
        };
        let (fast, slow) = (run(true), run(false));
        assert_eq!(
            String::from_utf8_lossy(&fast.0),
            String::from_utf8_lossy(&slow.0)
        );
        assert_eq!(fast, slow);
        assert_eq!(fast.1, State::Open);
        assert_eq!(fast.3, vec![Event::Message(Message::text("hi"))]);
    }
}

/// `send_accept` declines, sending nothing, what it cannot accept: an invalid handshake
/// (answered with `accept`'s error response as usual), and a second answer.
#[test]
fn send_accept_declines_an_invalid_request_and_a_second_answer() {
    let mut config = ServerConfig::default();
    config.deliver_invalid_requests = true;
    let mut server = ServerProtocol::new(config);
    server.receive_data(&request_bytes(
        "GET / HTTP/1.1",
        &headers_with("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
    ));
    let Some(Event::Request(request)) = server.next_event() else {
        panic!("no request")
    };
    assert!(!server.send_accept(&request).unwrap());
    assert!(sent(&mut server).is_empty());
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    server.send_response(response).unwrap();
    assert!(server.send_accept(&request).is_err());
}
