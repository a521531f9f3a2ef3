//! Property tests: the frame header codec round-trips, the parser's output does not depend
//! on how the input is split into reads (valid and invalid input alike), the incremental
//! UTF-8 validator agrees with `std`, and masking agrees with a naive XOR.

mod common;

use common::*;
use proptest::{collection::vec, prelude::*, sample::Index};
use sockjet_proto::{
    Bytes, Config, Event, Message, Protocol, ProtocolError, Side, State,
    frame::{
        FrameHeader, OpCode,
        mask::{apply_mask, apply_mask_at},
    },
    utf8::Utf8Validator,
};

// ----- (a) frame header round trip -----

fn arb_opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

/// Payload lengths, weighted towards the boundaries of the three encodings.
fn arb_payload_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=125u64,
        126..=0xFFFFu64,
        0x1_0000..=(u64::MAX >> 1),
        prop::sample::select(vec![
            0,
            125,
            126,
            127,
            0xFFFF,
            0x1_0000,
            u64::from(u32::MAX),
            u64::MAX >> 1
        ]),
    ]
}

fn arb_header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<bool>(),
        0u8..8,
        arb_opcode(),
        proptest::option::of(any::<[u8; 4]>()),
        arb_payload_len(),
    )
        .prop_map(|(fin, rsv, opcode, mask, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        })
}

fn expected_header_len(header: &FrameHeader) -> usize {
    let len = match header.payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    len + if header.mask.is_some() { 4 } else { 0 }
}

proptest! {
    #[test]
    fn frame_header_round_trips(header in arb_header(), trailing in vec(any::<u8>(), 0..16)) {
        let mut wire = Vec::new();
        header.encode(&mut wire);
        let len = wire.len();
        prop_assert_eq!(len, expected_header_len(&header));
        let mut array = [0u8; FrameHeader::MAX_LEN];
        prop_assert_eq!(header.encode_to_array(&mut array), len);
        prop_assert_eq!(&array[..len], &wire[..]);
        // What follows the header (the payload) does not change it.
        wire.extend(trailing);
        prop_assert_eq!(FrameHeader::decode(&wire), Ok(Some((header, len))));
        for cut in 0..len {
            prop_assert_eq!(FrameHeader::decode(&wire[..cut]), Ok(None));
        }
    }

    #[test]
    fn decoded_header_re_encodes_to_equal_header(bytes in vec(any::<u8>(), 0..16)) {
        if let Ok(Some((header, len))) = FrameHeader::decode(&bytes) {
            prop_assert!(len <= bytes.len());
            let mut wire = Vec::new();
            header.encode(&mut wire);
            // Non-minimal lengths re-encode shorter, never longer.
            prop_assert!(wire.len() <= len);
            prop_assert_eq!(FrameHeader::decode(&wire), Ok(Some((header, wire.len()))));
        }
    }
}

// ----- (b) valid streams: any split gives the same events -----

/// One thing the sender does.
#[derive(Clone, Debug)]
enum Op {
    Text(String),
    Binary(Vec<u8>, bool),
    /// A message sent with `send_fragment`: its pieces (text may be cut inside code
    /// points), and a ping to send after each piece but the last.
    Fragmented {
        text: bool,
        pieces: Vec<Vec<u8>>,
        pings: Vec<Option<Vec<u8>>>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn control_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=125)
}

fn binary_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..200),
        1 => vec(any::<u8>(), 0..70_000),
    ]
}

/// Positions in `0..=len` picked by `points` (in any order, duplicates allowed).
fn positions(points: &[Index], len: usize) -> Vec<usize> {
    points.iter().map(|i| i.index(len + 1)).collect()
}

/// Cuts `bytes` at `positions` (in any order, duplicates allowed, each at most
/// `bytes.len()`).
fn cut_at(bytes: &[u8], mut positions: Vec<usize>) -> Vec<Vec<u8>> {
    positions.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in positions.into_iter().chain(std::iter::once(bytes.len())) {
        pieces.push(bytes[start..end].to_vec());
        start = end;
    }
    pieces
}

/// Cuts `bytes` at the points picked by `points`.
fn cut(bytes: &[u8], points: &[Index]) -> Vec<Vec<u8>> {
    cut_at(bytes, positions(points, bytes.len()))
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<String>().prop_map(Op::Text),
        3 => (binary_payload(), any::<bool>()).prop_map(|(data, shared)| Op::Binary(data, shared)),
        3 => (
            any::<bool>(),
            prop_oneof![
                any::<String>().prop_map(String::into_bytes),
                vec(any::<u8>(), 0..300)
            ],
            vec(any::<Index>(), 0..6),
            vec(proptest::option::of(control_payload()), 6),
        )
            .prop_map(|(text, bytes, points, pings)| {
                // Binary payloads must stay binary: only valid text becomes a text message.
                let text = text && std::str::from_utf8(&bytes).is_ok();
                let pieces = cut(&bytes, &points);
                // At least a first and a final fragment.
                let pieces = if pieces.len() == 1 {
                    vec![pieces[0].clone(), Vec::new()]
                } else {
                    pieces
                };
                let pings = pings[..pieces.len() - 1].to_vec();
                Op::Fragmented { text, pieces, pings }
            }),
        1 => control_payload().prop_map(Op::Ping),
        1 => control_payload().prop_map(Op::Pong),
    ]
}

