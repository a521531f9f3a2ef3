//! Requests parsed by another HTTP server (hyper, axum): `receive_parsed_request` for an
//! HTTP/1.1 upgrade (RFC 6455 §4.2.1) and `receive_extended_connect` for RFC 8441. The
//! core checks them as it checks bytes, and writes nothing: the other server answers.

use sockjet_proto::{
    Event, HandshakeError, Message, Request, ServerConfig, ServerProtocol, State,
    handshake::accept_key,
    http::{Method, StatusCode, Version, header},
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A valid upgrade request, as hyper hands it over, with `edit` applied.
fn request_with(edit: impl FnOnce(&mut Request)) -> Request {
    let mut request = Request::builder()
        .uri("/chat?room=1")
        .header("host", "example.com")
        .header("upgrade", "websocket")
        .header("connection", "keep-alive, Upgrade")
        .header("sec-websocket-key", KEY)
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    edit(&mut request);
    request
}

/// A valid RFC 8441 request, with `edit` applied.
fn connect_with(edit: impl FnOnce(&mut Request)) -> Request {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri("https://example.com/chat")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    edit(&mut request);
    request
}

fn server() -> ServerProtocol {
    ServerProtocol::new(ServerConfig::default())
}

/// Runs `receive_parsed_request` and returns the error and the response built for it.
fn refused(request: &Request) -> (HandshakeError, sockjet_proto::Response) {
    let mut server = server();
    let error = server.receive_parsed_request(request).unwrap_err();
    assert_eq!(server.state(), State::Closed);
    assert_eq!(server.handshake_error(), Some(&error));
    // The other server sends the error response and keeps the connection.
    assert!(server.outgoing().is_empty());
    assert!(!server.eof_to_send());
    let response = server.error_response(&error);
    (error, response)
}

#[test]
fn valid_request_is_accepted_without_writing() {
    let request = request_with(|_| {});
    let mut server = server();
    server.receive_parsed_request(&request).unwrap();
    assert_eq!(server.state(), State::Connecting);
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()[header::UPGRADE], "websocket");
    assert_eq!(response.headers()[header::CONNECTION], "Upgrade");
    assert_eq!(
        response.headers()[header::SEC_WEBSOCKET_ACCEPT],
        accept_key(KEY.as_bytes()).as_str()
    );
    server.send_response(response).unwrap();
    assert_eq!(server.state(), State::Open);
    assert!(
        server.outgoing().is_empty(),
        "the other server sends the 101"
    );
    // The handshake left no event behind, and frames flow.
    server.receive_data(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
    assert_eq!(
        server.next_event(),
        Some(Event::Message(Message::text("Hi")))
    );
    let mut protocol = server.into_protocol();
    protocol.send_text("ok").unwrap();
    let mut wire = Vec::new();
    protocol.outgoing().drain_into(&mut wire);
    assert_eq!(wire, b"\x81\x02ok");
}

#[test]
fn deflate_is_negotiated_as_for_bytes() {
    let request = request_with(|request| {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            "permessage-deflate; client_max_window_bits"
                .parse()
                .unwrap(),
        );
    });
    let mut server = server();
    server.receive_parsed_request(&request).unwrap();
    let response = server.accept(&request);
    let extensions = response.headers()[header::SEC_WEBSOCKET_EXTENSIONS]
        .to_str()
        .unwrap();
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    server.send_response(response).unwrap();
    assert!(server.protocol().is_compressing());
}

#[test]
fn removing_the_extension_header_refuses_compression() {
    let request = request_with(|request| {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            "permessage-deflate".parse().unwrap(),
        );
    });
    let mut server = server();
    server.receive_parsed_request(&request).unwrap();
    let mut response = server.accept(&request);
    response
        .headers_mut()
        .remove(header::SEC_WEBSOCKET_EXTENSIONS);
    server.send_response(response).unwrap();
    assert!(!server.protocol().is_compressing());
}

#[test]
fn chosen_subprotocol_is_recorded() {
    let request = request_with(|request| {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "chat, superchat".parse().unwrap(),
        );
    });
    let mut server = server();
    server.receive_parsed_request(&request).unwrap();
    let mut response = server.accept(&request);
    response
        .headers_mut()
        .insert(header::SEC_WEBSOCKET_PROTOCOL, "superchat".parse().unwrap());
    server.send_response(response).unwrap();
    assert_eq!(server.subprotocol(), Some("superchat"));
}

#[test]
fn bad_keys_get_400() {
    for key in [
        None,
        Some("dGhlIHNhbXBsZQ=="),
        Some("not base64!"),
        Some(""),
    ] {
        let request = request_with(|request| match key {
            None => drop(request.headers_mut().remove(header::SEC_WEBSOCKET_KEY)),
            Some(key) => drop(
                request
                    .headers_mut()
                    .insert(header::SEC_WEBSOCKET_KEY, key.parse().unwrap()),
            ),
        });
        let (error, response) = refused(&request);
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{key:?}: {error}"
        );
        assert!(error.to_string().contains("Sec-WebSocket-Key"), "{error}");
        assert_eq!(response.body(), error.to_string().as_bytes());
    }
}

#[test]
fn bad_versions_get_426_with_version_13() {
    for version in [None, Some("8"), Some("13, 8"), Some("14")] {
        let request = request_with(|request| match version {
            None => drop(request.headers_mut().remove(header::SEC_WEBSOCKET_VERSION)),
            Some(version) => drop(
                request
                    .headers_mut()
                    .insert(header::SEC_WEBSOCKET_VERSION, version.parse().unwrap()),
            ),
        });
        let (error, response) = refused(&request);
        assert_eq!(error, HandshakeError::UnsupportedVersion);
        assert_eq!(
            response.status(),
            StatusCode::UPGRADE_REQUIRED,
            "{version:?}"
        );
        // RFC 6455 §4.2.2 and RFC 9110 §15.5.22.
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(response.headers()[header::UPGRADE], "websocket");
    }
}

