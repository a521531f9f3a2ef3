//! Timeouts, keepalive and backpressure, with raw TCP peers that misbehave on purpose.

mod common;

use std::time::Duration;

use common::{close_code_in, masked_frame, raw_client, read_to_end, server, within};
use sockjet::{ConnectionConfig, ErrorKind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn keepalive_fails_a_silent_peer_with_1011() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = ConnectionConfig::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .ping_timeout(Some(Duration::from_millis(200)))
        .close_timeout(Some(Duration::from_millis(300)));
    let addr = server(config, move |mut ws| {
        let tx = tx.clone();
        async move {
            let result = ws.recv().await;
            tx.send(
                result
                    .map(|_| ())
                    .map_err(|e| (e.kind(), e.closed().cloned())),
            )
            .unwrap();
        }
    })
    .await;
    // A peer that completes the handshake and then never reads nor answers pings.
    let mut stream = raw_client(addr).await;
    let error = within(rx.recv()).await.unwrap().unwrap_err();
    assert_eq!(error.0, ErrorKind::Timeout);
    assert_eq!(error.1.unwrap().sent.unwrap().code.as_u16(), 1011);
    let bytes = read_to_end(&mut stream).await;
    // Pings (0x89) went out, then the close with 1011.
    assert_eq!(bytes[0], 0x89);
    assert_eq!(close_code_in(&bytes), Some(1011));
}

#[tokio::test]
async fn keepalive_keeps_a_responsive_peer_and_measures_latency() {
    let config = ConnectionConfig::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .ping_timeout(Some(Duration::from_millis(500)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = server(config.clone(), move |mut ws| {
        let tx = tx.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.send(ws.latency()).unwrap();
            let _ = ws.send("still open").await;
            let _ = ws.recv().await;
        }
    })
    .await;
    let mut client = sockjet::ClientBuilder::new(format!("ws://{addr}"))
        .connection(config)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        within(client.recv()).await.unwrap(),
        Some(Message::text("still open"))
    );
    assert!(within(rx.recv()).await.unwrap().is_some());
}

#[tokio::test]
async fn close_times_out_when_the_peer_never_answers() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = ConnectionConfig::default().close_timeout(Some(Duration::from_millis(200)));
    let addr = server(config, move |ws| {
        let tx = tx.clone();
        async move {
            let started = tokio::time::Instant::now();
            let _ = ws.close(sockjet::CloseCode::GOING_AWAY, "bye").await;
            tx.send(started.elapsed()).unwrap();
        }
    })
    .await;
    let mut stream = raw_client(addr).await;
    let elapsed = within(rx.recv()).await.unwrap();
    assert!(elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(3));
    let bytes = read_to_end(&mut stream).await;
    assert_eq!(close_code_in(&bytes), Some(1001));
}

#[tokio::test]
async fn send_waits_when_the_peer_does_not_read() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = ConnectionConfig::default().write_limit(64 * 1024);
    let addr = server(config, move |ws| {
        let tx = tx.clone();
        async move {
            let chunk = Message::binary(vec![0u8; 64 * 1024]);
            let mut sent = 0usize;
            // Bounded: 1 GiB would take far longer than the test allows.
            for _ in 0..16_384 {
                match tokio::time::timeout(Duration::from_millis(300), ws.send(chunk.clone())).await
                {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tx.send(sent).unwrap();
                        return;
                    }
                }
            }
            tx.send(usize::MAX).unwrap();
        }
    })
    .await;
    let stream = raw_client(addr).await;
    // The client never reads: the kernel buffers fill, then send() must wait.
    let sent = within(rx.recv()).await.unwrap();
    assert!(sent < 1000, "send never blocked ({sent} x 64 KiB accepted)");
    drop(stream);
}

#[tokio::test]
async fn reading_pauses_when_the_application_does_not_consume() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = server(ConnectionConfig::default().max_queue(4), move |ws| {
        let tx = tx.clone();
        async move {
            // Never reads; holds the connection.
            let _ = tx.send(());
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(ws);
        }
    })
    .await;
    let mut stream = raw_client(addr).await;
    within(rx.recv()).await.unwrap();
    let frame = masked_frame(0x82, &[1u8; 16 * 1024]);
    // Write until the write blocks: the server stopped reading after a bounded amount.
    let mut written = 0usize;
    for _ in 0..100_000 {
        match tokio::time::timeout(Duration::from_millis(300), stream.write_all(&frame)).await {
            Ok(Ok(())) => written += frame.len(),
            _ => break,
        }
    }
    assert!(
        written < 64 << 20,
        "server buffered {written} bytes without reading"
    );
    // It still answers pings meanwhile? Not required while paused; the connection is alive.
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf))
            .await
            .is_err()
    );
}

/// `serve` runs its accept loop as a task of its own; dropping the `serve` future must still
/// stop it and close the listening socket.
#[tokio::test]
async fn dropping_the_serve_future_stops_the_server() {
    let server = sockjet::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.serve(|ws| async move { drop(ws) }));
    let ws = within(sockjet::connect(&format!("ws://{addr}"))).await;
    assert!(ws.is_ok(), "{:?}", ws.err());
    serving.abort();
    let _ = serving.await;
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "the listener is still open after serve was dropped"
    );
}

/// RFC 6455 §7.1.1: the server closes the TCP connection first. Once both close frames
/// have crossed, it closes at once: it does not wait (up to the close timeout) for a
/// client that keeps its side of the socket open.
#[tokio::test]
async fn server_closes_tcp_right_after_the_closing_handshake() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = server(ConnectionConfig::default(), move |mut ws| {
        let tx = tx.clone();
        async move {
            let started = tokio::time::Instant::now();
            assert!(matches!(ws.recv().await, Ok(None)));
            let closed = ws.closed().await;
            tx.send((started.elapsed(), closed)).unwrap();
        }
    })
    .await;
    let mut stream = raw_client(addr).await;
    let mut close = vec![0x03, 0xE8];
    close.extend_from_slice(b"bye");
    stream.write_all(&masked_frame(0x88, &close)).await.unwrap();
    // The echo of the close frame, then the server's FIN, while this client keeps its own
    // side open (no shutdown, no drop).
    let bytes = read_to_end(&mut stream).await;
    assert_eq!(close_code_in(&bytes), Some(1000));
    let (elapsed, closed) = within(rx.recv()).await.unwrap();
    assert!(closed.is_ok(), "{closed}");
    assert!(
        elapsed < Duration::from_secs(2),
        "{elapsed:?}: waited for the client"
    );
    drop(stream);
}
