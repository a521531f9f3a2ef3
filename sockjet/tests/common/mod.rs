//! Helpers shared by the loopback tests.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use sockjet::{Connection, ConnectionConfig, Server};
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

/// Starts a server running `handler`, returns its address.
pub async fn server<H, F>(config: ConnectionConfig, handler: H) -> SocketAddr
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let server = Server::builder()
        .connection(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve(handler));
    addr
}

pub async fn echo_server(config: ConnectionConfig) -> SocketAddr {
    server(config, |mut ws| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    })
    .await
}

pub const REQUEST: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// Opens a raw TCP connection and completes the opening handshake by hand.
pub async fn raw_client(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(REQUEST.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// Reads an HTTP head (up to the blank line), byte by byte so nothing after it is lost.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match within(stream.read(&mut byte)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
        assert!(head.len() < 64 * 1024, "endless HTTP head");
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads everything until EOF (bounded by LIMIT and 16 MiB).
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match within(stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
        assert!(all.len() < 16 << 20, "endless stream");
    }
}

/// A masked client frame.
pub fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Finds the close code of the first close frame (server frames are unmasked) in `bytes`.
pub fn close_code_in(bytes: &[u8]) -> Option<u16> {
    let mut rest = bytes;
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0F;
        let (len, header) = match rest[1] & 0x7F {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            len => (len as usize, 2),
        };
        if rest.len() < header + len {
            return None;
        }
        if opcode == 0x8 {
            return (len >= 2).then(|| u16::from_be_bytes([rest[header], rest[header + 1]]));
        }
        rest = &rest[header + len..];
    }
    None
}

/// A fresh connection to `addr` still echoes: what went before did not hurt the server.
pub async fn assert_still_serves(addr: SocketAddr) {
    let mut ws = within(sockjet::connect(&format!("ws://{addr}")))
        .await
        .unwrap();
    ws.send("still here").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(sockjet::Message::text("still here"))
    );
}
