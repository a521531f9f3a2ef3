//! `sockjet serve --engine uring`: the echo server on io_uring, its worker threads, its
//! limits, its graceful shutdown, and what it refuses. Skipped where the kernel refuses
//! io_uring. Everything talks to 127.0.0.1; every wait is bounded.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{Serve, Sockjet, runtime, within};
use sockjet::CloseCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Whether this kernel runs the engine; says why not on stderr.
fn uring_available() -> bool {
    match sockjet_uring::probe() {
        Ok(()) => true,
        Err(error) => {
            eprintln!("skipped: no io_uring here ({error})");
            false
        }
    }
}

/// Threads of the process named like the engine's workers.
fn uring_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim().starts_with("sockjet-uring-"))
        .count()
}

#[test]
fn echoes_on_its_workers_and_closes_with_1001_on_sigterm() {
    if !uring_available() {
        return;
    }
    let server = Serve::start(&["127.0.0.1:0", "--engine", "uring", "--threads", "2"]);
    assert!(server.url.starts_with("ws://127.0.0.1:"), "{}", server.url);
    // The URL is printed once the socket listens; the workers start right after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while uring_workers(server.process.id()) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(uring_workers(server.process.id()), 2);
    let url = server.url.clone();
    let mut server = server;
    runtime().block_on(async {
        let mut clients = Vec::new();
        for index in 0..8 {
            clients.push(within(sockjet::connect(&url)).await.unwrap());
            let ws = clients.last_mut().unwrap();
            let text = format!("hello {index}");
            ws.send(text.as_str()).await.unwrap();
            assert_eq!(
                within(ws.recv()).await.unwrap().unwrap().as_text(),
                Some(text.as_str())
            );
        }
        // Large and compressed (the client offers permessage-deflate) both echo.
        let big = vec![b'z'; 300_000];
        clients[0].send(big.clone()).await.unwrap();
        assert_eq!(
            within(clients[0].recv()).await.unwrap().unwrap().as_bytes(),
            &big[..]
        );
        server.process.terminate();
        for ws in &mut clients {
            assert_eq!(within(ws.recv()).await.unwrap(), None);
            assert_eq!(within(ws.closed()).await.code(), CloseCode::GOING_AWAY);
        }
    });
    let finished = server.process.finish();
    assert!(finished.status.success(), "{finished:?}");
    assert!(
        finished.stderr.contains("shutting down"),
        "{}",
        finished.stderr
    );
}

#[test]
fn max_connections_answers_503_and_the_handshake_timeout_drops_silent_clients() {
    if !uring_available() {
        return;
    }
    let server = Serve::start(&[
        "127.0.0.1:0",
        "--engine",
        "uring",
        "--max-connections",
        "1",
        "--handshake-timeout",
        "0.5",
    ]);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        let mut silent = TcpStream::connect(&addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut refused = TcpStream::connect(&addr).await.unwrap();
        let request = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        refused.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = within(refused.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("\r\nretry-after: "),
            "{answer}"
        );
        let mut buf = [0u8; 16];
        let read = within(silent.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // Its place is free again.
        let mut served = false;
        for _ in 0..100 {
            if let Ok(mut ws) = within(sockjet::connect(&format!("ws://{addr}"))).await {
                ws.send("in").await.unwrap();
                assert!(within(ws.recv()).await.unwrap().is_some());
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served);
    });
}

#[test]
fn what_the_engine_does_not_serve_is_refused_in_one_line() {
    for (args, named) in [
        (&["--unix", "/tmp/sockjet-uring-refused.sock"][..], "--unix"),
        (&["127.0.0.1:0", "--broadcast"][..], "--broadcast"),
        (
            &["127.0.0.1:0", "--origin", "https://example.com"][..],
            "--origin",
        ),
    ] {
        let finished = Sockjet::start(&[&["serve", "--engine", "uring"], args].concat()).finish();
        assert_eq!(finished.status.code(), Some(1), "{finished:?}");
        assert!(
            finished
                .stderr
                .starts_with("sockjet: --engine uring does not serve ")
                && finished.stderr.contains(named),
            "{}",
            finished.stderr
        );
    }
}
