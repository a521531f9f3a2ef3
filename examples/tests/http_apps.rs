//! The axum and hyper examples, run as built: HTTP and WebSocket answered on one port.

use std::{process::Stdio, time::Duration};

use sockjet::{ClientBuilder, Message, proto::ClientConfig};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test step timed out")
}

/// Starts an example on a free loopback port; returns it (killed when dropped) and the
/// address it printed.
async fn start(binary: &str) -> (Child, String) {
    let mut child = Command::new(binary)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within(lines.next_line()).await.unwrap().unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    // Keep reading what it prints, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// A GET over plain HTTP/1.1: the status code and the body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    within(stream.write_all(request.as_bytes())).await.unwrap();
    let mut response = Vec::new();
    within(stream.read_to_end(&mut response)).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn axum_app_serves_pages_and_a_chat_room_on_one_port() {
    let (_app, addr) = start(env!("CARGO_BIN_EXE_axum_app")).await;
    assert_eq!(get(&addr, "/healthz").await, (200, "ok".to_owned()));
    let (status, page) = get(&addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("new WebSocket"), "{page}");
    assert_eq!(get(&addr, "/ws").await.0, 400);

    let join = || {
        ClientBuilder::new(format!("ws://{addr}/ws"))
            .handshake(ClientConfig::default().subprotocols(["chat"]))
            .connect()
    };
    let mut ann = within(join()).await.unwrap();
    let mut bob = within(join()).await.unwrap();
    assert_eq!(ann.subprotocol(), Some("chat"));
    // The room has no history: bob hears ann once his member task has subscribed.
    let mut bob_hears_ann = false;
    for _ in 0..50 {
        ann.send("ann here").await.unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(200), bob.recv()).await;
        if let Ok(heard) = heard {
            assert_eq!(heard.unwrap(), Some(Message::text("ann here")));
            bob_hears_ann = true;
            break;
        }
    }
    assert!(bob_hears_ann);
    bob.send(vec![1u8, 2, 3]).await.unwrap();
    for member in [&mut ann, &mut bob] {
        let message = within(async {
            loop {
                match member.recv().await.unwrap() {
                    Some(Message::Text(_)) => continue, // earlier hellos
                    other => break other,
                }
            }
        })
        .await;
        assert_eq!(message, Some(Message::binary(vec![1u8, 2, 3])));
    }
}

#[tokio::test]
async fn hyper_server_answers_http_and_echoes() {
    let (_server, addr) = start(env!("CARGO_BIN_EXE_hyper_server")).await;
    assert_eq!(get(&addr, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(get(&addr, "/other").await.0, 404);
    let mut ws = within(sockjet::connect(&format!("ws://{addr}/echo")))
        .await
        .unwrap();
    assert!(ws.is_compressed());
    for message in [Message::text("hi"), Message::binary(vec![0u8, 255])] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), Some(message));
    }
}
