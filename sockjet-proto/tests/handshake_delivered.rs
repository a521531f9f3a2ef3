//! `ServerConfig::deliver_invalid_requests`: well-formed HTTP requests that are not opening
//! handshakes reach the application (for health checks and plain pages behind a request
//! hook), while malformed HTTP is still answered by the core.

use sockjet_proto::{
    ApiMisuse, Event, HandshakeError, Request, Response, ServerConfig, ServerProtocol, State,
    http::{Method, StatusCode},
};

const UPGRADE_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn delivering() -> ServerProtocol {
    ServerProtocol::new(ServerConfig::default().deliver_invalid_requests(true))
}

/// Feeds `bytes` to a delivering server and returns it with the request it delivered.
fn delivered(bytes: &[u8]) -> (ServerProtocol, Request) {
    let mut server = delivering();
    server.receive_data(bytes);
    match server.next_event() {
        Some(Event::Request(request)) => (server, *request),
        other => panic!("expected a request, got {other:?}"),
    }
}

fn sent(server: &mut ServerProtocol) -> String {
    let mut wire = Vec::new();
    server.outgoing().drain_into(&mut wire);
    String::from_utf8(wire).unwrap()
}

fn ok(body: &'static str) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::OK;
    response
}

#[test]
fn plain_get_is_delivered_and_answered_as_http() {
    let (mut server, request) = delivered(b"GET /healthz?full=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), "/healthz");
    assert_eq!(request.uri().query(), Some("full=1"));
    assert_eq!(
        server.request_error(),
        Some(&HandshakeError::MissingHeader("Upgrade"))
    );
    assert_eq!(server.state(), State::Connecting);
    server.send_response(ok("ok\n")).unwrap();
    assert_eq!(server.state(), State::Closed);
    assert!(server.eof_to_send());
    // The reason the request was not a handshake stays on record.
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::MissingHeader("Upgrade"))
    );
    assert_eq!(server.request_error(), None);
    let wire = sent(&mut server);
    assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
    assert!(wire.contains("Content-Length: 3\r\n"), "{wire}");
    assert!(wire.ends_with("\r\n\r\nok\n"), "{wire}");
}

#[test]
fn accept_answers_an_invalid_request_with_its_error() {
    let (mut server, request) = delivered(b"POST /chat HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        server.request_error(),
        Some(&HandshakeError::MethodNotAllowed)
    );
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
    server.send_response(response).unwrap();
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::MethodNotAllowed)
    );
    assert!(sent(&mut server).starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
}

#[test]
fn a_101_to_an_invalid_request_is_refused() {
    let (mut server, _) = delivered(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut response = Response::default();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    assert_eq!(
        server.send_response(response),
        Err(ApiMisuse::AcceptInvalidRequest)
    );
    assert_eq!(server.state(), State::Connecting);
    assert!(server.outgoing().is_empty());
    // The application can still answer it otherwise.
    server.send_response(ok("")).unwrap();
    assert_eq!(server.state(), State::Closed);
}

#[test]
fn http_1_0_probe_is_delivered() {
    let (server, request) = delivered(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(request.uri().path(), "/healthz");
    assert_eq!(
        server.request_error(),
        Some(&HandshakeError::UnsupportedHttpVersion)
    );
}

#[test]
fn valid_handshake_is_delivered_without_error_and_opens() {
    let bytes = format!("GET /chat HTTP/1.1\r\nHost: a\r\n{UPGRADE_HEADERS}\r\n");
    let (mut server, request) = delivered(bytes.as_bytes());
    assert_eq!(server.request_error(), None);
    let response = server.accept(&request);
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    server.send_response(response).unwrap();
    assert_eq!(server.state(), State::Open);
    assert_eq!(server.handshake_error(), None);
}

#[test]
fn malformed_http_is_still_answered_by_the_core() {
    let mut server = delivering();
    server.receive_data(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n");
    assert_eq!(server.next_event(), None);
    assert!(matches!(
        server.handshake_error(),
        Some(HandshakeError::MalformedHttp(_))
    ));
    assert!(sent(&mut server).starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn oversized_head_is_still_answered_by_the_core() {
    let mut server = ServerProtocol::new(
        ServerConfig::default()
            .deliver_invalid_requests(true)
            .max_request_line(32),
    );
    server.receive_data(&[b'a'; 64]);
    assert_eq!(server.next_event(), None);
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::RequestLineTooLong)
    );
}

#[test]
fn without_the_option_invalid_requests_never_reach_the_application() {
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(server.next_event(), None);
    assert_eq!(
        server.handshake_error(),
        Some(&HandshakeError::MissingHeader("Upgrade"))
    );
    assert!(sent(&mut server).starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn body_behind_an_answered_request_is_ignored() {
    let (mut server, _) =
        delivered(b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    server.send_response(ok("thanks")).unwrap();
    server.receive_data(b"more bytes");
    assert_eq!(server.next_event(), None);
    let wire = sent(&mut server);
    assert!(wire.ends_with("thanks"), "{wire}");
}
