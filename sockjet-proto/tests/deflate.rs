//! permessage-deflate on its own (RFC 7692): negotiation, the RFC's examples, round trips
//! with every window size, frames split anywhere, corrupt data, decompression bombs, and
//! the memory each configuration takes.
#![allow(unsafe_code)] // a counting global allocator, test-only

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use sockjet_proto::{
    BytesMut, HandshakeError, Side,
    extension::permessage_deflate::{
        DeflateConfig, DeflateParams, InflateError, PerMessageDeflate,
    },
};

// ---------------------------------------------------------------------------------------
// Counting allocator: bytes live on the current thread, and their peak.

struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    LIVE.with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        PEAK.with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; only counts bytes on the current thread.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Bytes live on this thread now.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Starts measuring a peak from now; returns the bytes live now.
fn reset_peak() -> isize {
    let now = live();
    PEAK.with(|peak| peak.set(now));
    now
}

fn peak() -> isize {
    PEAK.with(Cell::get)
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn params(snct: bool, cnct: bool, server_bits: u8, client_bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }
}

/// Both ends of a connection with `params`.
fn pair(params: DeflateParams) -> (PerMessageDeflate, PerMessageDeflate) {
    let config = DeflateConfig::default();
    (
        PerMessageDeflate::new(Side::Client, params, &config),
        PerMessageDeflate::new(Side::Server, params, &config),
    )
}

fn compress(deflate: &mut PerMessageDeflate, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    deflate.compress(payload, &mut out);
    out.to_vec()
}

fn decompress(deflate: &mut PerMessageDeflate, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
    let mut out = BytesMut::new();
    deflate.decompress(payload, true, &mut out, usize::MAX)?;
    Ok(out.to_vec())
}

/// A deterministic pseudo-random generator (xorshift), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Text made of a small vocabulary: compressible, but not trivially.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "sockjet ",
            "frame ",
            "deflate ",
            "window ",
            "{\"id\":",
            "42, ",
            "\"name\": ",
            "message ",
            "RFC 7692 ",
            "context ",
            "takeover\n",
            "zlib ",
        ];
        let mut text = Vec::with_capacity(len + 16);
        while text.len() < len {
            text.extend_from_slice(WORDS[self.below(WORDS.len())].as_bytes());
        }
        text.truncate(len);
        text
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The payload of a message whose inflated size is `mib` MiB of zeros: one sync-flushed
/// chunk of zeros, then the same chunk of back-references over and over. About 1 KiB per
/// MiB, built without compressing gigabytes.
fn zeros_bomb(mib: usize) -> Vec<u8> {
    let mut compressor = pair(DeflateParams::default()).1;
    let zeros = vec![0u8; 1 << 20];
    let first = compress(&mut compressor, &zeros);
    let next = compress(&mut compressor, &zeros);
    let mut bomb = first;
    for _ in 1..mib {
        bomb.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        bomb.extend_from_slice(&next);
    }
    bomb
}

// ---------------------------------------------------------------------------------------
// Negotiation, server side.

fn server_answer(config: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
    config
        .server_negotiate(offers)
        .expect("server_negotiate never fails")
}

#[test]
fn server_declines_offers_with_invalid_window_bits() {
    let config = DeflateConfig::default();
    for value in [
        "7", "16", "abc", "08", "0", "-9", "+9", "9.0", "\"\"", "\"16\"", "1 0",
    ] {
        for name in ["server_max_window_bits", "client_max_window_bits"] {
            let offer = format!("permessage-deflate; {name}={value}");
            assert_eq!(server_answer(&config, &[&offer]), None, "{offer}");
        }
    }
    // server_max_window_bits needs a value; client_max_window_bits may go without.
    assert_eq!(
        server_answer(&config, &["permessage-deflate; server_max_window_bits"]),
        None
    );
    assert!(server_answer(&config, &["permessage-deflate; client_max_window_bits"]).is_some());
}

