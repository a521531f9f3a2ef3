//! The io_uring engine end to end over loopback: sockjet's tokio client and raw TCP
//! against it. Skipped (with a message) where the kernel refuses io_uring.
#![cfg(target_os = "linux")]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use sockjet::{CloseCode as ClientCloseCode, Message as ClientMessage, connect};
use sockjet_uring::{
    CloseCode, ConnectionClosed, Handler, Message, Options, Request, Server, ShutdownHandle,
    Socket, SocketId,
};

/// What the handler saw, shared with the test.
#[derive(Default)]
struct Seen {
    paths: Vec<String>,
    /// The worker threads that opened connections.
    workers: std::collections::HashSet<String>,
    closed: Vec<ConnectionClosed>,
}

/// Echoes, and records opens and closes.
struct Echo(Arc<Mutex<Seen>>);

impl Handler for Echo {
    fn open(&mut self, _socket: &mut Socket<'_>, request: &Request) {
        let mut seen = self.0.lock().unwrap();
        seen.paths.push(request.uri().to_string());
        let worker = std::thread::current().name().unwrap_or("").to_owned();
        seen.workers.insert(worker);
    }

    fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
        if let Message::Text(text) = &message {
            if &**text == "close please" {
                socket.close(CloseCode::NORMAL_CLOSURE, "as asked");
                return;
            }
        }
        let _ = socket.send(message);
    }

    fn closed(&mut self, _id: SocketId, closed: &ConnectionClosed) {
        self.0.lock().unwrap().closed.push(closed.clone());
    }
}

