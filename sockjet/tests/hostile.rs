//! Hostile peers against a sockjet server: each gets the right HTTP status or close code,
//! and the server keeps serving others.

mod common;

use std::time::Duration;

use common::{
    REQUEST, assert_still_serves, close_code_in, echo_server, masked_frame, raw_client, read_head,
    read_to_end, within,
};
use sockjet::ConnectionConfig;
use tokio::{io::AsyncWriteExt, net::TcpStream};

async fn status_for(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let head = read_head(&mut stream).await;
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn server_answers_bad_handshakes_with_http_errors() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (REQUEST.replace("GET", "POST").into_bytes(), "405"),
        (
            REQUEST
                .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8")
                .into_bytes(),
            "426",
        ),
        (
            REQUEST.replace("Upgrade: websocket\r\n", "").into_bytes(),
            "400",
        ),
        (
            REQUEST
                .replace(
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Key: short",
                )
                .into_bytes(),
            "400",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "414",
        ),
        (
            {
                let mut r = REQUEST.trim_end().to_owned();
                for i in 0..200 {
                    r.push_str(&format!("\r\nX-{i}: v"));
                }
                r.push_str("\r\n\r\n");
                r.into_bytes()
            },
            "431",
        ),
        (
            b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n".to_vec(),
            "400",
        ),
    ];
    for (request, status) in cases {
        let line = within(status_for(addr, &request)).await;
        assert!(line.contains(status), "expected {status}, got {line:?}");
    }
    // 426 names the version the server speaks.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(REQUEST.replace("Version: 13", "Version: 99").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn server_fails_bad_frames_with_the_right_close_code() {
    let addr = echo_server(ConnectionConfig::default().max_message_size(Some(64 * 1024))).await;
    let cases: Vec<(Vec<u8>, u16)> = vec![
        // Unmasked frame from a client.
        (vec![0x81, 0x02, b'h', b'i'], 1002),
        // Reserved opcode 0x3.
        (masked_frame(0x83, b""), 1002),
        // RSV1 without an extension.
        (masked_frame(0xC1, b"x"), 1002),
        // Invalid UTF-8 in text.
        (masked_frame(0x81, b"\xff\xfe"), 1007),
        // Continuation with nothing to continue.
        (masked_frame(0x80, b"x"), 1002),
        // Ping with 126 bytes.
        (masked_frame(0x89, &[0u8; 126]), 1002),
        // Fragmented ping.
        (masked_frame(0x09, b""), 1002),
        // Close with code 1005 (may not be sent).
        (masked_frame(0x88, &1005u16.to_be_bytes()), 1002),
        // Close with a 1-byte body.
        (masked_frame(0x88, b"\x03"), 1002),
        // Header announcing a 1 GiB frame: refused before any payload arrives.
        (
            {
                let mut f = vec![0x82, 0x80 | 127];
                f.extend_from_slice(&(1u64 << 30).to_be_bytes());
                f.extend_from_slice(&[1, 2, 3, 4]);
                f
            },
            1009,
        ),
        // 64-bit length with the top bit set.
        (
            {
                let mut f = vec![0x82, 0x80 | 127];
                f.extend_from_slice(&u64::MAX.to_be_bytes());
                f.extend_from_slice(&[1, 2, 3, 4]);
                f
            },
            1002,
        ),
    ];
    for (bytes, code) in cases {
        let mut stream = raw_client(addr).await;
        stream.write_all(&bytes).await.unwrap();
        let reply = read_to_end(&mut stream).await;
        assert_eq!(
            close_code_in(&reply),
            Some(code),
            "for {:02x?}",
            &bytes[..2]
        );
    }
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn fragment_flood_is_bounded_by_the_message_limit() {
    let addr = echo_server(ConnectionConfig::default().max_message_size(Some(64 * 1024))).await;
    let mut stream = raw_client(addr).await;
    let mut flood = masked_frame(0x02, b"x");
    for _ in 0..100_000 {
        flood.extend_from_slice(&masked_frame(0x00, b"x"));
    }
    // The server fails the connection once 64 KiB is exceeded; it may stop reading
    // before the whole flood is written.
    let writer = tokio::spawn(async move {
        let _ = stream.write_all(&flood).await;
        stream
    });
    let mut stream = within(writer).await.unwrap();
    let reply = read_to_end(&mut stream).await;
    assert_eq!(close_code_in(&reply), Some(1009));
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn slow_handshake_is_cut_by_the_open_timeout() {
    let config = ConnectionConfig::default().open_timeout(Some(Duration::from_millis(300)));
    let addr = echo_server(config).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Half a request, then silence.
    stream.write_all(&REQUEST.as_bytes()[..20]).await.unwrap();
    let started = std::time::Instant::now();
    let rest = read_to_end(&mut stream).await;
    assert!(rest.is_empty() || !rest.starts_with(b"HTTP/1.1 101"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn vanished_peer_mid_frame_does_not_hurt_the_server() {
    let addr = echo_server(ConnectionConfig::default()).await;
    for _ in 0..20 {
        let mut stream = raw_client(addr).await;
        let frame = masked_frame(0x82, &[7u8; 1000]);
        stream.write_all(&frame[..500]).await.unwrap();
        drop(stream);
    }
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn invalid_utf8_fails_fast_inside_a_partial_frame() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut stream = raw_client(addr).await;
    // A 1000-byte text frame whose 3rd byte is invalid: send only the first 10 bytes.
    let mut payload = vec![b'a'; 1000];
    payload[2] = 0xff;
    let frame = masked_frame(0x81, &payload);
    stream.write_all(&frame[..18]).await.unwrap();
    let reply = read_to_end(&mut stream).await;
    assert_eq!(close_code_in(&reply), Some(1007));
}

#[tokio::test]
async fn ping_flood_from_a_peer_that_never_reads_is_bounded() {
    for reads in [true, false] {
        // With an application in recv() and with one that never reads.
        let addr = if reads {
            echo_server(ConnectionConfig::default()).await
        } else {
            common::server(ConnectionConfig::default(), |ws| async move {
                tokio::time::sleep(Duration::from_secs(8)).await;
                drop(ws);
            })
            .await
        };
        let mut stream = raw_client(addr).await;
        let ping = masked_frame(0x89, &[b'p'; 125]);
        let burst: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 1000)
            .collect();
        let mut written = 0usize;
        for _ in 0..10_000 {
            match tokio::time::timeout(Duration::from_millis(500), stream.write_all(&burst)).await {
                Ok(Ok(())) => written += burst.len(),
                _ => break,
            }
        }
        // Pongs owed pile up only to the write limit; then the server stops reading, and
        // the kernel buffers (a few MiB on loopback) fill.
        assert!(
            written < 256 << 20,
            "server read {written} bytes of pings without pause"
        );
    }
}
