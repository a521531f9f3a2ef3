//! Micro-benchmarks of the codec's hot paths at 16 B, 16 KiB and 1 MiB: masking (against a
//! plain `memcpy` of the same size), UTF-8 validation (whole and incremental), parsing a
//! masked frame on the server side, and encoding on both sides.
//!
//! `cargo bench -p sockjet-proto --bench codec`; for a quick run add
//! `-- --warm-up-time 1 --measurement-time 2`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockjet_proto::{
    Bytes, Config, Event, MaskKeys, Message, Protocol, Side, bytes::Buf, frame::mask::apply_mask,
    utf8::Utf8Validator,
};

const SIZES: [(&str, usize); 3] = [("16B", 16), ("16KiB", 16 * 1024), ("1MiB", 1 << 20)];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct FixedKeys;

impl MaskKeys for FixedKeys {
    fn next_key(&mut self) -> [u8; 4] {
        KEY
    }
}

/// `len` bytes of valid UTF-8, mostly ASCII with 2-, 3- and 4-byte code points.
fn utf8_text(len: usize) -> String {
    const SAMPLE: &str = "Hello, wörld! κόσμε — €100 𝄞 plain ASCII text follows here. ";
    let mut text = String::with_capacity(len + SAMPLE.len());
    while text.len() < len {
        text.push_str(SAMPLE);
    }
    let mut end = len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    while text.len() < len {
        text.push('.');
    }
    text
}

/// A frame as a client sends it: masked with `KEY`.
fn client_frame(text: bool, payload: &[u8]) -> Vec<u8> {
    let mut client = Protocol::new(Side::Client, Config::default()).with_mask_keys(FixedKeys);
    if text {
        client
            .send_text(std::str::from_utf8(payload).expect("UTF-8"))
            .expect("open");
    } else {
        client.send_binary(payload).expect("open");
    }
    let mut wire = Vec::new();
    client.outgoing().drain_into(&mut wire);
    wire
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buffer = vec![0x5a_u8; size];
        group.bench_function(BenchmarkId::new("apply_mask", name), |b| {
            b.iter(|| apply_mask(black_box(&mut buffer), black_box(KEY)));
        });
        let source = vec![0xa5_u8; size];
        let mut destination = vec![0_u8; size];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| black_box(&mut destination).copy_from_slice(black_box(&source)));
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let text = utf8_text(size);
        let bytes = text.as_bytes();
        group.bench_function(BenchmarkId::new("validate_complete", name), |b| {
            b.iter(|| Utf8Validator::validate_complete(black_box(bytes)).expect("valid"));
        });
        group.bench_function(BenchmarkId::new("feed_4KiB", name), |b| {
            b.iter(|| {
                let mut validator = Utf8Validator::default();
                for piece in black_box(bytes).chunks(4096) {
                    validator.feed(piece).expect("valid");
                }
                assert!(validator.is_complete());
            });
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_parse");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for text in [false, true] {
            let payload = if text {
                utf8_text(size).into_bytes()
            } else {
                (0..size).map(|i| i as u8).collect()
            };
            let wire = client_frame(text, &payload);
            let mut server = Protocol::new(Side::Server, Config::default());
            let id = if text { "masked_text" } else { "masked_binary" };
            group.bench_function(BenchmarkId::new(id, name), |b| {
                b.iter(|| {
                    server.receive_data(black_box(&wire));
                    match server.next_event() {
                        Some(Event::Message(message)) => {
                            black_box(message);
                        }
                        other => panic!("{other:?}"),
                    }
                });
            });
        }
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let payload = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
        let mut server = Protocol::new(Side::Server, Config::default());
        group.bench_function(BenchmarkId::new("server_send_message", name), |b| {
            b.iter(|| {
                server
                    .send_message(Message::Binary(black_box(payload.clone())))
                    .expect("open");
                let out = server.outgoing();
                black_box(out.chunk());
                out.advance(out.remaining());
            });
        });
        let mut client = Protocol::new(Side::Client, Config::default()).with_mask_keys(FixedKeys);
        group.bench_function(BenchmarkId::new("client_send_binary", name), |b| {
            b.iter(|| {
                client.send_binary(black_box(&payload)).expect("open");
                let out = client.outgoing();
                black_box(out.chunk());
                out.advance(out.remaining());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, mask, utf8, parse, encode);
criterion_main!(benches);