struct Running {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Running {
    /// Shuts down and waits for `run` to return.
    fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.shutdown();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

/// Starts an echo server, or `None` if this kernel has no usable io_uring.
fn start(options: Options) -> Option<Running> {
    if let Err(error) = sockjet_uring::probe() {
        eprintln!("skipped: no io_uring here ({error})");
        return None;
    }
    let server = Server::bind("127.0.0.1:0", options).unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handler_seen = Arc::clone(&seen);
    let thread = std::thread::spawn(move || server.run(move || Echo(Arc::clone(&handler_seen))));
    Some(Running {
        addr,
        shutdown,
        thread: Some(thread),
        seen,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("timed out")
}

const REQUEST: &str = "GET /raw HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A raw TCP connection (reads time out after 5 s) that sent `request`.
fn raw(addr: SocketAddr, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// Reads until EOF, a timeout or 16 MiB.
fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    while all.len() < 16 << 20 {
        match stream.read(&mut buf) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    all
}

/// A masked client frame.
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// The bytes after the response head, and the head.
fn split_head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    (String::from_utf8_lossy(&bytes[..end]).into(), &bytes[end..])
}

/// The close code of the first close frame among unmasked server frames.
fn close_code_in(mut rest: &[u8]) -> Option<u16> {
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0F;
        let (len, header) = match rest[1] & 0x7F {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            len => (len as usize, 2),
        };
        if rest.len() < header + len {
            return None;
        }
        if opcode == 0x8 {
            return (len >= 2).then(|| u16::from_be_bytes([rest[header], rest[header + 1]]));
        }
        rest = &rest[header + len..];
    }
    None
}

#[test]
fn echoes_text_binary_large_and_compressed_messages() {
    let Some(server) = start(Options::default()) else {
        return;
    };
    let addr = server.addr;
    runtime().block_on(async move {
        // sockjet's client offers permessage-deflate, which the engine accepts.
        let mut ws = within(connect(&format!("ws://{addr}/echo?x=1")))
            .await
            .unwrap();
        ws.send("héllo").await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Some(ClientMessage::text("héllo"))
        );
        ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Some(ClientMessage::binary(vec![0u8, 1, 2, 255]))
        );
        // Sizes that take the pool, the direct receive, and a raised low-water mark.
        for size in [20_000usize, 1 << 20, 5, 300_000, 0, 16_384] {
            let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            ws.send(big.clone()).await.unwrap();
            assert_eq!(
                within(ws.recv()).await.unwrap(),
                Some(ClientMessage::binary(big)),
                "{size} bytes"
            );
        }
        ws.close(ClientCloseCode::NORMAL_CLOSURE, "bye")
            .await
            .unwrap();
        let closed = within(ws.closed()).await;
        assert_eq!(
            closed.rcvd.map(|frame| frame.code),
            Some(ClientCloseCode::NORMAL_CLOSURE)
        );
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.seen.lock().unwrap().closed.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.paths, ["/echo?x=1"]);
    assert_eq!(seen.closed.len(), 1);
    assert!(seen.closed[0].is_ok(), "{:?}", seen.closed[0]);
}

#[test]
fn many_connections_pipeline_messages_in_order() {
    let Some(server) = start(Options {
        threads: 2,
        ..Default::default()
    }) else {
        return;
    };
    let addr = server.addr;
    runtime().block_on(async move {
        let mut clients = Vec::new();
        for client in 0..40 {
            clients.push(tokio::spawn(async move {
                let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
                let (mut rx, tx) = ws.split();
                let writer = tokio::spawn(async move {
                    for i in 0..500u32 {
                        tx.send(format!("{client}:{i}")).await.unwrap();
                    }
                    tx
                });
                for i in 0..500u32 {
                    assert_eq!(
                        within(rx.recv()).await.unwrap(),
                        Some(ClientMessage::text(format!("{client}:{i}")))
                    );
                }
                writer.await.unwrap();
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
    });
    // SO_REUSEPORT spread the 40 connections over both workers (all on one: 2^-39).
    let workers = server.seen.lock().unwrap().workers.clone();
    assert_eq!(workers.len(), 2, "{workers:?}");
    server.stop().unwrap();
}

/// Large messages of different contents, pipelined: receives straight into a buffer that
/// the previous message shared when the receive was posted must not lose or replay bytes.
#[test]
fn pipelined_large_messages_come_back_intact() {
    let Some(server) = start(Options::default()) else {
        return;
    };
    let addr = server.addr;
    runtime().block_on(async move {
        let mut clients = Vec::new();
        for client in 0..4u8 {
            clients.push(tokio::spawn(async move {
                let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
                let (mut rx, tx) = ws.split();
                let message = move |i: u32| -> Vec<u8> {
                    let size = [16_384usize, 20_000, 9_000, 70_000][i as usize % 4];
                    (0..size)
                        .map(|at| (at as u32 * 31 + i * 7 + u32::from(client)) as u8)
                        .collect()
                };
                let writer = tokio::spawn(async move {
                    for i in 0..300u32 {
                        tx.send(message(i)).await.unwrap();
                    }
                });
                for i in 0..300u32 {
                    assert_eq!(
                        within(rx.recv()).await.unwrap(),
                        Some(ClientMessage::binary(message(i))),
                        "client {client}, message {i}"
                    );
                }
                writer.await.unwrap();
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
    });
}

#[test]
fn the_handler_closes_and_the_closing_handshake_completes() {
    let Some(server) = start(Options::default()) else {
        return;
    };
    let mut stream = raw(server.addr, REQUEST);
    stream
        .write_all(&masked_frame(0x81, b"close please"))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while close_code_in(split_head_or_empty(&got)).is_none() {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "ended before the close frame");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(close_code_in(split_head(&got).1), Some(1000));
    // Our close reply; then the server ends TCP.
    stream
        .write_all(&masked_frame(0x88, &1000u16.to_be_bytes()))
        .unwrap();
    assert!(read_to_end(&mut stream).is_empty());
}

fn split_head_or_empty(bytes: &[u8]) -> &[u8] {
    match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &bytes[end + 4..],
        None => &[],
    }
}

#[test]
fn protocol_violations_get_their_close_codes() {
    let Some(server) = start(Options {
        config: sockjet_uring::ServerConfig::default()
            .protocol(sockjet_uring::Config::default().max_message_size(Some(1000))),
        ..Default::default()
    }) else {
        return;
    };
    let cases: [(&str, Vec<u8>, u16); 4] = [
        // An unmasked client frame (RFC 6455 §5.1).
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("invalid UTF-8", masked_frame(0x81, &[0xC3, 0x28]), 1007),
        ("too big", masked_frame(0x82, &[0u8; 2000]), 1009),
        ("reserved opcode", masked_frame(0x83, b""), 1002),
    ];
    for (name, frame, code) in cases {
        let mut stream = raw(server.addr, REQUEST);
        stream.write_all(&frame).unwrap();
        let got = read_to_end(&mut stream);
        let (head, frames) = split_head(&got);
        assert!(head.starts_with("HTTP/1.1 101"), "{name}: {head}");
        assert_eq!(close_code_in(frames), Some(code), "{name}");
    }
    // The server still serves.
    let mut stream = raw(server.addr, REQUEST);
    stream.write_all(&masked_frame(0x81, b"ok")).unwrap();
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while split_head_or_empty(&got).len() < 4 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(split_head(&got).1, b"\x81\x02ok");
}

#[test]
fn bad_handshakes_get_an_error_response() {
    let Some(server) = start(Options::default()) else {
        return;
    };
    let no_key = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let got = read_to_end(&mut raw(server.addr, no_key));
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let not_get = "POST / HTTP/1.1\r\nHost: x\r\n\r\n";
    let got = read_to_end(&mut raw(server.addr, not_get));
    assert!(
        got.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn connections_over_the_limit_get_503() {
    let Some(server) = start(Options {
        max_connections: Some(1),
        ..Default::default()
    }) else {
        return;
    };
    let mut first = raw(server.addr, REQUEST);
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    let got = read_to_end(&mut raw(server.addr, REQUEST));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    // Once the first goes, a new one is let in.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = raw(server.addr, REQUEST);
        let n = again.read(&mut buf).unwrap();
        if buf[..n].starts_with(b"HTTP/1.1 101") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never let in again");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn silent_clients_are_dropped_after_the_handshake_timeout() {
    let Some(server) = start(Options {
        handshake_timeout: Duration::from_millis(200),
        ..Default::default()
    }) else {
        return;
    };
    let started = std::time::Instant::now();
    let mut stream = raw(server.addr, "GET / HTTP/1.1\r\n");
    assert!(read_to_end(&mut stream).is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[test]
fn keepalive_pings_and_closes_with_1011_when_no_pong_comes() {
    let Some(server) = start(Options {
        ping_interval: Some(Duration::from_millis(100)),
        ping_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    }) else {
        return;
    };
    let mut stream = raw(server.addr, REQUEST);
    let got = read_to_end(&mut stream);
    let (head, frames) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 101"));
    assert_eq!(frames[0], 0x89, "a ping comes first: {frames:?}");
    assert_eq!(close_code_in(frames), Some(1011));
}

#[test]
fn a_slow_reader_is_paused_then_gets_every_echo_in_order() {
    let Some(server) = start(Options {
        write_limit: 64 * 1024,
        ..Default::default()
    }) else {
        return;
    };
    let addr = server.addr;
    runtime().block_on(async move {
        let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
        let (mut rx, tx) = ws.split();
        let payload = vec![7u8; 10_000];
        // 20 MB sent before anything is read: the server must stop reading rather than
        // queue it all, and resume as we read.
        let writer = tokio::spawn(async move {
            for i in 0..2000u32 {
                let mut message = payload.clone();
                message[..4].copy_from_slice(&i.to_be_bytes());
                tx.send(message).await.unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..2000u32 {
            let Some(ClientMessage::Binary(data)) = within(rx.recv()).await.unwrap() else {
                panic!("not a binary message");
            };
            assert_eq!(data[..4], i.to_be_bytes());
        }
        writer.await.unwrap();
    });
}

#[test]
fn shutdown_closes_open_connections_with_1001() {
    let Some(server) = start(Options::default()) else {
        return;
    };
    let addr = server.addr;
    let shutdown = server.shutdown.clone();
    runtime().block_on(async move {
        let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
        ws.send("x").await.unwrap();
        within(ws.recv()).await.unwrap();
        shutdown.shutdown();
        assert_eq!(within(ws.recv()).await.unwrap(), None);
        let closed = within(ws.closed()).await;
        assert_eq!(
            closed.rcvd.map(|frame| frame.code),
            Some(ClientCloseCode::GOING_AWAY)
        );
    });
    server.stop().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after run returned"
    );
}

#[test]
fn hostile_peers_get_errors_and_hurt_no_one_else() {
    let Some(server) = start(Options::default()) else {
        return;
    };
    let addr = server.addr;
    // A request head past the limit: 431, not unbounded buffering.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let got = read_to_end(&mut raw(addr, &huge));
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Peers that vanish: mid-handshake, mid-frame, with a frame header announcing 2^62
    // bytes, and one that resets.
    drop(raw(addr, "GET / HTTP/1.1\r\nHost: x\r\n"));
    let mut half = raw(addr, REQUEST);
    half.write_all(&masked_frame(0x82, &[1u8; 1000])[..500])
        .unwrap();
    drop(half);
    let mut endless = raw(addr, REQUEST);
    endless
        .write_all(&[0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4])
        .unwrap();
    let got = read_to_end(&mut endless);
    assert_eq!(close_code_in(split_head(&got).1), Some(1009));
    let reset = raw(addr, REQUEST);
    socket_linger_zero(&reset);
    drop(reset);
    // Everyone else is still served.
    runtime().block_on(async move {
        let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
        ws.send("still here").await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Some(ClientMessage::text("still here"))
        );
    });
}

/// Makes closing `stream` send a reset instead of a FIN.
fn socket_linger_zero(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Whether this kernel has the minimum wait a busy worker gathers with (Linux 6.12).
fn kernel_can_gather() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (6, 12)
}

/// A raw connection after its opening handshake (the 101 read, nothing more).
fn raw_open(addr: SocketAddr) -> TcpStream {
    let mut stream = raw(addr, REQUEST);
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    stream
}

/// Sends `payloads` as masked text frames in one write and checks their echoes come back
/// byte for byte, in order; returns how long the echoes took.
fn echo_batch(stream: &mut TcpStream, payloads: &[String]) -> Duration {
    let frames: Vec<u8> = payloads
        .iter()
        .flat_map(|payload| masked_frame(0x81, payload.as_bytes()))
        .collect();
    let expected: Vec<u8> = payloads
        .iter()
        .flat_map(|payload| {
            let mut frame = vec![0x81, payload.len() as u8];
            frame.extend_from_slice(payload.as_bytes());
            frame
        })
        .collect();
    stream.write_all(&frames).unwrap();
    let sent = std::time::Instant::now();
    let mut echoes = vec![0u8; expected.len()];
    stream.read_exact(&mut echoes).unwrap();
    assert_eq!(echoes, expected);
    sent.elapsed()
}

/// Under load from enough connections a busy worker's waits gather completions for
/// `busy_gather_wait` (200 ms here, to be seen from outside: without it no echo here
/// takes more than a few milliseconds), every echo still intact and in order; idle
/// again, it answers at once.
#[test]
fn a_busy_worker_gathers_completions_and_an_idle_one_answers_at_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const GATHER: Duration = Duration::from_millis(200);
    // 48 connections, each with 16 small messages in flight, from 4 threads writing each
    // connection's 16 frames at once: cheap for the clients, so the server is the busy
    // side.
    const THREADS: usize = 4;
    const PER_THREAD: usize = 12;
    const IN_FLIGHT: usize = 16;
    if !kernel_can_gather() {
        eprintln!("skipped: gathering needs Linux 6.12");
        return;
    }
    let Some(server) = start(Options {
        busy_gather_wait: Some(GATHER),
        ..Default::default()
    }) else {
        return;
    };
    let addr = server.addr;
    let seen_gathering = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let seen_gathering = Arc::clone(&seen_gathering);
            std::thread::spawn(move || {
                let mut streams: Vec<_> = (0..PER_THREAD).map(|_| raw_open(addr)).collect();
                let mut longest = Duration::ZERO;
                let mut round = 0u32;
                // Until some connection waited most of GATHER, for at most 5 s.
                while !seen_gathering.load(Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(5)
                {
                    for (index, stream) in streams.iter_mut().enumerate() {
                        let payloads: Vec<String> = (0..IN_FLIGHT)
                            .map(|i| format!("{thread}:{index}:{round}:{i}"))
                            .collect();
                        let took = echo_batch(stream, &payloads);
                        longest = longest.max(took);
                        if took >= GATHER * 3 / 4 {
                            seen_gathering.store(true, Ordering::Relaxed);
                        }
                    }
                    round += 1;
                }
                longest
            })
        })
        .collect();
    let longest: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        seen_gathering.load(Ordering::Relaxed),
        "no echo waited {GATHER:?} under load; longest per thread: {longest:?}"
    );
    // Idle: one connection's round trips are quick again (the first may still find the
    // worker gathering, once).
    let mut stream = raw_open(addr);
    let mut round_trips: Vec<Duration> = (0..11)
        .map(|i| echo_batch(&mut stream, &[format!("ping {i}")]))
        .collect();
    round_trips.sort();
    assert!(
        round_trips[5] < GATHER / 4,
        "idle round trips: {round_trips:?}"
    );
    drop(stream);
    server.stop().unwrap();
}
