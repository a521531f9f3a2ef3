//! RFC 6455 §4.1: the client side of the opening handshake, bytes in and bytes out, and a
//! round trip with the server side.

use sockjet_proto::{
    ApiMisuse, ClientConfig, ClientProtocol, Event, HandshakeError, MaskKeys, Message,
    ServerConfig, ServerProtocol, State,
    http::{HeaderName, HeaderValue, StatusCode, Uri},
};

/// base64: `dGhlIHNhbXBsZSBub25jZQ==`, the key of RFC 6455 §1.3.
const KEY: [u8; 16] = *b"the sample nonce";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const VALID_HEADERS: [&str; 3] = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
];

fn uri(text: &str) -> Uri {
    text.parse().unwrap()
}

fn client_with(config: ClientConfig) -> ClientProtocol {
    let mut client = ClientProtocol::with_key(&uri("ws://example.com/chat"), config, KEY);
    client.send_request(client.connect_request()).unwrap();
    sent(&mut client);
    client
}

fn client() -> ClientProtocol {
    client_with(ClientConfig::default())
}

fn sent(client: &mut ClientProtocol) -> Vec<u8> {
    let mut wire = Vec::new();
    client.outgoing().drain_into(&mut wire);
    wire
}

fn response_bytes(status_line: &str, headers: &[&str]) -> Vec<u8> {
    let mut bytes = format!("{status_line}\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes
}

fn valid_response() -> Vec<u8> {
    response_bytes("HTTP/1.1 101 Switching Protocols", &VALID_HEADERS)
}

/// The valid headers with the one starting with `name` replaced (or removed).
fn headers_with(name: &str, replacement: Option<&'static str>) -> Vec<&'static str> {
    VALID_HEADERS
        .iter()
        .filter_map(|header| {
            if header.starts_with(&format!("{name}:")) {
                replacement
            } else {
                Some(*header)
            }
        })
        .collect()
}

/// Feeds `bytes` to a client that sent its request and takes its events.
fn client_receiving(config: ClientConfig, bytes: &[u8]) -> (ClientProtocol, Vec<Event>) {
    let mut client = client_with(config);
    client.receive_data(bytes);
    let events = std::iter::from_fn(|| client.next_event()).collect();
    (client, events)
}

fn assert_failed(bytes: &[u8], error: HandshakeError) -> ClientProtocol {
    let (mut client, events) = client_receiving(ClientConfig::default(), bytes);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(client.handshake_error(), Some(&error));
    assert_eq!(client.state(), State::Closed);
    assert!(client.eof_to_send());
    assert!(client.close_expected());
    assert!(client.outgoing().is_empty());
    // Later input is ignored.
    client.receive_data(&[0x81, 0x02, b'H', b'i']);
    assert_eq!(client.next_event(), None);
    client
}

// ----- the request -----

#[test]
fn client_sends_request() {
    let mut client = ClientProtocol::with_key(
        &uri("ws://example.com/chat?room=1"),
        ClientConfig::default(),
        KEY,
    );
    assert_eq!(client.state(), State::Connecting);
    client.send_request(client.connect_request()).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        String::from_utf8(sent(&mut client)).unwrap(),
        format!(
            "GET /chat?room=1 HTTP/1.1\r\n\
             Host: example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             User-Agent: sockjet/{version}\r\n\r\n"
        )
    );
    assert_eq!(client.state(), State::Connecting);
    assert!(!client.eof_to_send());
}

#[test]
fn client_sends_request_with_options() {
    // Without compression: no Sec-WebSocket-Extensions offer.
    let config = ClientConfig::default()
        .protocol(sockjet_proto::Config::default().deflate(None))
        .origin(Some("https://example.com".into()))
        .subprotocols(["chat", "superchat"])
        .header(
            HeaderName::from_static("x-token"),
            HeaderValue::from_static("42"),
        )
        .header(
            HeaderName::from_static("user-agent"),
            HeaderValue::from_static("custom/1"),
        );
    let mut client = ClientProtocol::with_key(&uri("wss://example.com"), config, KEY);
    client.send_request(client.connect_request()).unwrap();
    assert_eq!(
        String::from_utf8(sent(&mut client)).unwrap(),
        "GET / HTTP/1.1\r\n\
         Host: example.com\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Origin: https://example.com\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\
         X-Token: 42\r\n\
         User-Agent: custom/1\r\n\r\n"
    );
}

#[test]
fn client_sends_request_without_user_agent() {
    let config = ClientConfig::default().user_agent(None);
    let client = ClientProtocol::with_key(&uri("ws://example.com"), config, KEY);
    assert!(
        !client
            .connect_request()
            .headers()
            .contains_key("user-agent")
    );
}

#[test]
fn client_sends_host_with_port_only_when_not_default() {
    for (uri_text, host, target) in [
        ("ws://example.com/", "example.com", "/"),
        ("ws://example.com", "example.com", "/"),
        ("ws://example.com:80/a", "example.com", "/a"),
        ("ws://example.com:443/a", "example.com:443", "/a"),
        ("ws://example.com:8080/a?b=c", "example.com:8080", "/a?b=c"),
        ("wss://example.com:443/", "example.com", "/"),
        ("wss://example.com:80/", "example.com:80", "/"),
        ("wss://example.com:8443", "example.com:8443", "/"),
        ("ws://example.com?x=1", "example.com", "/?x=1"),
        ("ws://user:pass@example.com:9000/", "example.com:9000", "/"),
        ("ws://127.0.0.1:9000/", "127.0.0.1:9000", "/"),
        ("ws://[::1]:9000/", "[::1]:9000", "/"),
        ("ws://[::1]/", "[::1]", "/"),
    ] {
        let client = ClientProtocol::with_key(&uri(uri_text), ClientConfig::default(), KEY);
        let request = client.connect_request();
        assert_eq!(request.headers()["host"], host, "{uri_text}");
        assert_eq!(request.uri(), target, "{uri_text}");
    }
}

#[test]
#[should_panic(expected = "ws:// or wss://")]
fn client_refuses_http_uri() {
    ClientProtocol::new(&uri("http://example.com/"), ClientConfig::default());
}

#[test]
#[should_panic(expected = "not an HTTP token")]
fn client_refuses_subprotocol_that_is_not_a_token() {
    let config = ClientConfig::default().subprotocols(["a b"]);
    ClientProtocol::new(&uri("ws://example.com/"), config);
}

#[test]
fn client_uses_a_random_key_per_connection() {
    let keys: Vec<HeaderValue> = (0..2)
        .map(|_| {
            let client = ClientProtocol::new(&uri("ws://example.com/"), ClientConfig::default());
            client.connect_request().headers()["sec-websocket-key"].clone()
        })
        .collect();
    assert_ne!(keys[0], keys[1]);
    for key in &keys {
        assert_eq!(key.len(), 24);
        assert!(key.to_str().unwrap().ends_with("=="));
    }
}

#[test]
fn client_sends_request_once() {
    let mut client = client();
    assert_eq!(
        client.send_request(client.connect_request()),
        Err(ApiMisuse::NotConnecting)
    );
    assert!(client.outgoing().is_empty());
}

// ----- valid responses -----

#[test]
fn client_receives_101() {
    let (mut client, events) = client_receiving(ClientConfig::default(), &valid_response());
    let [Event::Response(response)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["sec-websocket-accept"], ACCEPT);
    assert_eq!(client.state(), State::Open);
    assert_eq!(client.handshake_error(), None);
    assert_eq!(client.subprotocol(), None);
    assert!(!client.eof_to_send());
    assert!(!client.close_expected());
    client.protocol_mut().send_text("Hi").unwrap();
    assert_eq!(sent(&mut client).len(), 2 + 4 + 2); // masked
}

#[test]
fn client_receives_101_byte_by_byte() {
    let mut client = client();
    let mut events = Vec::new();
    for byte in valid_response() {
        assert_eq!(client.state(), State::Connecting);
        client.receive_data(&[byte]);
        events.extend(std::iter::from_fn(|| client.next_event()));
    }
    assert!(matches!(&events[..], [Event::Response(_)]), "{events:?}");
    assert_eq!(client.state(), State::Open);
}

#[test]
fn client_receives_101_read_into_receive_buffer() {
    let mut client = client();
    client.receive_buffer().extend_from_slice(&valid_response());
    assert!(matches!(client.next_event(), Some(Event::Response(_))));
    assert_eq!(client.state(), State::Open);
}

#[test]
fn client_receives_frame_behind_101_head() {
    let mut bytes = valid_response();
    bytes.extend_from_slice(&[0x81, 0x02, b'H', b'i']);
    let (client, events) = client_receiving(ClientConfig::default(), &bytes);
    assert!(matches!(events[0], Event::Response(_)));
    assert_eq!(events[1..], [Event::Message(Message::text("Hi"))]);
    assert_eq!(client.state(), State::Open);
}

#[test]
fn client_into_protocol_keeps_frames_behind_head() {
    let mut client = client();
    let mut bytes = valid_response();
    bytes.extend_from_slice(&[0x81, 0x02, b'H', b'i']);
    client.receive_data(&bytes);
    assert!(matches!(client.next_event(), Some(Event::Response(_))));
    let mut protocol = client.into_protocol();
    assert_eq!(
        protocol.next_event(),
        Some(Event::Message(Message::text("Hi")))
    );
}

#[test]
fn client_accepts_token_lists_and_any_case() {
    let headers = [
        "UPGRADE: WebSocket",
        "connection: keep-alive, UPGRADE",
        "sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  ",
    ];
    let bytes = response_bytes("HTTP/1.1 101 Web Socket Protocol Handshake", &headers);
    let (client, events) = client_receiving(ClientConfig::default(), &bytes);
    assert!(matches!(&events[..], [Event::Response(_)]), "{events:?}");
    assert_eq!(client.state(), State::Open);
}

#[test]
fn client_receives_offered_subprotocol() {
    let config = ClientConfig::default().subprotocols(["chat", "superchat"]);
    let headers = [&VALID_HEADERS[..], &["Sec-WebSocket-Protocol: superchat"]].concat();
    let bytes = response_bytes("HTTP/1.1 101 Switching Protocols", &headers);
    let (client, events) = client_receiving(config, &bytes);
    assert!(matches!(&events[..], [Event::Response(_)]), "{events:?}");
    assert_eq!(client.subprotocol(), Some("superchat"));
}

#[test]
fn client_checks_accept_of_edited_request() {
    let mut client =
        ClientProtocol::with_key(&uri("ws://example.com/"), ClientConfig::default(), [0; 16]);
    let mut request = client.connect_request();
    request.headers_mut().insert(
        "sec-websocket-key",
        HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    client.send_request(request).unwrap();
    client.receive_data(&valid_response());
    assert!(matches!(client.next_event(), Some(Event::Response(_))));
}

// ----- invalid responses -----

#[test]
fn client_receives_403_with_body() {
    let mut bytes = response_bytes(
        "HTTP/1.1 403 Forbidden",
        &["Content-Type: text/plain", "Content-Length: 9"],
    );
    bytes.extend_from_slice(b"Not here.");
    let client = assert_failed(
        &bytes,
        HandshakeError::UnexpectedStatus(StatusCode::FORBIDDEN),
    );
    let response = client.failed_response().unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.body(), "Not here.");
}

#[test]
fn client_waits_for_body_of_refusal() {
    let mut client = client();
    client.receive_data(&response_bytes(
        "HTTP/1.1 401 Unauthorized",
        &["Content-Length: 5"],
    ));
    client.receive_data(b"no");
    assert_eq!(client.next_event(), None);
    assert_eq!(client.state(), State::Connecting);
    client.receive_data(b" way and more");
    assert_eq!(
        client.handshake_error(),
        Some(&HandshakeError::UnexpectedStatus(StatusCode::UNAUTHORIZED))
    );
    assert_eq!(client.failed_response().unwrap().body(), "no wa");
}

#[test]
fn client_receives_refusal_cut_short() {
    let mut client = client();
    client.receive_data(&response_bytes(
        "HTTP/1.1 500 Internal Server Error",
        &["Content-Length: 50"],
    ));
    client.receive_data(b"oops");
    client.receive_eof();
    assert_eq!(client.state(), State::Closed);
    assert_eq!(
        client.handshake_error(),
        Some(&HandshakeError::UnexpectedStatus(
            StatusCode::INTERNAL_SERVER_ERROR
        ))
    );
    assert_eq!(client.failed_response().unwrap().body(), "oops");
}

#[test]
fn client_receives_refusal_without_length() {
    let client = assert_failed(
        &response_bytes("HTTP/1.1 200 OK", &["Content-Type: text/html"]),
        HandshakeError::UnexpectedStatus(StatusCode::OK),
    );
    assert!(client.failed_response().unwrap().body().is_empty());
}

#[test]
fn client_receives_refusal_with_huge_body() {
    let client = assert_failed(
        &response_bytes("HTTP/1.1 404 Not Found", &["Content-Length: 1000000"]),
        HandshakeError::UnexpectedStatus(StatusCode::NOT_FOUND),
    );
    assert!(client.failed_response().unwrap().body().is_empty());
}

#[test]
fn client_receives_bad_accept() {
    let headers = headers_with(
        "Sec-WebSocket-Accept",
        Some("Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk="),
    );
    let client = assert_failed(
        &response_bytes("HTTP/1.1 101 Switching Protocols", &headers),
        HandshakeError::InvalidAccept,
    );
    // The 101 that failed is kept for diagnosis.
    assert_eq!(
        client.failed_response().unwrap().status(),
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[test]
fn client_receives_two_accepts() {
    let headers = [
        &VALID_HEADERS[..],
        &["Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="],
    ]
    .concat();
    assert_failed(
        &response_bytes("HTTP/1.1 101 Switching Protocols", &headers),
        HandshakeError::InvalidAccept,
    );
}

#[test]
fn client_receives_no_accept() {
    assert_failed(
        &response_bytes(
            "HTTP/1.1 101 Switching Protocols",
            &headers_with("Sec-WebSocket-Accept", None),
        ),
        HandshakeError::MissingHeader("Sec-WebSocket-Accept"),
    );
}

#[test]
fn client_receives_no_upgrade() {
    assert_failed(
        &response_bytes(
            "HTTP/1.1 101 Switching Protocols",
            &headers_with("Upgrade", None),
        ),
        HandshakeError::MissingHeader("Upgrade"),
    );
}

#[test]
fn client_receives_other_upgrade() {
    let (client, _) = client_receiving(
        ClientConfig::default(),
        &response_bytes(
            "HTTP/1.1 101 Switching Protocols",
            &headers_with("Upgrade", Some("Upgrade: h2c")),
        ),
    );
    assert!(matches!(
        client.handshake_error(),
        Some(HandshakeError::InvalidHeader {
            name: "Upgrade",
            ..
        })
    ));
}

#[test]
fn client_receives_no_connection() {
    assert_failed(
        &response_bytes(
            "HTTP/1.1 101 Switching Protocols",
            &headers_with("Connection", None),
        ),
        HandshakeError::MissingHeader("Connection"),
    );
}

#[test]
fn client_receives_unexpected_subprotocol() {
    let headers = [&VALID_HEADERS[..], &["Sec-WebSocket-Protocol: chat"]].concat();
    assert_failed(
        &response_bytes("HTTP/1.1 101 Switching Protocols", &headers),
        HandshakeError::UnexpectedNegotiation("subprotocol chat not offered".into()),
    );
}

#[test]
fn client_receives_subprotocol_not_offered() {
    let config = ClientConfig::default().subprotocols(["chat"]);
    for chosen in [
        "Sec-WebSocket-Protocol: superchat",
        "Sec-WebSocket-Protocol: chat, chat",
        "Sec-WebSocket-Protocol: CHAT",
    ] {
        let headers = [&VALID_HEADERS[..], &[chosen]].concat();
        let (client, events) = client_receiving(
            config.clone(),
            &response_bytes("HTTP/1.1 101 Switching Protocols", &headers),
        );
        assert!(events.is_empty(), "{chosen}");
        assert!(
            matches!(
                client.handshake_error(),
                Some(HandshakeError::UnexpectedNegotiation(_))
            ),
            "{chosen}: {:?}",
            client.handshake_error()
        );
    }
}

#[test]
fn client_receives_unexpected_extension() {
    // An extension that was never offered.
    let headers = [
        &VALID_HEADERS[..],
        &["Sec-WebSocket-Extensions: x-webkit-foo"],
    ]
    .concat();
    let (client, events) = client_receiving(
        ClientConfig::default(),
        &response_bytes("HTTP/1.1 101 Switching Protocols", &headers),
    );
    assert!(events.is_empty());
    assert!(matches!(
        client.handshake_error(),
        Some(HandshakeError::UnexpectedNegotiation(_))
    ));
    // permessage-deflate when compression was not offered.
    let headers = [
        &VALID_HEADERS[..],
        &["Sec-WebSocket-Extensions: permessage-deflate"],
    ]
    .concat();
    let no_compression =
        ClientConfig::default().protocol(sockjet_proto::Config::default().deflate(None));
    let (client, events) = client_receiving(
        no_compression,
        &response_bytes("HTTP/1.1 101 Switching Protocols", &headers),
    );
    assert!(events.is_empty());
    assert_eq!(
        client.handshake_error(),
        Some(&HandshakeError::UnexpectedNegotiation(
            "extension permessage-deflate not offered".into()
        ))
    );
}

#[test]
fn client_receives_http_1_0_101() {
    assert_failed(
        &response_bytes("HTTP/1.0 101 Switching Protocols", &VALID_HEADERS),
        HandshakeError::UnsupportedHttpVersion,
    );
}

#[test]
fn client_receives_malformed_response() {
    let (client, _) = client_receiving(ClientConfig::default(), b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    assert!(
        matches!(
            client.handshake_error(),
            Some(HandshakeError::MalformedHttp(_))
        ),
        "{:?}",
        client.handshake_error()
    );
}

#[test]
fn client_receives_too_large_header_block() {
    let mut client = client_with(ClientConfig::default().max_header_bytes(1024));
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nX-Big: ");
    client.receive_data(&[b'b'; 1024]);
    assert_eq!(
        client.handshake_error(),
        Some(&HandshakeError::HeadersTooLarge)
    );
}

#[test]
fn client_receives_eof_before_end_of_head() {
    let mut client = client();
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n");
    client.receive_eof();
    assert_eq!(client.next_event(), None);
    assert_eq!(client.state(), State::Closed);
    assert_eq!(
        client.handshake_error(),
        Some(&HandshakeError::UnexpectedEof)
    );
    assert!(client.failed_response().is_none());
    assert!(!client.eof_to_send());
}

// ----- round trip -----

struct FixedKeys;

impl MaskKeys for FixedKeys {
    fn next_key(&mut self) -> [u8; 4] {
        [1, 2, 3, 4]
    }
}

#[test]
fn client_and_server_open_connection_in_memory() {
    let config = ClientConfig::default().subprotocols(["chat"]);
    let mut client =
        ClientProtocol::new(&uri("ws://example.com/room"), config).with_mask_keys(FixedKeys);
    let mut server = ServerProtocol::new(ServerConfig::default());

    // Client → server: the request.
    client.send_request(client.connect_request()).unwrap();
    server.receive_data(&sent(&mut client));
    let Some(Event::Request(request)) = server.next_event() else {
        panic!()
    };
    assert_eq!(request.uri(), "/room");
    assert_eq!(request.headers()["sec-websocket-protocol"], "chat");

    // Server → client: the response, choosing the subprotocol, and a first message.
    let mut response = server.accept(&request);
    response
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
    server.send_response(response).unwrap();
    server.protocol_mut().send_text("welcome").unwrap();
    let mut wire = Vec::new();
    server.outgoing().drain_into(&mut wire);
    client.receive_data(&wire);

    assert!(matches!(client.next_event(), Some(Event::Response(_))));
    assert_eq!(
        client.next_event(),
        Some(Event::Message(Message::text("welcome")))
    );
    assert_eq!(client.state(), State::Open);
    assert_eq!(server.state(), State::Open);
    assert_eq!(client.subprotocol(), Some("chat"));
    assert_eq!(server.subprotocol(), Some("chat"));

    // Client → server: a masked message.
    client.protocol_mut().send_text("Hi").unwrap();
    let wire = sent(&mut client);
    assert_eq!(wire, [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
    server.receive_data(&wire);
    assert_eq!(
        server.next_event(),
        Some(Event::Message(Message::text("Hi")))
    );
}

#[test]
fn client_and_server_exchange_bytes_one_at_a_time() {
    let mut client = ClientProtocol::new(&uri("wss://example.com/"), ClientConfig::default());
    let mut server = ServerProtocol::new(ServerConfig::default());
    client.send_request(client.connect_request()).unwrap();
    let mut request = None;
    for byte in sent(&mut client) {
        server.receive_data(&[byte]);
        if let Some(Event::Request(received)) = server.next_event() {
            request = Some(received);
        }
    }
    server
        .send_response(server.accept(&request.unwrap()))
        .unwrap();
    let mut wire = Vec::new();
    server.outgoing().drain_into(&mut wire);
    let mut response = None;
    for byte in wire {
        client.receive_data(&[byte]);
        if let Some(event) = client.next_event() {
            response = Some(event);
        }
    }
    assert!(matches!(response, Some(Event::Response(_))));
    assert_eq!(client.state(), State::Open);
    assert_eq!(server.state(), State::Open);
}

#[test]
fn client_receives_server_refusal_in_memory() {
    let mut client = ClientProtocol::new(&uri("ws://example.com/"), ClientConfig::default());
    let mut server = ServerProtocol::new(ServerConfig::default());
    client.send_request(client.connect_request()).unwrap();
    server.receive_data(&sent(&mut client));
    let Some(Event::Request(_)) = server.next_event() else {
        panic!()
    };
    server
        .send_response(server.reject(StatusCode::NOT_FOUND, "no such room"))
        .unwrap();
    let mut wire = Vec::new();
    server.outgoing().drain_into(&mut wire);
    client.receive_data(&wire);
    assert_eq!(client.next_event(), None);
    assert_eq!(
        client.handshake_error(),
        Some(&HandshakeError::UnexpectedStatus(StatusCode::NOT_FOUND))
    );
    assert_eq!(client.failed_response().unwrap().body(), "no such room");
    assert!(server.eof_to_send());
    assert!(client.eof_to_send());
}
