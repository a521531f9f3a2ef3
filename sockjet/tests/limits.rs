//! Connection limits and the handshake timeout, over loopback TCP: a full server answers
//! 503 with Retry-After from static bytes and serves again once a place frees, the
//! per-address limit answers 429, silent and trickling clients are dropped when the
//! handshake timeout expires, and every way a connection ends releases its place once.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{REQUEST, raw_client, read_to_end, start_echo, within};
use sockjet::{CloseCode, Connection, Server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Sends an opening handshake request on a fresh connection and returns everything the
/// server answers, up to its EOF.
async fn raw_answer(stream: &mut TcpStream) -> String {
    // The server may answer and close before the request is written: that is fine.
    let _ = stream.write_all(REQUEST.as_bytes()).await;
    String::from_utf8_lossy(&read_to_end(stream).await).into_owned()
}

async fn refused_answer(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    raw_answer(&mut stream).await
}

/// Opens a WebSocket and checks that it echoes.
async fn open_echo(addr: SocketAddr) -> Connection {
    let mut ws = within(sockjet::connect(&format!("ws://{addr}")))
        .await
        .unwrap();
    ws.send("ping").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some("ping")
    );
    ws
}

/// Retries opening a WebSocket until the server takes it (its place is released a moment
/// after the previous connection ends); bounded.
async fn open_echo_eventually(addr: SocketAddr) -> Connection {
    for _ in 0..200 {
        if let Ok(Ok(mut ws)) =
            tokio::time::timeout(common::LIMIT, sockjet::connect(&format!("ws://{addr}"))).await
        {
            ws.send("again").await.unwrap();
            assert_eq!(
                within(ws.recv()).await.unwrap().unwrap().as_text(),
                Some("again")
            );
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server never took a connection again");
}

async fn close(ws: Connection) {
    within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
        .await
        .unwrap();
}

#[tokio::test]
async fn full_server_answers_503_with_retry_after_and_serves_again_once_a_place_frees() {
    let addr = start_echo(
        Server::builder()
            .max_connections(2)
            .retry_after(Duration::from_millis(6500)),
    )
    .await;
    let first = open_echo(addr).await;
    let second = open_echo(addr).await;

    let answer = refused_answer(addr).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    // Rounded up to whole seconds.
    assert!(answer.contains("\r\nRetry-After: 7\r\n"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{answer}"
    );
    // The sockjet client reports the status.
    let error = within(sockjet::connect(&format!("ws://{addr}")))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");

    // The two open connections were not disturbed.
    for ws in [&first, &second] {
        ws.send("still open").await.unwrap();
    }
    close(first).await;
    let third = open_echo_eventually(addr).await;
    // Full again.
    let answer = refused_answer(addr).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    close(second).await;
    close(third).await;
}

#[tokio::test]
async fn connections_in_their_handshake_count() {
    let addr = start_echo(Server::builder().max_connections(1)).await;
    // Connected, request not sent yet: it holds the only place.
    let mut pending = TcpStream::connect(addr).await.unwrap();
    // Let the server accept it before the next one comes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let answer = refused_answer(addr).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    // The pending one is still served.
    pending.write_all(REQUEST.as_bytes()).await.unwrap();
    let head = common::read_head(&mut pending).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
}

#[tokio::test]
async fn per_address_limit_answers_429_and_leaves_other_addresses_alone() {
    let addr = start_echo(
        Server::builder()
            .max_connections_per_ip(2)
            .retry_after(Duration::from_secs(3)),
    )
    .await;
    let first = open_echo(addr).await;
    let second = open_echo(addr).await;
    let answer = refused_answer(addr).await;
    assert!(
        answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 3\r\n"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");

    // Another loopback address is another client.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = within(socket.connect(addr)).await.unwrap();
    let mut other = within(sockjet::ClientBuilder::new(format!("ws://{addr}")).connect_on(stream))
        .await
        .unwrap();
    other.send("from 127.0.0.2").await.unwrap();
    assert!(within(other.recv()).await.unwrap().is_some());

    close(first).await;
    let third = open_echo_eventually(addr).await;
    close(second).await;
    close(third).await;
    close(other).await;
}

#[tokio::test]
async fn silent_client_is_dropped_at_the_handshake_timeout_without_delaying_others() {
    let timeout = Duration::from_millis(400);
    let addr = start_echo(
        Server::builder()
            .handshake_timeout(timeout)
            .max_connections(2),
    )
    .await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Served while the silent one waits.
    let ws = open_echo(addr).await;
    let mut buf = [0u8; 64];
    let read = within(silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "dropped: {read:?}");
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "dropped before the timeout: {:?}",
        started.elapsed()
    );
    // Its place is free again: two connections fit.
    let again = open_echo_eventually(addr).await;
    close(ws).await;
    close(again).await;
}

#[tokio::test]
async fn trickling_client_is_dropped_at_the_handshake_timeout() {
    let addr = start_echo(Server::builder().handshake_timeout(Duration::from_millis(500))).await;
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    // One byte every 50 ms would take several seconds for the whole request.
    let mut sent = 0;
    let mut dropped = false;
    for byte in REQUEST.bytes() {
        if trickle.write_all(&[byte]).await.is_err() {
            dropped = true;
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The server never answers a half request; it only closes.
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                dropped = true;
                break;
            }
            Ok(Ok(n)) => panic!(
                "unexpected answer: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }
    assert!(
        dropped,
        "the whole request went out: the client was never dropped"
    );
    assert!(sent < REQUEST.len(), "{sent}");
}

#[tokio::test]
async fn every_way_a_connection_ends_releases_its_place_exactly_once() {
    let addr = start_echo(
        Server::builder()
            .max_connections(2)
            .handshake_timeout(Duration::from_millis(200)),
    )
    .await;
    for round in 0..3 {
        // Normal close by the client.
        close(open_echo_eventually(addr).await).await;
        // Abrupt end after the handshake.
        drop(raw_client(addr).await);
        // A bad request: answered 400 by the handshake.
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&read_to_end(&mut bad).await).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 503"),
            "round {round}: {answer}"
        );
        // A handshake timeout.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let _ = within(silent.read(&mut buf)).await;
        // Connected then gone before the request.
        drop(TcpStream::connect(addr).await.unwrap());
    }
    // Exactly two places: two connections open, the third is refused. A place released
    // twice would let a third in; one never released would keep the second out.
    let first = open_echo_eventually(addr).await;
    let second = open_echo_eventually(addr).await;
    let answer = refused_answer(addr).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    close(first).await;
    close(second).await;
}
