//! `sockjet serve --processes N`: worker processes sharing one port with SO_REUSEPORT,
//! their supervisor's signals, and their end when it dies. The workers are found through
//! /proc (children of the supervisor), every wait is bounded, and a failing test kills
//! what it started.
#![cfg(target_os = "linux")]

mod common;

use std::{process::Command, time::Duration};

use common::{
    Serve, Sockjet, TempDir, TestCertificates,
    procfs::{KillOnDrop, all_gone_within, children, sockets},
    runtime, test_certificates, tls_connector, within,
};
use sockjet::{ClientBuilder, CloseCode, Connection, Message};

/// Starts `sockjet serve 127.0.0.1:0 --processes N ARGS`; returns it with its workers
/// (killed on drop should the test fail).
fn serve(processes: usize, args: &[&str]) -> (Serve, Vec<u32>, KillOnDrop) {
    let count = processes.to_string();
    let server = Serve::start(&[&["127.0.0.1:0", "--processes", &count], args].concat());
    // They are all started before the URL is printed.
    let workers = children(server.process.id());
    let guard = KillOnDrop(workers.clone());
    assert_eq!(workers.len(), processes, "{workers:?}");
    (server, workers, guard)
}

/// Opens a connection and checks that it echoes `text`; returns it still open.
async fn echoing(url: &str, text: String) -> Connection {
    let mut ws = within(sockjet::connect(url)).await.unwrap();
    ws.send(text.as_str()).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Some(Message::text(text)));
    ws
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn connections_are_spread_over_the_workers_and_all_echo() {
    const CONNECTIONS: usize = 300;
    let (mut server, workers, _guard) = serve(3, &[]);
    assert!(server.url.starts_with("ws://127.0.0.1:"), "{}", server.url);
    let before: Vec<usize> = workers.iter().map(|pid| sockets(*pid)).collect();
    let url = server.url.clone();
    runtime().block_on(async {
        let opening: Vec<_> = (0..CONNECTIONS)
            .map(|index| {
                let url = url.clone();
                tokio::spawn(async move { echoing(&url, format!("message {index}")).await })
            })
            .collect();
        let mut open = Vec::new();
        for task in opening {
            open.push(within(task).await.unwrap());
        }
        // Each connection the kernel gave a worker is one more socket in it.
        let accepted: Vec<usize> = workers
            .iter()
            .zip(&before)
            .map(|(pid, before)| sockets(*pid) - before)
            .collect();
        assert_eq!(accepted.iter().sum::<usize>(), CONNECTIONS, "{accepted:?}");
        assert!(
            accepted.iter().filter(|count| **count > 0).count() > 1,
            "connections landed on one worker only: {accepted:?}"
        );
        for ws in open {
            within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
                .await
                .unwrap();
        }
    });
    server.process.terminate();
    let finished = server.process.finish();
    assert!(finished.status.success(), "{finished:?}");
    assert!(
        finished.stdout.is_empty(),
        "one URL line only: {finished:?}"
    );
}

#[test]
fn sigterm_closes_every_workers_connections_with_1001_and_exits_cleanly() {
    let (mut server, workers, _guard) = serve(2, &[]);
    let url = server.url.clone();
    runtime().block_on(async {
        // Enough that both workers very likely hold some.
        let mut open = Vec::new();
        for index in 0..16 {
            open.push(echoing(&url, format!("before {index}")).await);
        }
        server.process.terminate();
        for mut ws in open {
            assert!(within(ws.recv()).await.unwrap().is_none());
            assert_eq!(within(ws.closed()).await.code(), CloseCode::GOING_AWAY);
        }
    });
    let finished = server.process.finish();
    assert!(finished.status.success(), "{finished:?}");
    assert!(finished.stderr.contains("signal=SIGTERM"), "{finished:?}");
    // The supervisor waited for them.
    assert!(all_gone_within(&workers, Duration::ZERO), "{workers:?}");
}

#[test]
fn workers_shut_down_when_the_supervisor_is_killed() {
    let (server, workers, _guard) = serve(2, &[]);
    let url = server.url.clone();
    runtime().block_on(async {
        let mut ws = echoing(&url, "before".to_owned()).await;
        // SIGKILL: the supervisor cannot forward anything; the kernel sends the workers
        // SIGTERM (PR_SET_PDEATHSIG), and they shut down gracefully.
        kill(server.process.id(), "-KILL");
        assert!(within(ws.recv()).await.unwrap().is_none());
        assert_eq!(within(ws.closed()).await.code(), CloseCode::GOING_AWAY);
    });
    assert!(
        all_gone_within(&workers, Duration::from_secs(5)),
        "workers outlived their supervisor: {workers:?}"
    );
}