/// Sends `ops` from `sender` and returns the bytes and the events the peer should see.
fn encode(sender: &mut Protocol, ops: &[Op]) -> (Vec<u8>, Vec<Event>) {
    let mut expected = Vec::new();
    for op in ops {
        match op {
            Op::Text(text) => {
                sender.send_text(text).unwrap();
                expected.push(Event::Message(Message::text(text.as_str())));
            }
            Op::Binary(data, shared) => {
                if *shared {
                    sender.send_message(Message::binary(data.clone())).unwrap();
                } else {
                    sender.send_binary(data).unwrap();
                }
                expected.push(Event::Message(Message::binary(data.clone())));
            }
            Op::Fragmented {
                text,
                pieces,
                pings,
            } => {
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    sender
                        .send_fragment(opcode, Bytes::from(piece.clone()), i == last)
                        .unwrap();
                    if let Some(Some(ping)) = pings.get(i) {
                        sender.send_ping(ping).unwrap();
                        expected.push(Event::Ping(ping.clone().into()));
                    }
                }
                let all = pieces.concat();
                expected.push(Event::Message(if *text {
                    Message::text(String::from_utf8(all).unwrap())
                } else {
                    Message::binary(all)
                }));
            }
            Op::Ping(payload) => {
                sender.send_ping(payload).unwrap();
                expected.push(Event::Ping(payload.clone().into()));
            }
            Op::Pong(payload) => {
                sender.send_pong(payload).unwrap();
                expected.push(Event::Pong(payload.clone().into()));
            }
        }
    }
    (drain(sender), expected)
}

/// What a receiver did with some input: everything observable.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    close_error: Option<ProtocolError>,
    state: State,
    output: Vec<u8>,
    buffered: usize,
}

/// Feeds `wire` to a fresh receiver in the pieces cut at `positions`, taking events
/// after each piece.
fn receive(side: Side, config: &Config, wire: &[u8], positions: Vec<usize>) -> Outcome {
    let mut receiver = proto_with(side, config.clone());
    let mut events = Vec::new();
    for piece in cut_at(wire, positions) {
        receiver.receive_data(&piece);
        events.extend(common::events(&mut receiver));
    }
    Outcome {
        events,
        close_error: receiver.close_error().cloned(),
        state: receiver.state(),
        output: drain(&mut receiver),
        buffered: receiver.buffered_len(),
    }
}

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Server), Just(Side::Client)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn valid_stream_gives_same_events_at_any_split(
        receiver_side in arb_side(),
        ops in vec(arb_op(), 0..12),
        key in any::<[u8; 4]>(),
        max_send_frame_size in proptest::option::of(1usize..200),
        points in vec(any::<Index>(), 0..40),
    ) {
        let sender_side = peer_of(receiver_side);
        let config = Config::default().max_send_frame_size(max_send_frame_size);
        let mut sender = Protocol::new(sender_side, config).with_mask_keys(FixedKeys(key));
        let (wire, expected) = encode(&mut sender, &ops);
        let config = Config::default();
        let whole = receive(receiver_side, &config, &wire, Vec::new());
        prop_assert_eq!(&whole.events, &expected);
        prop_assert_eq!(&whole.close_error, &None);
        prop_assert_eq!(whole.buffered, 0);
        let split = receive(receiver_side, &config, &wire, positions(&points, wire.len()));
        prop_assert_eq!(&split, &whole);
        // Byte by byte, the most extreme split.
        if wire.len() < 5000 {
            let bytewise = receive(receiver_side, &config, &wire, (0..wire.len()).collect());
            prop_assert_eq!(&bytewise, &whole);
        }
        // The end of the stream right behind the data, before any event is taken: nothing
        // is lost, then the connection is closed (abnormally: no close frame was sent).
        let mut receiver = proto_with(receiver_side, config);
        receiver.receive_data(&wire);
        receiver.receive_eof();
        prop_assert_eq!(&events(&mut receiver), &expected);
        prop_assert_eq!(receiver.state(), State::Closed);
        prop_assert_eq!(receiver.close_error(), Some(&ProtocolError::UnexpectedEof));
    }
}

// ----- (c) invalid streams: any split gives the same events and error -----

/// A frame with arbitrary header bits (any opcode, RSV, mask bit) and a short payload,
/// or plain garbage.
fn arb_chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (any::<u8>(), any::<bool>(), vec(any::<u8>(), 0..40)).prop_map(|(first, mask, payload)| {
            raw_frame(first, mask.then_some(KEY), &payload)
        }),
        // Likely-valid frames with a valid-looking first byte and a UTF-8 payload.
        4 => (
            prop::sample::select(vec![FIN | TEXT, TEXT, FIN | CONT, CONT, FIN | BINARY, FIN | PING, FIN | PONG, FIN | CLOSE]),
            any::<bool>(),
            prop_oneof![any::<String>().prop_map(String::into_bytes), vec(any::<u8>(), 0..10)],
        ).prop_map(|(first, mask, payload)| raw_frame(first, mask.then_some(KEY), &payload)),
        1 => vec(any::<u8>(), 0..40),
    ]
}

