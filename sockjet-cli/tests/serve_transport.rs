//! `sockjet serve` over TLS and Unix sockets, with connection limits and the handshake
//! timeout, and its graceful shutdown under load. Everything talks to 127.0.0.1 or a Unix
//! socket in a temporary directory; every wait is bounded and children are killed on drop.

mod common;

use std::{thread, time::Duration};

use common::{
    Serve, Sockjet, TIMEOUT, TempDir, TestCertificates, runtime, test_certificates, tls_connector,
    within,
};
use sockjet::{ClientBuilder, CloseCode, Transport};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Opens a WebSocket over `transport`, sends `text`, expects it back and closes.
async fn echo_once(transport: impl Transport, url: &str, text: &str) {
    let mut ws = within(ClientBuilder::new(url).connect_on(transport))
        .await
        .unwrap();
    ws.send(text).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some(text)
    );
    within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
        .await
        .unwrap();
}

/// Sends SIGTERM, expects a clean exit and returns the log.
fn terminate(mut server: Serve) -> String {
    server.process.terminate();
    let finished = server.process.finish();
    assert!(finished.status.success(), "{finished:?}");
    finished.stderr
}

#[test]
fn tls_cert_and_key_serve_wss() {
    let TestCertificates { ca, cert, key } = test_certificates();
    let dir = TempDir::new("tls");
    let cert_path = dir.write("cert.pem", &cert.pem());
    let key_path = dir.write("key.pem", &key.serialize_pem());
    let server = Serve::start(&[
        "127.0.0.1:0",
        "--tls-cert",
        &cert_path,
        "--tls-key",
        &key_path,
    ]);
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        let connector = tls_connector(&ca);
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = within(connector.connect(name, tcp)).await.unwrap();
        echo_once(tls, "ws://localhost/secure", "over TLS").await;
    });
    let log = terminate(server);
    assert!(log.contains("path=\"/secure\""), "{log}");
}

#[test]
fn bad_tls_files_are_one_line() {
    let dir = TempDir::new("bad-tls");
    let empty = dir.write("empty.pem", "");
    let finished = Sockjet::run(&[
        "serve",
        "127.0.0.1:0",
        "--tls-cert",
        &empty,
        "--tls-key",
        &empty,
    ]);
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    let stderr = &finished.stderr;
    assert_eq!(
        stderr.trim_end(),
        format!(
            "sockjet: TLS: {empty}: no certificate found (expected a PEM \"BEGIN CERTIFICATE\" block)"
        )
    );
    // --tls-cert needs --tls-key.
    let finished = Sockjet::run(&["serve", "--tls-cert", &empty]);
    assert_eq!(finished.status.code(), Some(2), "{finished:?}");
}

#[test]
fn max_connections_answers_503_and_the_handshake_timeout_drops_silent_clients() {
    let server = Serve::start(&[
        "127.0.0.1:0",
        "--max-connections",
        "1",
        "--handshake-timeout",
        "0.5",
    ]);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        // Holds the only place, silently, until the handshake timeout drops it.
        let mut silent = TcpStream::connect(&addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut refused = TcpStream::connect(&addr).await.unwrap();
        let _ = refused
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = within(refused.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nRetry-After: "), "{answer}");

        let mut buf = [0u8; 16];
        let read = within(silent.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // Its place is free again.
        let mut served = false;
        for _ in 0..100 {
            if let Ok(Ok(mut ws)) =
                tokio::time::timeout(TIMEOUT, sockjet::connect(&format!("ws://{addr}"))).await
            {
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
fn max_connections_per_ip_answers_429() {
    let server = Serve::start(&["127.0.0.1:0", "--max-connections-per-ip", "1"]);
    let url = server.url.clone();
    runtime().block_on(async {
        let _first = within(sockjet::connect(&url)).await.unwrap();
        let error = within(sockjet::connect(&url)).await.unwrap_err();
        assert!(error.to_string().contains("429"), "{error}");
    });
}

#[cfg(unix)]
#[test]
fn unix_socket_echo_and_removal_on_exit() {
    let dir = TempDir::new("unix");
    let path = dir.path("serve.sock");
    let server = Serve::start(&["--unix", &path.display().to_string()]);
    assert_eq!(server.url, format!("ws+unix://{}", path.display()));
    runtime().block_on(async {
        let stream = within(tokio::net::UnixStream::connect(&path))
            .await
            .unwrap();
        echo_once(stream, "ws://localhost/local", "over a Unix socket").await;
    });
    let log = terminate(server);
    assert!(log.contains("peer=unix"), "{log}");
    assert!(!path.exists(), "the socket file is removed on exit");
}

#[cfg(unix)]
#[test]
fn sigterm_under_load_delivers_every_echo_before_1001() {
    let mut server = Serve::start(&["127.0.0.1:0"]);
    let url = server.url.clone();
    let (started, running) = std::sync::mpsc::channel();
    let client = thread::spawn(move || {
        runtime().block_on(async {
            let (mut ws, sender) = within(sockjet::connect(&url)).await.unwrap().split();
            let streaming = tokio::spawn(async move {
                for number in 0u64..10_000_000 {
                    if sender.send(number.to_string()).await.is_err() {
                        break;
                    }
                }
            });
            let mut received = 0u64;
            loop {
                match within(ws.recv()).await {
                    Ok(Some(message)) => {
                        assert_eq!(message.as_text(), Some(received.to_string().as_str()));
                        received += 1;
                        if received == 100 {
                            started.send(()).unwrap();
                        }
                    }
                    Ok(None) => break,
                    Err(error) => panic!("after {received}: {error}"),
                }
            }
            streaming.abort();
            (received, within(ws.closed()).await)
        })
    });
    running.recv_timeout(TIMEOUT).expect("echoes flowing");
    server.process.terminate();
    let (received, closed) = client.join().expect("client thread");
    assert!(received >= 100);
    // Echoes arrived in order without a gap, up to the close frame (checked in the loop).
    assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{closed}");
    let finished = server.process.finish();
    assert!(finished.status.success(), "{finished:?}");
    let log = finished.stderr;
    assert!(log.contains("shutting down"), "{log}");
}

/// Names of the process's threads that are Tokio workers of a multi-threaded runtime.
fn tokio_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[test]
fn threads_sets_the_number_of_workers() {
    for (threads, workers) in [("1", 0), ("3", 3)] {
        let server = Serve::start(&["127.0.0.1:0", "--engine", "tokio", "--threads", threads]);
        let url = server.url.clone();
        // Each worker serves: a few connections at once all get their echo.
        runtime().block_on(async {
            let mut clients = Vec::new();
            for index in 0..6 {
                let url = url.clone();
                clients.push(tokio::spawn(async move {
                    let tcp = TcpStream::connect(url.trim_start_matches("ws://"))
                        .await
                        .unwrap();
                    echo_once(tcp, &url, &format!("hello {index}")).await;
                }));
            }
            for client in clients {
                within(client).await.unwrap();
            }
        });
        // 1 runs everything on the main thread (Tokio's current-thread runtime).
        assert_eq!(
            tokio_workers(server.process.id()),
            workers,
            "--threads {threads}"
        );
        terminate(server);
    }
    let refused = Sockjet::start(&["serve", "127.0.0.1:0", "--threads", "0"]).finish();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
}