#[test]
fn a_second_sigterm_kills_the_workers_without_waiting_for_closes() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut server, workers, _guard) = serve(2, &[]);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        // A client that never answers the close: a graceful shutdown waits 10 s for it.
        let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
        silent
            .write_all(
                b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 256];
        while !received.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = within(silent.read(&mut buffer)).await.unwrap();
            assert!(read > 0, "connection closed during the handshake");
            received.extend_from_slice(&buffer[..read]);
        }
        assert!(received.starts_with(b"HTTP/1.1 101 "), "{received:?}");
        server.process.terminate();
        // The worker's close frame (0x88) says that the first signal went through.
        while !received.contains(&0x88) {
            let read = within(silent.read(&mut buffer)).await.unwrap();
            assert!(read > 0, "connection closed without a close frame");
            received.extend_from_slice(&buffer[..read]);
        }
        server.process.terminate();
        let finished = server.process.finish_within(Duration::from_secs(8));
        assert!(finished.status.success(), "{finished:?}");
        assert!(
            finished
                .stderr
                .contains("without waiting for connections to close"),
            "{finished:?}"
        );
    });
    assert!(all_gone_within(&workers, Duration::ZERO), "{workers:?}");
}

#[test]
fn a_worker_that_dies_stops_the_others_and_fails_the_supervisor() {
    let (mut server, workers, _guard) = serve(2, &[]);
    kill(workers[0], "-KILL");
    let finished = server.process.finish();
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("worker exited unexpectedly"),
        "{finished:?}"
    );
    assert!(
        finished.stderr.ends_with(&format!(
            "sockjet: worker process {} exited unexpectedly (signal: 9 (SIGKILL))\n",
            workers[0]
        )),
        "{finished:?}"
    );
    assert!(all_gone_within(&workers, Duration::ZERO), "{workers:?}");
}

#[test]
fn tls_works_in_every_worker() {
    let TestCertificates { ca, cert, key } = test_certificates();
    let dir = TempDir::new("processes-tls");
    let cert_path = dir.write("cert.pem", &cert.pem());
    let key_path = dir.write("key.pem", &key.serialize_pem());
    let (mut server, _workers, _guard) =
        serve(2, &["--tls-cert", &cert_path, "--tls-key", &key_path]);
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        let connector = tls_connector(&ca);
        // Several connections, so that more than one worker very likely answers.
        for index in 0..8 {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = within(connector.connect(name, tcp)).await.unwrap();
            let mut ws = within(ClientBuilder::new("ws://localhost/").connect_on(tls))
                .await
                .unwrap();
            let text = format!("over TLS {index}");
            ws.send(text.as_str()).await.unwrap();
            assert_eq!(within(ws.recv()).await.unwrap(), Some(Message::text(text)));
            within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
                .await
                .unwrap();
        }
    });
    server.process.terminate();
    let finished = server.process.finish();
    assert!(finished.status.success(), "{finished:?}");
}

#[test]
fn an_address_in_use_is_one_line_and_starts_no_worker() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let finished = Sockjet::run(&["serve", &addr, "--processes", "2"]);
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    let stderr = finished.stderr.trim_end();
    assert!(
        stderr.starts_with(&format!("sockjet: cannot listen on {addr}: ")),
        "{finished:?}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{finished:?}");
    assert!(
        !stderr.contains('\n'),
        "one line, no worker's: {finished:?}"
    );
}

#[test]
fn bad_process_counts_and_single_process_modes_are_refused() {
    for count in ["0", "257", "-1", "many"] {
        let option = format!("--processes={count}");
        let finished = Sockjet::run(&["serve", "127.0.0.1:0", &option]);
        assert_eq!(finished.status.code(), Some(2), "{count}: {finished:?}");
        assert!(
            finished.stderr.contains("--processes <N>"),
            "{count}: {finished:?}"
        );
    }
    let finished = Sockjet::run(&["serve", "--processes", "0"]);
    assert!(
        finished.stderr.contains("0 is not in 1..=256"),
        "{finished:?}"
    );
    for mode in [
        &["--broadcast"][..],
        &["--demo"],
        &["--unix", "/tmp/x.sock"],
    ] {
        let finished = Sockjet::run(&[&["serve", "--processes", "2"], mode].concat());
        assert_eq!(finished.status.code(), Some(2), "{mode:?}: {finished:?}");
        assert!(
            finished.stderr.contains("cannot be used with"),
            "{mode:?}: {finished:?}"
        );
    }
}