fn arb_limits() -> impl Strategy<Value = Config> {
    (
        proptest::option::of(0usize..300),
        proptest::option::of(0usize..300),
    )
        .prop_map(|(message, frame)| {
            Config::default()
                .max_message_size(message)
                .max_frame_size(frame)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_give_same_outcome_at_any_split(
        side in arb_side(),
        wire in vec(any::<u8>(), 0..600),
        points in vec(any::<Index>(), 0..40),
    ) {
        let config = Config::default();
        let whole = receive(side, &config, &wire, Vec::new());
        let split = receive(side, &config, &wire, positions(&points, wire.len()));
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn random_frames_give_same_outcome_at_any_split(
        side in arb_side(),
        chunks in vec(arb_chunk(), 0..20),
        config in prop_oneof![Just(Config::default()), arb_limits()],
        points in vec(any::<Index>(), 0..40),
    ) {
        let wire = chunks.concat();
        let whole = receive(side, &config, &wire, Vec::new());
        let split = receive(side, &config, &wire, positions(&points, wire.len()));
        prop_assert_eq!(&split, &whole);
        // Every failure is reported with the close code that matches it.
        if let Some(error) = &whole.close_error {
            prop_assert_eq!(whole.state, State::Closing);
            let frames = decode_frames(&whole.output);
            let close = frames.last().unwrap();
            prop_assert_eq!(close.header.opcode, OpCode::Close);
            let code = u16::from_be_bytes([close.payload[0], close.payload[1]]);
            prop_assert_eq!(code, sockjet_proto::CloseCode::from(error).as_u16());
        }
    }
}

// ----- (d) UTF-8 validator vs std -----

fn is_valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    }
}

/// Mostly-valid UTF-8 with some damage, and plain random bytes.
fn arb_utf8ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        vec(any::<u8>(), 0..64),
        (any::<String>(), any::<Index>(), any::<u8>()).prop_map(|(text, at, byte)| {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        }),
        (any::<String>(), any::<Index>()).prop_map(|(text, at)| {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len() + 1);
            bytes.truncate(i);
            bytes
        }),
        (
            any::<String>(),
            any::<Index>(),
            prop::sample::select(vec![
                0x80u8, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF
            ])
        )
            .prop_map(|(text, at, byte)| {
                let mut bytes = text.into_bytes();
                let i = at.index(bytes.len() + 1);
                bytes.insert(i, byte);
                bytes
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn utf8_validator_agrees_with_std_at_any_split(
        bytes in arb_utf8ish(),
        points in vec(any::<Index>(), 0..10),
    ) {
        let valid = std::str::from_utf8(&bytes).is_ok();
        prop_assert_eq!(Utf8Validator::validate_complete(&bytes).is_ok(), valid);
        let mut validator = Utf8Validator::default();
        let mut fed = 0;
        let mut failed = false;
        for piece in cut(&bytes, &points) {
            fed += piece.len();
            let result = validator.feed(&piece);
            // Fail fast: an error exactly when the bytes so far cannot start valid UTF-8.
            prop_assert_eq!(result.is_ok(), is_valid_prefix(&bytes[..fed]), "after {} bytes", fed);
            if result.is_err() {
                failed = true;
                break;
            }
        }
        prop_assert_eq!(!failed && validator.is_complete(), valid);
    }
}

// ----- (e) masking vs naive XOR -----

fn naive_mask(bytes: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

proptest! {
    #[test]
    fn apply_mask_at_agrees_with_naive_xor(
        bytes in vec(any::<u8>(), 0..300),
        start in 0usize..40,
        key in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        // Slicing at `start` varies the alignment of the buffer.
        let start = start.min(bytes.len());
        let mut fast = bytes.clone();
        let mut slow = bytes.clone();
        apply_mask_at(&mut fast[start..], key, offset);
        naive_mask(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow);
        let mut whole = bytes.clone();
        apply_mask(&mut whole, key);
        let mut naive = bytes;
        naive_mask(&mut naive, key, 0);
        prop_assert_eq!(whole, naive);
    }

    #[test]
    fn apply_mask_at_in_pieces_equals_whole(
        bytes in vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        points in vec(any::<Index>(), 0..8),
    ) {
        let mut whole = bytes.clone();
        apply_mask(&mut whole, key);
        let mut pieces = Vec::new();
        let mut offset = 0;
        for mut piece in cut(&bytes, &points) {
            apply_mask_at(&mut piece, key, offset);
            offset += piece.len();
            pieces.extend(piece);
        }
        prop_assert_eq!(pieces, whole);
    }
}
