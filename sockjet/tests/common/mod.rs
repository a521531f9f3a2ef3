//! Helpers shared by the loopback tests.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

mod basics;
pub mod test_ca;

use std::net::SocketAddr;

pub use basics::*;
use sockjet::{Connection, ConnectionConfig, Server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Starts a server running `handler`, returns its address.
pub async fn server<H, F>(config: ConnectionConfig, handler: H) -> SocketAddr
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    start(Server::builder().connection(config), handler).await
}

pub async fn echo_server(config: ConnectionConfig) -> SocketAddr {
    start_echo(Server::builder().connection(config)).await
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
