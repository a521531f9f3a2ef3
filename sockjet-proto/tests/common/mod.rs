//! Helpers shared by the behaviour tests: deterministic masking keys, frame builders that
//! do not go through the code under test, and assertions on the closing handshake.
//!
//! Each test file compiles this module separately and uses a different subset of it.
#![allow(dead_code, unreachable_pub)]

use sockjet_proto::{
    CloseCode, Config, Event, MaskKeys, Protocol, ProtocolError, Side, State,
    frame::{FrameHeader, OpCode},
};

/// The masking key of the example in RFC 6455 §5.7.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Upper bound of every "until `None`" loop, so that a bug cannot hang a test.
pub const MAX_EVENTS: usize = 1_000_000;

/// A [`MaskKeys`] that always returns the same key.
#[derive(Clone, Copy, Debug)]
pub struct FixedKeys(pub [u8; 4]);

impl MaskKeys for FixedKeys {
    fn next_key(&mut self) -> [u8; 4] {
        self.0
    }
}

/// A [`MaskKeys`] that returns `[n, n+1, n+2, n+3]` with n = 0, 4, 8, ...: each frame
/// gets a different, predictable key.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingKeys(pub u8);

impl MaskKeys for CountingKeys {
    fn next_key(&mut self) -> [u8; 4] {
        let n = self.0;
        self.0 = self.0.wrapping_add(4);
        [n, n.wrapping_add(1), n.wrapping_add(2), n.wrapping_add(3)]
    }
}

/// A server with the default configuration.
pub fn server() -> Protocol {
    Protocol::new(Side::Server, Config::default())
}

/// A server with `config`.
pub fn server_with(config: Config) -> Protocol {
    Protocol::new(Side::Server, config)
}

/// A client with the default configuration that masks with [`KEY`].
pub fn client() -> Protocol {
    client_with(Config::default())
}

/// A client with `config` that masks with [`KEY`].
pub fn client_with(config: Config) -> Protocol {
    Protocol::new(Side::Client, config).with_mask_keys(FixedKeys(KEY))
}

/// The protocol of the other end: a server for a client, a client for a server.
pub fn peer_of(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

/// A protocol on `side` with the default configuration (clients mask with [`KEY`]).
pub fn proto(side: Side) -> Protocol {
    proto_with(side, Config::default())
}

/// A protocol on `side` with `config` (clients mask with [`KEY`]).
pub fn proto_with(side: Side, config: Config) -> Protocol {
    match side {
        Side::Client => client_with(config),
        Side::Server => server_with(config),
    }
}

/// Opcode values as they appear in the first byte.
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;
/// The FIN bit.
pub const FIN: u8 = 0x80;

/// Encodes a frame by hand (not with the crate's encoder): `first` is the whole first byte
/// (FIN, RSV, opcode), the length uses the shortest encoding, and the payload is masked
/// with `mask` if any.
pub fn raw_frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut wire = vec![first];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    push_len(&mut wire, mask_bit, payload.len() as u64);
    match mask {
        Some(key) => {
            wire.extend_from_slice(&key);
            wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => wire.extend_from_slice(payload),
    }
    wire
}

/// Appends the second byte and the extended length.
pub fn push_len(wire: &mut Vec<u8>, mask_bit: u8, len: u64) {
    match len {
        0..=125 => wire.push(mask_bit | len as u8),
        126..=0xFFFF => {
            wire.push(mask_bit | 126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            wire.push(mask_bit | 127);
            wire.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// A frame as a client sends it: masked with [`KEY`].
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(first, Some(KEY), payload)
}

/// A frame as a server sends it: unmasked.
pub fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(first, None, payload)
}

/// A frame as the peer of `receiver` sends it: masked when the receiver is a server.
pub fn frame_to(receiver: Side, first: u8, payload: &[u8]) -> Vec<u8> {
    match receiver {
        Side::Server => masked(first, payload),
        Side::Client => unmasked(first, payload),
    }
}

/// A frame as `sender` sends it: masked with [`KEY`] by a client.
pub fn frame_from(sender: Side, first: u8, payload: &[u8]) -> Vec<u8> {
    match sender {
        Side::Client => masked(first, payload),
        Side::Server => unmasked(first, payload),
    }
}

/// A close frame body: the code in network order, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Every event available now, in order (bounded by [`MAX_EVENTS`]).
pub fn events(proto: &mut Protocol) -> Vec<Event> {
    let mut all = Vec::new();
    for _ in 0..MAX_EVENTS {
        match proto.next_event() {
            Some(event) => all.push(event),
            None => return all,
        }
    }
    panic!("more than {MAX_EVENTS} events");
}

/// Feeds `data` and returns every event it produces.
pub fn feed(proto: &mut Protocol, data: &[u8]) -> Vec<Event> {
    proto.receive_data(data);
    events(proto)
}

/// Feeds `data` one byte at a time, collecting events after each byte.
pub fn feed_bytewise(proto: &mut Protocol, data: &[u8]) -> Vec<Event> {
    let mut all = Vec::new();
    for byte in data {
        proto.receive_data(std::slice::from_ref(byte));
        all.extend(events(proto));
    }
    all
}

/// Empties `outgoing()` into a vector.
pub fn drain(proto: &mut Protocol) -> Vec<u8> {
    let mut wire = Vec::new();
    proto.outgoing().drain_into(&mut wire);
    wire
}

/// A decoded frame: header and unmasked payload.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Frame {
    pub header: FrameHeader,
    pub payload: Vec<u8>,
}

/// Splits a byte stream into frames with the crate's header decoder, unmasking payloads.
/// Panics on trailing bytes that are not a whole frame.
pub fn decode_frames(mut wire: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let (header, header_len) = FrameHeader::decode(wire)
            .expect("valid header")
            .expect("complete header");
        let end = header_len + header.payload_len as usize;
        assert!(end <= wire.len(), "truncated frame in output");
        let mut payload = wire[header_len..end].to_vec();
        if let Some(key) = header.mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[i % 4];
            }
        }
        frames.push(Frame { header, payload });
        wire = &wire[end..];
    }
    frames
}

