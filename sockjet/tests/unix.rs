//! Serving on a Unix domain socket, in a directory made for the test.
#![cfg(unix)]

mod common;

use std::path::PathBuf;

use common::within;
use sockjet::{ClientBuilder, CloseCode, Connection, ListenAddr, Server};
use tokio::net::UnixStream;

/// A directory for one test's socket, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sockjet-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn echo_over_a_unix_socket() {
    let dir = TempDir::new("echo");
    let path = dir.0.join("ws.sock");
    let server = Server::builder().bind_unix(&path).await.unwrap();
    assert_eq!(server.listen_addr(), ListenAddr::Unix(path.clone()));
    assert_eq!(
        server.listen_addr().to_string(),
        format!("unix:{}", path.display())
    );
    // No TCP address, and no panic for asking.
    assert_eq!(server.local_addr().port(), 0);
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(|mut ws: Connection| async move {
        // A Unix socket has no peer address; the request is as over TCP.
        let hello = format!("{:?} {}", ws.peer_addr(), ws.path());
        if ws.send(hello).await.is_err() {
            return;
        }
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));

    let stream = within(UnixStream::connect(&path)).await.unwrap();
    let mut ws = within(ClientBuilder::new("ws://localhost/over/unix").connect_on(stream))
        .await
        .unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some("None /over/unix")
    );
    let big = vec![7u8; 200_000];
    for message in [sockjet::Message::text("hi"), sockjet::Message::binary(big)] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap().unwrap(), message);
    }

    // Graceful shutdown works the same, and the socket file goes away with the server.
    shutdown.shutdown();
    assert!(within(ws.recv()).await.unwrap().is_none());
    assert_eq!(within(ws.closed()).await.code(), CloseCode::GOING_AWAY);
    within(serving).await.unwrap().unwrap();
    assert!(!path.exists(), "the socket file is removed");
}

#[tokio::test]
async fn binding_an_existing_path_fails_and_leaves_it_alone() {
    let dir = TempDir::new("exists");
    let path = dir.0.join("taken");
    std::fs::write(&path, "not a socket").unwrap();
    let error = Server::builder().bind_unix(&path).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[tokio::test]
async fn the_connection_limit_applies_to_unix_sockets() {
    let dir = TempDir::new("limit");
    let path = dir.0.join("ws.sock");
    let server = Server::builder()
        .max_connections(1)
        .bind_unix(&path)
        .await
        .unwrap();
    tokio::spawn(
        server
            .serve(|mut ws: Connection| async move { while let Ok(Some(_)) = ws.recv().await {} }),
    );
    let stream = within(UnixStream::connect(&path)).await.unwrap();
    let _ws = within(ClientBuilder::new("ws://localhost/").connect_on(stream))
        .await
        .unwrap();
    let stream = within(UnixStream::connect(&path)).await.unwrap();
    let error = within(ClientBuilder::new("ws://localhost/").connect_on(stream))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");
}
