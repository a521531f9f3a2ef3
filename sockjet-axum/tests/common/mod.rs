//! Helpers shared by the loopback tests: bounded waits, raw HTTP/1.1 exchanges, and an
//! HTTP/2 extended CONNECT client (RFC 8441) built on hyper's client.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode, Version, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sockjet::{Connection, ConnectionConfig, Message, proto::Side};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(10);

pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test step timed out")
}

/// A valid upgrade request for `path`, with `extra` header lines (each ending in CRLF).
pub fn upgrade_request(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// An HTTP/1.1 response read from a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `request` (a full HTTP/1.1 request) on a new connection and reads one response,
/// its body delimited by `Content-Length`.
pub async fn exchange(addr: SocketAddr, request: &str) -> RawResponse {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    within(stream.write_all(request.as_bytes())).await.unwrap();
    read_response(&mut stream).await
}

/// Reads one response head and its `Content-Length` body (bounded in size and time).
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut bytes = Vec::new();
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let read = within(stream.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "EOF before the response head ended: {bytes:?}");
        bytes.extend_from_slice(&chunk[..read]);
        assert!(bytes.len() < 64 * 1024, "response head too long");
    };
    let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    assert!(length < 1 << 20, "body too long");
    while bytes.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let read = within(stream.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "EOF in the body");
        bytes.extend_from_slice(&chunk[..read]);
    }
    RawResponse {
        status: status.parse().unwrap(),
        headers,
        body: String::from_utf8_lossy(&bytes[head_end..head_end + length]).into_owned(),
    }
}

/// Opens a WebSocket over HTTP/2 (RFC 8441) to `addr`: one h2 connection (prior
/// knowledge, no TLS), an extended CONNECT to `path`, and a client connection on the
/// stream. Returns the CONNECT's status and headers, and the connection if it was
/// accepted.
pub async fn h2_websocket(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (hyper::http::response::Parts, Option<Connection>) {
    let stream = within(TcpStream::connect(addr)).await.unwrap();
    let (mut sender, connection) =
        within(http2::handshake(TokioExecutor::new(), TokioIo::new(stream)))
            .await
            .unwrap();
    tokio::spawn(connection);
    // The server announces SETTINGS_ENABLE_CONNECT_PROTOCOL in its first SETTINGS frame;
    // one exchange makes sure the client has read it (RFC 8441 §3: a client "MUST NOT"
    // send :protocol before).
    let probe = Request::get(format!("http://{addr}/healthz"))
        .version(Version::HTTP_2)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let probed = within(sender.send_request(probe)).await.unwrap();
    drop(within(probed.into_body().collect()).await.unwrap());

    let mut request = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}{path}"))
        .header("sec-websocket-version", "13");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Empty::<Bytes>::new()).unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut response = within(sender.send_request(request)).await.unwrap();
    if response.status() != StatusCode::OK {
        return (response.into_parts().0, None);
    }
    let upgraded = within(hyper::upgrade::on(&mut response))
        .await
        .expect("no upgrade after a 200 to the extended CONNECT");
    // The stream keeps the h2 connection (driven by its task) alive.
    let ws = Connection::from_upgraded(
        TokioIo::new(upgraded),
        Side::Client,
        ConnectionConfig::default(),
    );
    (response.into_parts().0, Some(ws))
}

/// Echoes every message until the connection ends.
pub async fn echo(mut ws: Connection) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// Sends text and binary from `ws` and checks the echo.
pub async fn check_echo(ws: &mut Connection) {
    for message in [
        Message::text("héllo"),
        Message::binary(vec![0u8, 1, 2, 255]),
    ] {
        within(ws.send(message.clone())).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), Some(message));
    }
}
