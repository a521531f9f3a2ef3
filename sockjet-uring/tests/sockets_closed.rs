//! Every connection's socket is closed once the connection ends: hundreds of connection
//! cycles leave the process with the descriptors it had before them. A file of its own,
//! so that no other test opens or closes descriptors in this process meanwhile. Skipped
//! (with a message) where the kernel refuses io_uring.
#![cfg(target_os = "linux")]

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use sockjet_uring::{Handler, Message, Options, Server, Socket};

struct Echo;

impl Handler for Echo {
    fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
        let _ = socket.send(message);
    }
}

const REQUEST: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A client's close frame with code 1000 (masked with an all-zero key).
const CLOSE_1000: [u8; 8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8];

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Opens a connection, completes the handshake, closes with 1000 and reads to the end.
fn cycle(addr: std::net::SocketAddr, abrupt: bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(REQUEST.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "ended before the handshake response");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    if abrupt {
        // Gone without a closing handshake: the server's receive sees the end.
        return;
    }
    stream.write_all(&CLOSE_1000).unwrap();
    // The server's close frame, then the end of its side.
    let mut rest = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest += n,
            Err(error) => panic!("no end of TCP from the server: {error}"),
        }
    }
    assert_eq!(rest, 4, "the server's close frame");
}

#[test]
fn ended_connections_leave_no_open_socket_behind() {
    if let Err(error) = sockjet_uring::probe() {
        eprintln!("skipped: no io_uring here ({error})");
        return;
    }
    let server = Server::bind("127.0.0.1:0", Options::default()).unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run(|| Echo));
    // The workers' rings, listeners and eventfds are open once one connection went through.
    cycle(addr, false);
    let settle = |expected: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while open_descriptors() > expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        open_descriptors()
    };
    std::thread::sleep(Duration::from_millis(50));
    let before = open_descriptors();
    for round in 0..300 {
        cycle(addr, round % 3 == 2);
    }
    let after = settle(before);
    assert!(
        after <= before,
        "{} descriptors open after 300 connections, {before} before",
        after
    );
    shutdown.shutdown();
    thread.join().unwrap().unwrap();
}
