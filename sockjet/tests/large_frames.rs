//! Large frames arriving in pieces. On Linux the server waits for the rest of a large
//! frame with the socket's receive low-water mark raised to what the frame misses; these
//! tests fail if that mark outlives the frame (a small frame or a ping after it would
//! never wake the server), or hides a vanished peer.

mod common;

use std::time::Duration;

use common::*;
use sockjet::ConnectionConfig;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// Reads one unmasked server frame: its opcode and payload.
async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    within(stream.read_exact(&mut header)).await.unwrap();
    let len = match header[1] & 0x7F {
        126 => {
            let mut len = [0u8; 2];
            within(stream.read_exact(&mut len)).await.unwrap();
            u16::from_be_bytes(len) as usize
        }
        127 => {
            let mut len = [0u8; 8];
            within(stream.read_exact(&mut len)).await.unwrap();
            u64::from_be_bytes(len) as usize
        }
        len => len as usize,
    };
    assert!(len <= 16 << 20, "frame of {len} bytes");
    let mut payload = vec![0; len];
    within(stream.read_exact(&mut payload)).await.unwrap();
    (header[0] & 0x0F, payload)
}

/// Writes `frame` in five pieces, pausing after each, so that the server reads the first
/// and then waits for the rest of the frame. For a frame over 4.4 MB, the second piece
/// is more than the highest mark (4 MiB) and leaves more than 64 KiB missing: the mark
/// must then come down to what is missing, or the last pieces never wake the server.
async fn write_in_pieces(stream: &mut TcpStream, frame: &[u8]) {
    let second = match frame.len() > 4_500_000 {
        true => 4_400_000,
        false => frame.len() / 2,
    };
    let cuts = [
        0,
        10_000,
        second,
        frame.len() - 100,
        frame.len() - 1,
        frame.len(),
    ];
    for piece in cuts.windows(2) {
        stream.write_all(&frame[piece[0]..piece[1]]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn large_frames_in_pieces_are_echoed_and_small_frames_after_them_still_wake_the_server() {
    let config = ConnectionConfig::default().max_message_size(Some(8 << 20));
    let addr = echo_server(config).await;
    let mut stream = raw_client(addr).await;
    // 600 KiB fits one raised mark; 5 MiB is more than the highest mark (4 MiB), so the
    // mark is lowered as the frame comes in.
    for size in [600 * 1024, 5 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        write_in_pieces(&mut stream, &masked_frame(0x82, &payload)).await;
        let (opcode, echoed) = read_frame(&mut stream).await;
        assert_eq!(opcode, 0x2);
        assert!(echoed == payload, "the {size}-byte echo differs");

        // A 6-byte ping, then a 7-byte text frame: each must wake the server on its own.
        stream.write_all(&masked_frame(0x89, b"")).await.unwrap();
        assert_eq!(read_frame(&mut stream).await, (0xA, Vec::new()));
        stream.write_all(&masked_frame(0x81, b"a")).await.unwrap();
        assert_eq!(read_frame(&mut stream).await, (0x1, b"a".to_vec()));
    }
}

#[tokio::test]
async fn a_peer_that_half_closes_inside_a_large_frame_is_seen_at_once() {
    let addr = echo_server(ConnectionConfig::default().max_message_size(Some(8 << 20))).await;
    let mut stream = raw_client(addr).await;
    let frame = masked_frame(0x82, &vec![7u8; 1 << 20]);
    stream.write_all(&frame[..100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The server waits for 900 KiB more; the end of the stream must wake it all the same,
    // well before any timeout: it closes its side and the read below sees EOF.
    stream.shutdown().await.unwrap();
    let started = std::time::Instant::now();
    let rest = read_to_end(&mut stream).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(rest.len() < 64, "{} bytes after a half-close", rest.len());
    assert_still_serves(addr).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_large_text_frame_fails_the_connection() {
    let addr = echo_server(ConnectionConfig::default().max_message_size(Some(8 << 20))).await;
    let mut stream = raw_client(addr).await;
    let mut payload = vec![b'a'; 1 << 20];
    payload[700_000] = 0xff;
    write_in_pieces(&mut stream, &masked_frame(0x81, &payload)).await;
    let reply = read_to_end(&mut stream).await;
    assert_eq!(close_code_in(&reply), Some(1007));
}