#[test]
fn server_accepts_quoted_values() {
    let (params, response) = server_answer(
        &DeflateConfig::default(),
        &["permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits=\"9\""],
    )
    .unwrap();
    assert_eq!(params, self::params(false, false, 10, 9));
    assert_eq!(
        response,
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"
    );
}

#[test]
fn server_declines_offers_with_values_on_flags_repeats_or_unknown_parameters() {
    let config = DeflateConfig::default();
    for offer in [
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"x\"",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; CLIENT_NO_CONTEXT_TAKEOVER",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; foo",
        "permessage-deflate; mux=1",
        "permessage-deflate; server_max_window_bits=10 x",
        "permessage-deflate;",
    ] {
        assert_eq!(server_answer(&config, &[offer]), None, "{offer}");
    }
}

#[test]
fn server_picks_the_first_acceptable_offer_in_one_header() {
    let config = DeflateConfig::default();
    let (params, response) = server_answer(
        &config,
        &["permessage-deflate; server_max_window_bits=7, \
           permessage-deflate; client_no_context_takeover; server_max_window_bits=9, \
           permessage-deflate"],
    )
    .unwrap();
    assert_eq!(params, self::params(false, true, 9, 15));
    assert_eq!(
        response,
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"
    );
}

#[test]
fn server_picks_the_first_acceptable_offer_across_headers() {
    let config = DeflateConfig::default();
    let (params, _) = server_answer(
        &config,
        &[
            "x-webkit-deflate-frame",
            "permessage-deflate; foo=bar",
            "bar; baz=\"a,b\", permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=8",
        ],
    )
    .unwrap();
    assert_eq!(params, self::params(true, false, 12, 15));
}

#[test]
fn server_ignores_other_extensions_and_malformed_elements() {
    let config = DeflateConfig::default();
    assert_eq!(server_answer(&config, &[]), None);
    assert_eq!(server_answer(&config, &[""]), None);
    assert_eq!(server_answer(&config, &["foo, bar; baz=1"]), None);
    assert_eq!(server_answer(&config, &["permessage-deflatex"]), None);
    assert!(server_answer(&config, &["é, \"x, y\", ;;, Permessage-Deflate"]).is_some());
    // An unterminated quoted-string runs to the end of the line.
    assert!(server_answer(&config, &["x; y=\"z, permessage-deflate"]).is_none());
}

#[test]
fn server_window_bits_answer_is_the_smaller_of_offer_and_configuration() {
    for configured in [None, Some(8), Some(12), Some(15)] {
        let config = DeflateConfig::default().server_max_window_bits(configured);
        let limit = configured.unwrap_or(12);
        for asked in 8..=15u8 {
            let offer = format!("permessage-deflate; server_max_window_bits={asked}");
            let (params, response) = server_answer(&config, &[&offer]).unwrap();
            let expected = asked.min(limit);
            assert_eq!(params.server_max_window_bits, expected);
            assert_eq!(
                response,
                format!("permessage-deflate; server_max_window_bits={expected}")
            );
        }
        let (params, response) = server_answer(&config, &["permessage-deflate"]).unwrap();
        assert_eq!(params.server_max_window_bits, limit);
        // Not asked for: answered only as a hint that the window is smaller than 15.
        assert_eq!(response.contains("server_max_window_bits"), limit < 15);
    }
}

#[test]
fn server_never_answers_client_max_window_bits_unless_offered() {
    let config = DeflateConfig::default().client_max_window_bits(Some(9));
    let (params, response) = server_answer(&config, &["permessage-deflate"]).unwrap();
    assert_eq!(params.client_max_window_bits, 15);
    assert!(!response.contains("client_max_window_bits"), "{response}");
    let (params, response) =
        server_answer(&config, &["permessage-deflate; client_max_window_bits"]).unwrap();
    assert_eq!(params.client_max_window_bits, 9);
    assert!(
        response.ends_with("; client_max_window_bits=9"),
        "{response}"
    );
}

