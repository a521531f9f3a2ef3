//! `sockjet serve --broadcast` with a subscriber that stops reading: the others keep
//! receiving every message at full speed, and the server's memory stays bounded (the
//! stalled subscriber misses messages instead of having them queued without end).

mod common;

use std::time::{Duration, Instant};

use common::{Serve, TIMEOUT};
use sockjet::{Connection, Message};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Messages broadcast, 1 KiB each: 40 MiB, far more than any buffer on the way.
const MESSAGES: u32 = 40_000;
const SIZE: usize = 1024;
/// Messages in flight: the publisher waits for every reading subscriber to have the
/// window before sending the next, so they never fall 64 KiB (the write limit) behind.
const WINDOW: u32 = 32;
const READERS: usize = 4;

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("test step timed out")
}

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// A raw TCP subscriber with a small receive buffer that completes the opening handshake
/// by hand and never reads again.
async fn stalled_subscriber(host_port: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = within(socket.connect(host_port.parse().unwrap()))
        .await
        .unwrap();
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
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

/// The sequence number a message starts with.
fn sequence(message: &Message) -> u32 {
    let bytes: [u8; 4] = message.as_bytes()[..4].try_into().expect("4-byte sequence");
    u32::from_be_bytes(bytes)
}

/// A subscriber that reads, and the sequence number it expects next.
struct Reader {
    connection: Connection,
    next: u32,
}

impl Reader {
    /// Receives every message up to `last`, each in order and none missing (the probes
    /// sent before the measurement, of another size, are skipped).
    async fn receive_up_to(&mut self, last: u32) {
        while self.next <= last {
            let message = within(self.connection.recv())
                .await
                .unwrap()
                .expect("reader closed");
            if message.as_bytes().len() == SIZE {
                assert_eq!(sequence(&message), self.next, "a reader missed a message");
                self.next += 1;
            }
        }
    }
}

#[test]
fn a_subscriber_that_stops_reading_slows_no_one_and_costs_bounded_memory() {
    let server = Serve::start(&["127.0.0.1:0", "--broadcast", "-q"]);
    let pid = server.process.id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = server.url.clone();
        let _stalled = stalled_subscriber(server.host_port()).await;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let connection = within(sockjet::connect(&url)).await.unwrap();
            readers.push(Reader {
                connection,
                next: 1,
            });
        }
        let publisher = within(sockjet::connect(&url)).await.unwrap();
        let (mut own_copies, publisher) = publisher.split();
        // The publisher gets its own copies too: drain them.
        tokio::spawn(async move { while let Ok(Some(_)) = own_copies.recv().await {} });

        // Probe until every reader hears the publisher: all are members then.
        for reader in &mut readers {
            loop {
                publisher.send(Message::binary(vec![0u8; 8])).await.unwrap();
                let heard =
                    tokio::time::timeout(Duration::from_millis(500), reader.connection.recv())
                        .await;
                if matches!(heard, Ok(Ok(Some(_)))) {
                    break;
                }
            }
        }
        let rss_before = rss_bytes(pid);
        let started = Instant::now();

        let mut payload = vec![0x5au8; SIZE];
        for first in (1..=MESSAGES).step_by(WINDOW as usize) {
            let last = (first + WINDOW - 1).min(MESSAGES);
            for sequence in first..=last {
                payload[..4].copy_from_slice(&sequence.to_be_bytes());
                publisher
                    .send(Message::binary(payload.clone()))
                    .await
                    .unwrap();
            }
            for reader in &mut readers {
                reader.receive_up_to(last).await;
            }
        }
        let elapsed = started.elapsed();
        let growth = rss_bytes(pid).saturating_sub(rss_before);

        // 40 MiB went to each reader while the stalled subscriber read nothing: had its
        // messages been queued, the server would hold most of 40 MiB for it.
        assert!(
            growth < 16 << 20,
            "server RSS grew by {} KiB with a stalled subscriber",
            growth >> 10
        );
        assert!(elapsed < TIMEOUT, "readers were held up: {elapsed:?}");
        eprintln!(
            "{MESSAGES} messages of {SIZE} B to {READERS} readers in {elapsed:?}; \
             server RSS +{} KiB",
            growth >> 10
        );
    });
}