#[test]
fn plain_get_gets_400() {
    let request = request_with(|request| {
        request.headers_mut().remove(header::UPGRADE);
        request
            .headers_mut()
            .insert(header::CONNECTION, "keep-alive".parse().unwrap());
    });
    let (error, response) = refused(&request);
    assert_eq!(error, HandshakeError::MissingHeader("Upgrade"));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn connection_without_upgrade_gets_400() {
    let request = request_with(|request| {
        request
            .headers_mut()
            .insert(header::CONNECTION, "keep-alive".parse().unwrap());
    });
    let (error, response) = refused(&request);
    assert!(matches!(
        error,
        HandshakeError::InvalidHeader {
            name: "Connection",
            ..
        }
    ));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn other_methods_get_405_with_allow_get() {
    let request = request_with(|request| *request.method_mut() = Method::POST);
    let (error, response) = refused(&request);
    assert_eq!(error, HandshakeError::MethodNotAllowed);
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET");
}

#[test]
fn http_1_0_gets_505() {
    let request = request_with(|request| *request.version_mut() = Version::HTTP_10);
    let (error, response) = refused(&request);
    assert_eq!(error, HandshakeError::UnsupportedHttpVersion);
    assert_eq!(response.status(), StatusCode::HTTP_VERSION_NOT_SUPPORTED);
}

#[test]
fn missing_host_and_bodies_get_400() {
    let no_host = request_with(|request| drop(request.headers_mut().remove(header::HOST)));
    assert_eq!(refused(&no_host).0, HandshakeError::MissingHeader("Host"));
    let body = request_with(|request| {
        request
            .headers_mut()
            .insert(header::CONTENT_LENGTH, "5".parse().unwrap());
    });
    assert_eq!(refused(&body).1.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn rejecting_a_valid_request_writes_nothing() {
    let request = request_with(|_| {});
    let mut server = server();
    server.receive_parsed_request(&request).unwrap();
    let response = server.reject(StatusCode::FORBIDDEN, "no");
    server.send_response(response).unwrap();
    assert_eq!(server.state(), State::Closed);
    assert!(server.outgoing().is_empty());
    assert!(!server.eof_to_send());
    assert!(server.send_response(server.accept(&request)).is_err());
}

// A debug assertion: release builds skip the check.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "received data")]
fn parsed_request_after_bytes_is_misuse() {
    let mut server = server();
    server.receive_data(b"GET / HTTP/1.1\r\n");
    let _ = server.receive_parsed_request(&request_with(|_| {}));
}

#[test]
fn extended_connect_is_accepted_with_200() {
    let request = connect_with(|request| {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            "permessage-deflate".parse().unwrap(),
        );
    });
    let mut server = server();
    server
        .receive_extended_connect(&request, Some("websocket"))
        .unwrap();
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert!(!headers.contains_key(header::SEC_WEBSOCKET_ACCEPT));
    assert!(!headers.contains_key(header::UPGRADE));
    assert!(!headers.contains_key(header::CONNECTION));
    assert!(
        headers[header::SEC_WEBSOCKET_EXTENSIONS]
            .to_str()
            .unwrap()
            .starts_with("permessage-deflate")
    );
    server.send_response(response).unwrap();
    assert_eq!(server.state(), State::Open);
    assert!(server.protocol().is_compressing());
    assert!(server.outgoing().is_empty());
}

#[test]
fn extended_connect_needs_the_websocket_protocol() {
    let request = connect_with(|_| {});
    let mut server = server();
    assert_eq!(
        server.receive_extended_connect(&request, None),
        Err(HandshakeError::MissingHeader(":protocol"))
    );
    let mut server = ServerProtocol::new(ServerConfig::default());
    let error = server
        .receive_extended_connect(&request, Some("webtransport"))
        .unwrap_err();
    assert_eq!(
        server.error_response(&error).status(),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn extended_connect_errors_have_no_connection_headers() {
    let get = connect_with(|request| *request.method_mut() = Method::GET);
    let mut server = server();
    let error = server
        .receive_extended_connect(&get, Some("websocket"))
        .unwrap_err();
    let response = server.error_response(&error);
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "CONNECT");
    assert!(!response.headers().contains_key(header::CONNECTION));

    let old = connect_with(|request| {
        request
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, "8".parse().unwrap());
    });
    let mut server = ServerProtocol::new(ServerConfig::default());
    let error = server
        .receive_extended_connect(&old, Some("websocket"))
        .unwrap_err();
    let response = server.error_response(&error);
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    assert!(!response.headers().contains_key(header::UPGRADE));
    assert!(!response.headers().contains_key(header::CONNECTION));
}

#[test]
fn extended_connect_over_http_1_1_is_refused() {
    let request = connect_with(|request| *request.version_mut() = Version::HTTP_11);
    let mut server = server();
    assert_eq!(
        server.receive_extended_connect(&request, Some("websocket")),
        Err(HandshakeError::UnsupportedHttpVersion)
    );
    let no_path = connect_with(|request| *request.uri_mut() = "example.com:443".parse().unwrap());
    let mut server = ServerProtocol::new(ServerConfig::default());
    assert!(matches!(
        server.receive_extended_connect(&no_path, Some("websocket")),
        Err(HandshakeError::MalformedHttp(_))
    ));
}