/// Drains `outgoing()` and decodes it into frames.
pub fn sent_frames(proto: &mut Protocol) -> Vec<Frame> {
    let wire = drain(proto);
    decode_frames(&wire)
}

/// Asserts that `proto` queued a close frame with `code` as its last output, that the
/// frame is masked exactly when `proto` is a client, that it is recorded as sent, and that
/// the state is `Closing`. Drains `outgoing()`; returns the close reason.
pub fn assert_closing(proto: &mut Protocol, code: CloseCode) -> String {
    let side = proto.side();
    let frames = sent_frames(proto);
    let close = frames.last().expect("a close frame in outgoing()");
    assert_eq!(close.header.opcode, OpCode::Close, "last frame: {frames:?}");
    assert!(close.header.fin);
    assert_eq!(close.header.rsv, 0);
    assert_eq!(close.header.mask.is_some(), side == Side::Client);
    let count = frames
        .iter()
        .filter(|f| f.header.opcode == OpCode::Close)
        .count();
    assert_eq!(count, 1, "exactly one close frame: {frames:?}");
    assert!(close.payload.len() >= 2, "close frame without code");
    assert!(close.payload.len() <= 125);
    let sent = u16::from_be_bytes([close.payload[0], close.payload[1]]);
    assert_eq!(sent, code.as_u16(), "close code sent");
    let reason = String::from_utf8(close.payload[2..].to_vec()).expect("UTF-8 reason");
    assert_eq!(proto.state(), State::Closing);
    let closed = proto.connection_closed();
    let recorded = closed.sent.expect("close frame recorded as sent");
    assert_eq!(recorded.code, code);
    assert_eq!(&*recorded.reason, reason.as_str());
    reason
}

/// Asserts that the connection failed with `error`: no further events, the matching
/// close code on the wire (see [`assert_closing`]), the input discarded, and a server
/// half-closing TCP while a client waits for the server to do it.
pub fn assert_failed(proto: &mut Protocol, error: ProtocolError) {
    assert_eq!(proto.next_event(), None);
    assert_eq!(proto.close_error(), Some(&error));
    let code = CloseCode::from(&error);
    assert_closing(proto, code);
    assert_eq!(proto.buffered_len(), 0, "input discarded after failure");
    assert!(proto.close_expected());
    match proto.side() {
        Side::Server => assert!(proto.eof_to_send(), "the server closes TCP first"),
        Side::Client => assert!(!proto.eof_to_send(), "the client waits for the server"),
    }
    assert_eq!(proto.connection_closed().rcvd, None);
}

/// Both sides, for tests that apply to each.
pub const SIDES: [Side; 2] = [Side::Server, Side::Client];
