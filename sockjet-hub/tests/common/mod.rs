//! Helpers shared by the hub's loopback tests.
#![allow(dead_code, unreachable_pub)]

pub mod processes;
pub mod redis_server;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use sockjet::{Connection, ConnectionConfig, ConnectionId, Message, Sender, Server};
use sockjet_hub::Hub;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::sleep,
};

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(10);

pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test step timed out")
}

/// Waits (bounded) until `condition` holds.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(LIMIT, async {
        while !condition() {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// The server side of every connection, by id, as the hub's members are.
pub type Senders = Arc<Mutex<HashMap<ConnectionId, Sender>>>;

/// A server where `/rooms/A/B/...` joins topics A, B, ...; every message a client sends is
/// published to its first topic. The handler does not leave its topics when it returns:
/// the hub must notice the end of the connection by itself.
pub async fn hub_server(hub: Hub, config: ConnectionConfig) -> (SocketAddr, Senders) {
    let senders = Senders::default();
    let registered = senders.clone();
    let server = Server::builder()
        .connection(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve(move |ws| serve_member(hub.clone(), registered.clone(), ws)));
    (addr, senders)
}

async fn serve_member(hub: Hub, senders: Senders, mut ws: Connection) {
    let rooms: Vec<String> = ws
        .path()
        .strip_prefix("/rooms/")
        .unwrap_or_default()
        .split('/')
        .map(str::to_owned)
        .collect();
    let me = ws.sender();
    senders.lock().unwrap().insert(me.id(), me.clone());
    for room in &rooms {
        hub.join(room, &me).unwrap();
    }
    while let Ok(Some(message)) = ws.recv().await {
        hub.publish(&rooms[0], message).unwrap();
    }
    senders.lock().unwrap().remove(&me.id());
}

pub async fn client(addr: SocketAddr, rooms: &str) -> Connection {
    within(sockjet::connect(&format!("ws://{addr}/rooms/{rooms}")))
        .await
        .unwrap()
}

/// The next message, as text.
pub async fn next_text(ws: &mut Connection) -> String {
    match within(ws.recv()).await {
        Ok(Some(Message::Text(text))) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Opens a raw TCP connection to `/rooms/{rooms}` with a small receive buffer, completes
/// the opening handshake by hand, and never reads again: a member that stopped reading.
pub async fn stalled_client(addr: SocketAddr, rooms: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = within(socket.connect(addr)).await.unwrap();
    let request = format!(
        "GET /rooms/{rooms} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            within(stream.read(&mut byte)).await.unwrap(),
            1,
            "EOF in handshake"
        );
        head.push(byte[0]);
        assert!(head.len() < 64 * 1024, "endless HTTP head");
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}
