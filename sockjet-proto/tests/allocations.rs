//! The hot path allocates nothing per message once warm: parse, unmask, validate, hand the
//! payload out, encode the reply and drain it.
#![allow(unsafe_code)] // a counting global allocator, test-only

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use bytes::Buf;
use sockjet_proto::{Config, Event, Protocol, Side};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

fn echo_round(server: &mut Protocol, wire: &[u8], sink: &mut [u8]) {
    server.receive_buffer().extend_from_slice(wire);
    while let Some(event) = server.next_event() {
        if let Event::Message(message) = event {
            server.send_message(message).unwrap();
        }
    }
    let out = server.outgoing();
    while out.has_remaining() {
        let n = out.chunk().len().min(sink.len());
        sink[..n].copy_from_slice(&out.chunk()[..n]);
        out.advance(n);
    }
}

#[test]
fn server_echo_of_small_messages_allocates_nothing_once_warm() {
    let mut server = Protocol::new(Side::Server, Config::default());
    let text = masked_frame(0x1, b"hello, sockjet!!");
    let binary = masked_frame(0x2, &[7; 100]);
    let mut sink = vec![0u8; 4096];
    for _ in 0..100 {
        echo_round(&mut server, &text, &mut sink);
        echo_round(&mut server, &binary, &mut sink);
    }
    let before = allocations();
    for _ in 0..10_000 {
        echo_round(&mut server, &text, &mut sink);
        echo_round(&mut server, &binary, &mut sink);
    }
    let per_message = (allocations() - before) as f64 / 20_000.0;
    assert!(per_message < 0.01, "{per_message} allocations per message");
}

/// Once the messages read from it are gone, the receive buffer is reused from its start:
/// reads keep landing in the same (cache-warm) bytes instead of sweeping through the
/// allocation, whether the driver copies into it or reads straight into it.
#[test]
fn reads_reuse_the_start_of_the_receive_buffer() {
    const KEY: [u8; 4] = [1, 2, 3, 4];
    let frame = |payload: &[u8]| {
        let len = u16::try_from(payload.len()).unwrap().to_be_bytes();
        let mut wire = vec![0x82, 0x80 | 126, len[0], len[1]];
        wire.extend(KEY);
        wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i & 3]));
        wire
    };
    let mut server = Protocol::new(Side::Server, Config::default());
    // A buffer much larger than a message, as a connection has after a large one.
    assert!(
        server
            .provide_receive_buffer(bytes::BytesMut::with_capacity(64 * 1024))
            .is_none()
    );
    let start = server.receive_buffer().as_ptr();
    for round in 0..100u8 {
        let payload = [round; 1000];
        if round % 2 == 0 {
            server.receive_data(&frame(&payload));
        } else {
            server.receive_buffer().extend_from_slice(&frame(&payload));
        }
        match server.next_event() {
            Some(Event::Message(message)) => assert_eq!(message.as_bytes(), &payload[..]),
            other => panic!("expected a message, got {other:?}"),
        }
        // The message is dropped here: nothing shares the buffer any more.
        assert_eq!(server.receive_buffer().as_ptr(), start, "round {round}");
    }
}
