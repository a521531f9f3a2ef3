//! Helpers for the handshake policy tests (hooks, router, auth, origins, subprotocols,
//! rate limits): servers on loopback, raw HTTP exchanges, clients with extra headers.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

#[path = "../common/basics.rs"]
mod basics;

use std::{future::Future, net::SocketAddr};

pub use basics::*;
use sockjet::{
    ClientBuilder, Connection, Error, ServerBuilder,
    proto::{
        ClientConfig, HandshakeError,
        http::{HeaderName, HeaderValue, StatusCode},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A handler that sends one text message and closes: the path, then, after a space,
/// whatever `describe` says about the connection.
pub fn describing(
    describe: fn(&Connection) -> String,
) -> impl Fn(Connection) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static
{
    move |ws| {
        Box::pin(async move {
            let text = describe(&ws);
            let _ = ws.send(text).await;
            let _ = ws.close(sockjet::CloseCode::NORMAL_CLOSURE, "").await;
        })
    }
}

/// An HTTP response read raw from the socket, up to the server's EOF.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header lines as sent, `(name in lower case, value)`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` (raw bytes) and reads the whole answer until the server closes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut wire = Vec::new();
    within(stream.read_to_end(&mut wire)).await.unwrap();
    parse_response(&wire)
}

pub fn parse_response(wire: &[u8]) -> RawResponse {
    let split = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(wire)));
    let head = std::str::from_utf8(&wire[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    RawResponse {
        status,
        headers,
        body: wire[split + 4..].to_vec(),
    }
}

/// A WebSocket upgrade request for `target` with `extra` header lines (each ending in
/// CRLF).
pub fn upgrade_request(target: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Connects to `ws://addr{target}` with extra request headers.
pub async fn connect_with(
    addr: SocketAddr,
    target: &str,
    headers: &[(&'static str, &str)],
) -> Result<Connection, Error> {
    let mut config = ClientConfig::default();
    for (name, value) in headers {
        config = config.header(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    within(
        ClientBuilder::new(format!("ws://{addr}{target}"))
            .handshake(config)
            .connect(),
    )
    .await
}

/// The HTTP status a failed client handshake got.
pub fn refused_status(result: Result<Connection, Error>) -> StatusCode {
    match result {
        Ok(_) => panic!("the handshake succeeded"),
        Err(error) => match error.handshake_error() {
            Some(HandshakeError::UnexpectedStatus(status)) => *status,
            _ => panic!("not refused with a status: {error}"),
        },
    }
}

/// The first text message of a connection.
pub async fn first_text(ws: &mut Connection) -> String {
    within(ws.recv())
        .await
        .unwrap()
        .expect("a message")
        .as_text()
        .expect("text")
        .to_owned()
}