// ---------------------------------------------------------------------------------------
// Negotiation, client side.

fn rejected(config: &DeflateConfig, response: &[&str]) -> String {
    match config.client_accept(response) {
        Err(HandshakeError::UnexpectedNegotiation(why)) => why,
        other => panic!("{response:?} gave {other:?}"),
    }
}

#[test]
fn client_offer_lists_the_configured_parameters() {
    let config = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(Some(10))
        .client_max_window_bits(Some(12));
    assert_eq!(
        config.client_offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=12"
    );
}

#[test]
fn client_rejects_invalid_responses() {
    let config = DeflateConfig::default();
    for response in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=16",
        // Valueless only in offers (RFC 7692 §7.1.2.2).
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; foo",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; server_max_window_bits=\"x",
        "x-webkit-deflate-frame",
        "permessage-deflate, x-webkit-deflate-frame",
        "",
        " , ",
    ] {
        rejected(&config, &[response]);
    }
    // Twice, across header lines.
    rejected(&config, &["permessage-deflate", "permessage-deflate"]);
    rejected(&config, &[]);
}

#[test]
fn client_rejects_responses_that_ignore_what_it_asked_for() {
    let asking = DeflateConfig::default()
        .server_no_context_takeover(true)
        .server_max_window_bits(Some(10))
        .client_max_window_bits(Some(11));
    let ok = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
    assert_eq!(
        asking.client_accept(&[ok]).unwrap(),
        params(true, false, 10, 11)
    );
    for response in [
        "permessage-deflate; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
         client_max_window_bits=12",
    ] {
        rejected(&asking, &[response]);
    }
}

#[test]
fn client_accepts_what_the_server_may_choose() {
    let config = DeflateConfig::default();
    let cases = [
        ("permessage-deflate", params(false, false, 15, 15)),
        ("PERMESSAGE-DEFLATE", params(false, false, 15, 15)),
        (
            "permessage-deflate; server_no_context_takeover",
            params(true, false, 15, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            params(false, true, 15, 15),
        ),
        (
            "permessage-deflate; server_max_window_bits=8",
            params(false, false, 8, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=\"9\"",
            params(false, false, 15, 9),
        ),
        (
            " , permessage-deflate ; server_max_window_bits = 12 , ",
            params(false, false, 12, 15),
        ),
    ];
    for (response, expected) in cases {
        assert_eq!(
            config.client_accept(&[response]),
            Ok(expected),
            "{response}"
        );
    }
    // A client that offered client_no_context_takeover keeps to it, granted or not.
    let config = DeflateConfig::default().client_no_context_takeover(true);
    assert_eq!(
        config.client_accept(&["permessage-deflate"]),
        Ok(params(false, true, 15, 15))
    );
    // One that offered a window uses it unless the server answers a smaller one.
    let config = DeflateConfig::default().client_max_window_bits(Some(10));
    assert_eq!(
        config.client_accept(&["permessage-deflate"]),
        Ok(params(false, false, 15, 10))
    );
    assert_eq!(
        config.client_accept(&["permessage-deflate; client_max_window_bits=9"]),
        Ok(params(false, false, 15, 9))
    );
}

#[test]
fn both_sides_agree_on_the_parameters() {
    let flags = [false, true];
    let windows = [None, Some(8), Some(10), Some(15)];
    for &snct in &flags {
        for &cnct in &flags {
            for &server_bits in &windows {
                for &client_bits in &windows {
                    let client = DeflateConfig::default()
                        .server_no_context_takeover(snct)
                        .client_no_context_takeover(cnct)
                        .server_max_window_bits(server_bits)
                        .client_max_window_bits(client_bits);
                    for server in [
                        DeflateConfig::default(),
                        client.clone(),
                        DeflateConfig::default()
                            .server_no_context_takeover(true)
                            .client_max_window_bits(Some(9)),
                    ] {
                        let offer = client.client_offer();
                        let (server_params, response) =
                            server_answer(&server, &[&offer]).expect("valid offer accepted");
                        let client_params = client.client_accept(&[&response]).unwrap();
                        assert_eq!(client_params, server_params, "{offer} -> {response}");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// RFC 7692 §7.2.3's examples.

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc_7_2_3_1_hello_without_context_takeover() {
    for side in [Side::Client, Side::Server] {
        let mut deflate =
            PerMessageDeflate::new(side, params(true, true, 15, 15), &DeflateConfig::default());
        for _ in 0..3 {
            assert_eq!(compress(&mut deflate, b"Hello"), HELLO);
            assert_eq!(decompress(&mut deflate, &HELLO).unwrap(), b"Hello");
        }
    }
}

#[test]
fn rfc_7_2_3_2_sharing_the_window() {
    let (mut client, mut server) = pair(DeflateParams::default());
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    assert_eq!(
        compress(&mut server, b"Hello"),
        [0xf2, 0x00, 0x11, 0x00, 0x00]
    );
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
    assert_eq!(
        decompress(&mut client, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7_2_3_3_stored_block() {
    let (mut client, _) = pair(DeflateParams::default());
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(decompress(&mut client, &stored).unwrap(), b"Hello");
    assert_eq!(decompress(&mut client, &stored).unwrap(), b"Hello");
}

#[test]
fn rfc_7_2_3_4_bfinal_ends_the_stream_and_the_next_message_starts_anew() {
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    // With context takeover too: the peer's stream ended, so its next one is new.
    let (mut client, _) = pair(DeflateParams::default());
    for _ in 0..3 {
        assert_eq!(decompress(&mut client, &bfinal).unwrap(), b"Hello");
        assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
    }
    // Split after the final block: the rest of the message is ignored.
    let mut out = BytesMut::new();
    client
        .decompress(&bfinal[..6], false, &mut out, 100)
        .unwrap();
    client
        .decompress(&[0x00, 0x12, 0x34], false, &mut out, 100)
        .unwrap();
    client.decompress(&[], true, &mut out, 100).unwrap();
    assert_eq!(&out[..], b"Hello");
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
}

#[test]
fn rfc_7_2_3_5_two_blocks_in_one_message() {
    let (mut client, _) = pair(DeflateParams::default());
    let two_blocks = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(decompress(&mut client, &two_blocks).unwrap(), b"Hello");
}

#[test]
fn empty_messages_compress_to_an_empty_stored_block_header() {
    for takeover in [false, true] {
        let (mut client, mut server) = pair(params(!takeover, !takeover, 15, 15));
        for message in [&b""[..], b"", b"Hello", b"", b"Hello", b""] {
            let wire = compress(&mut server, message);
            if message.is_empty() {
                // RFC 7692 §7.2.1: an empty stored block, less its last 4 octets.
                assert_eq!(wire, [0x00]);
            }
            assert_eq!(decompress(&mut client, &wire).unwrap(), message);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Round trips.

/// Sends `count` messages each way through a pair with `params`, checking every one.
fn round_trips(params: DeflateParams, rng: &mut Rng, count: usize) {
    let (mut client, mut server) = pair(params);
    for i in 0..count {
        let len = [0, 1, 5, 100, 300, 1000, 5000, 20_000, 70_000][rng.below(9)];
        let message = if i % 5 == 4 {
            rng.bytes(len)
        } else {
            rng.text(len)
        };
        let wire = compress(&mut client, &message);
        assert_eq!(
            decompress(&mut server, &wire).unwrap(),
            message,
            "client to server, {params:?}, message {i}"
        );
        let wire = compress(&mut server, &message);
        assert_eq!(
            decompress(&mut client, &wire).unwrap(),
            message,
            "server to client, {params:?}, message {i}"
        );
    }
}

#[test]
fn round_trips_with_every_window_size_and_takeover() {
    let mut rng = Rng(0x5eed);
    for bits in 8..=15 {
        for no_takeover in [false, true] {
            // Each direction with its own window and takeover, the other one different.
            round_trips(
                params(no_takeover, !no_takeover, bits, 23 - bits),
                &mut rng,
                12,
            );
        }
    }
}

#[test]
fn round_trips_with_every_compression_level_and_mem_level() {
    let mut rng = Rng(7);
    for level in 0..=9 {
        // Both compressors: C zlib below 8, zlib-rs from 8 on.
        for mem_level in [1, 5, 7, 8, 9] {
            let config = DeflateConfig::default()
                .compression_level(level)
                .mem_level(mem_level);
            let params = params(false, false, 9 + (level % 7) as u8, 15);
            let mut server = PerMessageDeflate::new(Side::Server, params, &config);
            let mut client = PerMessageDeflate::new(Side::Client, params, &config);
            for _ in 0..4 {
                let message = {
                    let len = rng.below(40_000);
                    rng.text(len)
                };
                let wire = compress(&mut server, &message);
                assert_eq!(decompress(&mut client, &wire).unwrap(), message);
            }
        }
    }
}

#[test]
fn context_takeover_shrinks_a_repeated_message_and_no_takeover_does_not() {
    let mut rng = Rng(99);
    // Shorter than the smallest window zlib really uses (9 bits, with matches up to 250
    // bytes back), so that every window size can refer to the previous copy.
    let message = rng.text(200);
    for bits in 8..=15 {
        let (_, mut server) = pair(params(false, false, bits, 15));
        let first = compress(&mut server, &message);
        let second = compress(&mut server, &message);
        assert!(
            second.len() * 4 < first.len(),
            "{bits} bits: {} then {} bytes",
            first.len(),
            second.len()
        );
        let (_, mut server) = pair(params(true, false, bits, 15));
        assert_eq!(
            compress(&mut server, &message),
            compress(&mut server, &message)
        );
    }
}

#[test]
fn no_context_takeover_messages_decode_on_a_fresh_decompressor() {
    let mut rng = Rng(3);
    let (mut client, mut server) = pair(params(true, false, 11, 15));
    for _ in 0..5 {
        let message = rng.text(3000);
        let wire = compress(&mut server, &message);
        assert_eq!(decompress(&mut client, &wire).unwrap(), message);
        let (mut fresh, _) = pair(params(true, false, 11, 15));
        assert_eq!(decompress(&mut fresh, &wire).unwrap(), message);
    }
}

#[test]
fn frames_split_anywhere_decode_the_same() {
    let mut rng = Rng(11);
    let (_, mut server) = pair(DeflateParams::default());
    // Every split point of two messages (the second one refers to the first), as two
    // frames and an empty third.
    let message = rng.text(300);
    let wires = [
        compress(&mut server, &message),
        compress(&mut server, &message),
    ];
    for split in 0..=wires[0].len() {
        let (mut client, _) = pair(DeflateParams::default());
        for wire in &wires {
            let (a, b) = wire.split_at(split.min(wire.len()));
            let mut out = BytesMut::new();
            client.decompress(a, false, &mut out, usize::MAX).unwrap();
            client.decompress(b, false, &mut out, usize::MAX).unwrap();
            client.decompress(&[], true, &mut out, usize::MAX).unwrap();
            assert_eq!(&out[..], &message[..], "split at {split}");
        }
    }
    let (mut client, mut server) = pair(DeflateParams::default());
    // Big messages in random pieces, with context takeover across them.
    for _ in 0..10 {
        let message = {
            let len = rng.below(200_000);
            rng.text(len)
        };
        let wire = compress(&mut server, &message);
        let mut out = BytesMut::new();
        let mut rest = &wire[..];
        loop {
            let take = rng.below(rest.len().min(5000) + 1);
            let (piece, tail) = rest.split_at(take);
            rest = tail;
            let fin = rest.is_empty() && rng.below(2) == 0;
            client.decompress(piece, fin, &mut out, usize::MAX).unwrap();
            if fin {
                break;
            }
            if rest.is_empty() {
                client.decompress(&[], true, &mut out, usize::MAX).unwrap();
                break;
            }
        }
        assert_eq!(&out[..], &message[..]);
    }
}

// ---------------------------------------------------------------------------------------
// Limits and corrupt data.

#[test]
fn a_message_exactly_at_the_limit_inflates() {
    let (mut client, mut server) = pair(DeflateParams::default());
    let zeros = vec![0u8; 1 << 20];
    let wire = compress(&mut server, &zeros);
    assert!(wire.len() < 2048, "{} bytes", wire.len());
    let mut out = BytesMut::new();
    client.decompress(&wire, true, &mut out, 1 << 20).unwrap();
    assert_eq!(out.len(), 1 << 20);
    assert!(out.iter().all(|&byte| byte == 0));
    // And one byte under the limit is too big.
    let (mut client, mut server) = pair(DeflateParams::default());
    let wire = compress(&mut server, &zeros);
    let mut out = BytesMut::new();
    let limit = (1 << 20) - 1;
    assert_eq!(
        client.decompress(&wire, true, &mut out, limit),
        Err(InflateError::TooBig)
    );
    assert!(out.len() <= limit);
}

#[test]
fn the_limit_counts_what_earlier_frames_inflated() {
    let (mut client, mut server) = pair(DeflateParams::default());
    let wire = compress(&mut server, &vec![b'a'; 1000]);
    let (a, b) = wire.split_at(wire.len() / 2);
    let mut out = BytesMut::from(&b"already here"[..]);
    client.decompress(a, false, &mut out, 1000).unwrap();
    assert_eq!(
        client.decompress(b, true, &mut out, 1000),
        Err(InflateError::TooBig)
    );
    assert_eq!(out.len(), 1000);
}

#[test]
fn a_bomb_stops_at_the_limit_without_allocating_its_size() {
    // A 1 GiB message in about 1 MiB of payload: one frame.
    let bomb = zeros_bomb(1024);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let (mut client, _) = pair(DeflateParams::default());
    let limit = 1 << 20;
    let mut out = BytesMut::new();
    let before = reset_peak();
    let result = client.decompress(&bomb, true, &mut out, limit);
    let peak = peak() - before;
    assert_eq!(result, Err(InflateError::TooBig));
    assert!(out.len() <= limit, "{} bytes out", out.len());
    // The decompressor's state, plus `out` growing by doubling up to the limit.
    assert!(peak < 2 * limit as isize + 256 * 1024, "peak {peak} bytes");
    eprintln!("1 GiB bomb, 1 MiB limit: peak {peak} bytes allocated");
}

#[test]
fn a_bomb_split_in_frames_stops_at_the_limit() {
    let bomb = zeros_bomb(100);
    let (mut client, _) = pair(DeflateParams::default());
    let limit = 1 << 20;
    let mut out = BytesMut::new();
    let mut result = Ok(());
    for piece in bomb.chunks(100) {
        result = client.decompress(piece, false, &mut out, limit);
        assert!(out.len() <= limit);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(InflateError::TooBig));
}

#[test]
fn a_bomb_under_a_generous_limit_inflates_whole() {
    let bomb = zeros_bomb(3);
    let (mut client, _) = pair(DeflateParams::default());
    let mut out = BytesMut::new();
    client.decompress(&bomb, true, &mut out, 3 << 20).unwrap();
    assert_eq!(out.len(), 3 << 20);
}

#[test]
fn corrupt_data_is_an_error() {
    for corrupt in [
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        &[0xff, 0xff, 0xff, 0xff][..],
        &[0x07],
        // A stored block whose NLEN is not the complement of LEN.
        &[0x00, 0x05, 0x00, 0x00, 0x00, b'H', b'e', b'l', b'l', b'o'],
        // A fixed-Huffman block whose first code is a match (length 3, distance 1),
        // with nothing before it to copy.
        &[0x03, 0x02, 0x00],
    ] {
        let (mut client, _) = pair(DeflateParams::default());
        assert_eq!(
            decompress(&mut client, corrupt),
            Err(InflateError::Corrupt),
            "{corrupt:02x?}"
        );
    }
    // Garbage after valid messages.
    let mut rng = Rng(5);
    let (mut client, mut server) = pair(DeflateParams::default());
    let message = rng.text(1000);
    let wire = compress(&mut server, &message);
    assert_eq!(decompress(&mut client, &wire).unwrap(), message);
    let mut errors = 0;
    for _ in 0..20 {
        let (mut client, _) = pair(DeflateParams::default());
        let garbage = rng.bytes(200);
        match decompress(&mut client, &garbage) {
            Err(InflateError::Corrupt) => errors += 1,
            Ok(_) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        errors > 10,
        "only {errors} of 20 random payloads were corrupt"
    );
}

// ---------------------------------------------------------------------------------------
// Memory per connection.

/// Bytes a compressor and a decompressor with `params` and `config` keep allocated once
/// they have handled one message each, on the server side.
fn memory(params: DeflateParams, config: &DeflateConfig) -> (isize, isize) {
    let message = Rng(1).text(1000);
    let mut wire = BytesMut::with_capacity(4096);
    let mut inflated = BytesMut::with_capacity(4096);
    let mut deflate = PerMessageDeflate::new(Side::Server, params, config);
    let start = live();
    deflate.compress(&message, &mut wire);
    let compressor = live() - start;
    let start = live();
    // The server's decompressor takes the client's messages; its window does not matter
    // to zlib-rs, which always allocates 32 KiB.
    deflate
        .decompress(&HELLO, true, &mut inflated, usize::MAX)
        .unwrap();
    let decompressor = live() - start;
    drop(deflate);
    (compressor, decompressor)
}

#[test]
fn memory_per_connection() {
    let mut table = String::from("bits mem_level  compressor decompressor\n");
    for bits in 8..=15 {
        for mem_level in [1, 5, 8, 9] {
            let config = DeflateConfig::default().mem_level(mem_level);
            let (compressor, decompressor) = memory(params(false, false, bits, bits), &config);
            table.push_str(&format!(
                "{bits:>4} {mem_level:>9} {compressor:>11} {decompressor:>12}\n"
            ));
        }
    }
    eprintln!("{table}");
    // The defaults of a server: 12 bits, mem_level 5.
    let (compressor, decompressor) =
        memory(params(false, false, 12, 15), &DeflateConfig::default());
    // C zlib at memLevel 5: 8 KiB each of window pairs, hash heads, chain links and
    // symbols (zlib-rs took 161 KiB, its hash table alone 128 KiB).
    assert!(compressor < 40 * 1024, "compressor {compressor} bytes");
    assert!(
        decompressor < 48 * 1024,
        "decompressor {decompressor} bytes"
    );
    // Nothing before the first message.
    let start = live();
    let deflate = PerMessageDeflate::new(
        Side::Server,
        DeflateParams::default(),
        &DeflateConfig::default(),
    );
    assert_eq!(live() - start, 0);
    drop(deflate);
}

#[test]
fn memory_stays_flat_over_many_messages() {
    let mut rng = Rng(77);
    for no_takeover in [false, true] {
        let (mut client, mut server) = pair(params(no_takeover, no_takeover, 12, 12));
        let mut wire = BytesMut::with_capacity(1 << 20);
        let mut out = BytesMut::with_capacity(1 << 20);
        let mut warm = 0;
        for i in 0..200 {
            if i == 10 {
                warm = live();
            }
            wire.clear();
            out.clear();
            let message = {
                let len = rng.below(20_000);
                rng.text(len)
            };
            server.compress(&message, &mut wire);
            client
                .decompress(&wire, true, &mut out, usize::MAX)
                .unwrap();
            assert_eq!(&out[..], &message[..]);
        }
        assert_eq!(live(), warm, "no_context_takeover {no_takeover}");
    }
}
