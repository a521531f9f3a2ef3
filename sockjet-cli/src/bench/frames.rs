//! Payloads, and the client frames `bench` writes: data frames encoded once per connection
//! and written again and again, and the few control frames it answers with.

use std::sync::{Arc, Mutex};

use sockjet_proto::{
    BytesMut, DeflateConfig, DeflateParams, PerMessageDeflate, Side,
    frame::{FrameHeader, OpCode, mask::apply_mask},
};

/// What kind of messages to send.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum PayloadKind {
    /// JSON-like text, which compresses like real application messages.
    Text,
    /// Pseudo-random bytes, which hardly compress.
    Binary,
}

impl PayloadKind {
    /// The name used in the summary and the JSON report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Binary => "binary",
        }
    }
}

/// Payload variant 0, the one a run without compression sends.
#[cfg(test)]
pub(crate) fn payload(kind: PayloadKind, size: usize) -> Vec<u8> {
    payload_variant(kind, size, 0)
}

/// Largest deflate window (RFC 7692: 2^15 bytes), plus a margin for the longest match.
const LARGEST_WINDOW: usize = (32 + 8) * 1024;

/// Most payload variants a run cycles through.
const MAX_VARIANTS: usize = 64;

/// With permessage-deflate, variants enough to fill this many bytes (up to
/// [`MAX_VARIANTS`]): each connection starts at its own (see
/// [`EncodedMessage::start_for`]), so that connections are not in step.
const DEPHASED_BYTES: usize = 256 * 1024;

/// How many different payloads of `size` bytes a run with permessage-deflate cycles
/// through, up to [`MAX_VARIANTS`]: enough that none repeats within the largest deflate
/// window, so that a server compressing with context takeover cannot encode each echo as
/// one long match against the previous message, which real traffic would not allow; and
/// enough to fill [`DEPHASED_BYTES`], so that connections starting at different ones send
/// different messages at any moment. Were they in step, a server would compress the same
/// bytes after the same history for every connection in a row, which a CPU's branch
/// predictors learn: C zlib measured twice as fast that way as on varied traffic.
/// Without compression, one.
pub(crate) fn variants_for(size: usize, compression: bool) -> usize {
    if !compression || size == 0 {
        return 1;
    }
    LARGEST_WINDOW
        .div_ceil(size)
        .max(DEPHASED_BYTES / size)
        .clamp(1, MAX_VARIANTS)
}

/// Variant number `index` of the payload of a run: `size` bytes of `kind`. Variant 0
/// is the payload of every message without compression; the others have the same kind
/// and size, and other content (other numbers in the text records).
///
/// Text is a run of records like `{"id":123,"symbol":"S45","price":12.34,"qty":56},`
/// with varying numbers, cut to `size` bytes. It is all ASCII, so any cut is valid UTF-8.
/// Binary is xorshift output: deterministic, so two runs send the same bytes.
pub(crate) fn payload_variant(kind: PayloadKind, size: usize, index: usize) -> Vec<u8> {
    let seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    // Xorshift must not start from zero.
    let mut random = XorShift(if seed == 0 { 1 } else { seed });
    let mut payload = Vec::with_capacity(size + 64);
    match kind {
        PayloadKind::Text => {
            while payload.len() < size {
                let id = random.below(100_000);
                let symbol = random.below(100);
                let cents = random.below(100_000);
                let qty = random.below(1_000);
                let record = format!(
                    r#"{{"id":{id},"symbol":"S{symbol}","price":{}.{:02},"qty":{qty}}},"#,
                    cents / 100,
                    cents % 100
                );
                payload.extend_from_slice(record.as_bytes());
            }
        }
        PayloadKind::Binary => {
            while payload.len() < size {
                payload.extend_from_slice(&random.next().to_le_bytes());
            }
        }
    }
    payload.truncate(size);
    payload
}

/// A small deterministic generator; payloads need variety, not unpredictability.
struct XorShift(u64);

impl XorShift {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Encodes one client frame: header, mask key, masked payload.
pub(crate) fn encode_frame(
    opcode: OpCode,
    compressed: bool,
    payload: &[u8],
    mask: [u8; 4],
) -> Vec<u8> {
    let header = FrameHeader {
        fin: true,
        // RSV1 marks a compressed message (RFC 7692 §6).
        rsv: if compressed { 0b100 } else { 0 },
        opcode,
        mask: Some(mask),
        payload_len: payload.len() as u64,
    };
    let mut frame = Vec::with_capacity(FrameHeader::MAX_LEN + payload.len());
    header.encode(&mut frame);
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], mask);
    frame
}

/// A close frame with `code` and no reason.
pub(crate) fn close_frame(code: u16, mask: [u8; 4]) -> Vec<u8> {
    encode_frame(OpCode::Close, false, &code.to_be_bytes(), mask)
}

/// The pong answering a ping with `payload`.
pub(crate) fn pong_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    encode_frame(OpCode::Pong, false, payload, mask)
}

/// Largest batch of frames kept per message: with big messages the batch holds a single
/// cycle of variants, and writes go round it.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The messages of a run, each encoded once as a complete masked frame: one frame per
/// payload variant (most often a single one), sent in turn, and the cycle of them
/// repeated to fill a batch so that many messages go out in one write.
///
/// Every frame reuses the same masking key, and connections that negotiated alike share
/// one encoding. RFC 6455 §5.3 wants a fresh key per frame so that a hostile page cannot
/// choose the bytes on the wire to poison a proxy cache; a load tool sends its own fixed
/// payloads, and encoding once is what keeps it from being the bottleneck.
#[derive(Clone, Debug)]
pub(crate) struct EncodedMessage {
    /// Whole cycles of the frames, back to back.
    batch: Vec<u8>,
    /// The end of each frame in `batch` (so frame `i` starts at `ends[i - 1]`, or 0).
    ends: Vec<usize>,
}

impl EncodedMessage {
    /// Encodes each of `payloads` once, compressed with `deflate` when given, and repeats
    /// the cycle of them in a batch of about `copies` frames (at least one cycle).
    pub(crate) fn new(
        kind: PayloadKind,
        payloads: &[Vec<u8>],
        deflate: Option<&Compression>,
        mask: [u8; 4],
        copies: usize,
    ) -> Self {
        let opcode = match kind {
            PayloadKind::Text => OpCode::Text,
            PayloadKind::Binary => OpCode::Binary,
        };
        let mut cycle = Vec::new();
        let mut cycle_ends = Vec::with_capacity(payloads.len().max(1));
        let empty = [Vec::new()];
        let payloads = if payloads.is_empty() {
            &empty[..]
        } else {
            payloads
        };
        for payload in payloads {
            let frame = match deflate {
                Some(compression) => {
                    let compressed = compression.compress(payload);
                    encode_frame(opcode, true, &compressed, mask)
                }
                None => encode_frame(opcode, false, payload, mask),
            };
            cycle.extend_from_slice(&frame);
            cycle_ends.push(cycle.len());
        }
        let per_cycle = cycle_ends.len();
        let wanted = copies.max(1).div_ceil(per_cycle);
        let cycles = wanted.clamp(1, (MAX_BATCH_BYTES / cycle.len().max(1)).max(1));
        let mut ends = Vec::with_capacity(cycles * per_cycle);
        for round in 0..cycles {
            ends.extend(cycle_ends.iter().map(|end| round * cycle.len() + end));
        }
        Self {
            batch: cycle.repeat(cycles),
            ends,
        }
    }

    /// The frame connection number `connection` starts with: each its own variant, as
    /// far as there are variants, so that connections are not in step.
    pub(crate) fn start_for(&self, connection: usize) -> usize {
        connection % self.frames()
    }

    /// Frames in the batch.
    pub(crate) fn frames(&self) -> usize {
        self.ends.len()
    }

    /// Where frame `index` of the batch starts.
    pub(crate) fn frame_start(&self, index: usize) -> usize {
        match index {
            0 => 0,
            _ => self.ends[index - 1],
        }
    }

    /// Length of frame `index` of the batch on the wire.
    #[cfg(test)]
    pub(crate) fn frame_len(&self, index: usize) -> usize {
        self.ends[index] - self.frame_start(index)
    }

    /// The bytes of at most `count` whole frames from frame `first` on, skipping the
    /// `offset` bytes of the first already written; they stop at the end of the batch.
    /// A slice of the batch, so that any write starts without copying.
    pub(crate) fn frames_from(&self, first: usize, offset: usize, count: usize) -> &[u8] {
        let last = first.saturating_add(count).min(self.frames());
        let end = if last > first { self.ends[last - 1] } else { 0 };
        let start = (self.frame_start(first) + offset).min(end);
        &self.batch[start..end]
    }

    /// After `written` more bytes from frame `first` (of which `offset` bytes had been
    /// written already): how many frames were completed, and the frame and offset to go
    /// on from (back to frame 0 at the end of the batch).
    pub(crate) fn advance(
        &self,
        first: usize,
        offset: usize,
        written: usize,
    ) -> (usize, usize, usize) {
        let position = self.frame_start(first) + offset + written;
        // Frames whose end is at or before `position` are complete.
        let next = self.ends.partition_point(|&end| end <= position);
        let completed = next - first;
        if next >= self.frames() {
            (completed, 0, 0)
        } else {
            (completed, next, position - self.frame_start(next))
        }
    }
}

/// A run's message encoded once for each compression setting the server answered (most
/// often a single one): connections alike share it, so that a big message is held once,
/// not once per connection.
#[derive(Debug, Default)]
pub(crate) struct EncodedCache(Mutex<Vec<(Option<DeflateParams>, Arc<EncodedMessage>)>>);

impl EncodedCache {
    /// The message as a connection with `compression` sends it: encoded by `encode` for
    /// the first such connection, shared with the others.
    pub(crate) fn get(
        &self,
        compression: Option<&Compression>,
        encode: impl FnOnce() -> EncodedMessage,
    ) -> Arc<EncodedMessage> {
        let params = compression.map(|compression| compression.params);
        let mut encoded = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, message)) = encoded.iter().find(|(known, _)| *known == params) {
            return Arc::clone(message);
        }
        let message = Arc::new(encode());
        encoded.push((params, Arc::clone(&message)));
        message
    }
}

/// permessage-deflate as negotiated on one connection: enough to compress the message
/// once and to inflate the server's first compressed echo.
#[derive(Clone, Debug)]
pub(crate) struct Compression {
    /// What the server agreed to.
    pub(crate) params: DeflateParams,
    /// The client's settings, as offered.
    pub(crate) config: DeflateConfig,
}

impl Compression {
    /// The settings `bench --compression` offers: no context takeover for the client, so
    /// that a message compresses to the same bytes every time and can be encoded once.
    pub(crate) fn offer() -> DeflateConfig {
        DeflateConfig::default().client_no_context_takeover(true)
    }

    /// The compressed payload of `payload`, without the final `00 00 ff ff`.
    pub(crate) fn compress(&self, payload: &[u8]) -> Vec<u8> {
        let mut deflate = PerMessageDeflate::new(Side::Client, self.params, &self.config);
        let mut out = BytesMut::with_capacity(payload.len() + 64);
        deflate.compress(payload, &mut out);
        out.to_vec()
    }

    /// The length of the server's message `compressed` once inflated, or `None` if it is
    /// not valid or inflates past `max_len` bytes. Only right for the first compressed
    /// message of a connection: with context takeover later ones refer to earlier ones.
    pub(crate) fn inflated_len(&self, compressed: &[u8], max_len: usize) -> Option<usize> {
        let mut deflate = PerMessageDeflate::new(Side::Client, self.params, &self.config);
        let mut out = BytesMut::new();
        deflate
            .decompress(compressed, true, &mut out, max_len)
            .ok()?;
        Some(out.len())
    }
}

#[cfg(test)]
mod tests {
    use sockjet_proto::{Config, Event, Message, Protocol};

    use super::*;

    /// A server-side core that reads what `bench` writes.
    fn server(compression: Option<&Compression>) -> Protocol {
        let mut server = Protocol::new(Side::Server, Config::default());
        if let Some(compression) = compression {
            server.enable_permessage_deflate(PerMessageDeflate::new(
                Side::Server,
                compression.params,
                &compression.config,
            ));
        }
        server
    }

    fn messages(server: &mut Protocol, wire: &[u8]) -> Vec<Message> {
        server.receive_data(wire);
        let mut messages = Vec::new();
        while let Some(event) = server.next_event() {
            match event {
                Event::Message(message) => messages.push(message),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(server.close_error(), None);
        messages
    }

    #[test]
    fn text_payload_is_json_like_utf8_of_the_exact_size() {
        for size in [0, 1, 16, 47, 48, 49, 1000, 65_536] {
            let text = payload(PayloadKind::Text, size);
            assert_eq!(text.len(), size);
            let text = std::str::from_utf8(&text).expect("valid UTF-8");
            assert!(size < 10 || text.starts_with(r#"{"id":"#), "{text}");
        }
        assert_eq!(payload(PayloadKind::Binary, 1001).len(), 1001);
        assert_eq!(
            payload(PayloadKind::Binary, 64),
            payload(PayloadKind::Binary, 64)
        );
    }

    #[test]
    fn encoded_frames_round_trip_through_the_server_core() {
        for kind in [PayloadKind::Text, PayloadKind::Binary] {
            for size in [0, 5, 125, 126, 300, 70_000] {
                let payload = payload(kind, size);
                let encoded = EncodedMessage::new(
                    kind,
                    std::slice::from_ref(&payload),
                    None,
                    [1, 2, 3, 4],
                    3,
                );
                assert_eq!(encoded.frames(), 3, "{kind:?} {size}");
                let wire = encoded.frames_from(0, 0, 3);
                let received = messages(&mut server(None), wire);
                assert_eq!(received.len(), 3, "{kind:?} {size}");
                for message in received {
                    assert_eq!(message.as_bytes(), &payload[..]);
                    assert_eq!(message.is_text(), kind == PayloadKind::Text);
                }
            }
        }
    }

    /// A client's compression, as a server that accepted the offer as is would give it.
    fn negotiated() -> Compression {
        let config = Compression::offer();
        let params = config
            .client_accept(&["permessage-deflate; client_no_context_takeover"])
            .expect("valid answer");
        Compression { params, config }
    }

    #[test]
    fn compressed_frames_round_trip_and_repeat_identically() {
        let compression = negotiated();
        let payload = payload(PayloadKind::Text, 2000);
        let encoded = EncodedMessage::new(
            PayloadKind::Text,
            std::slice::from_ref(&payload),
            Some(&compression),
            [9, 8, 7, 6],
            4,
        );
        assert!(encoded.frame_len(0) < 1000, "JSON-like text compresses");
        // The server decompresses each copy with the context the previous one left:
        // identical copies are only right because the client resets its compressor.
        let mut server = server(Some(&compression));
        let received = messages(&mut server, encoded.frames_from(0, 0, usize::MAX));
        assert_eq!(received.len(), 4);
        for message in received {
            assert_eq!(message.as_bytes(), &payload[..]);
        }
        let compressed = compression.compress(&payload);
        assert_eq!(compression.inflated_len(&compressed, 1 << 20), Some(2000));
        assert_eq!(compression.inflated_len(&compressed, 100), None);
        assert_eq!(compression.inflated_len(b"\xff\xff\xff", 100), None);
    }

    #[test]
    fn variants_differ_and_go_out_in_turn() {
        assert_eq!(variants_for(4096, false), 1);
        assert_eq!(variants_for(0, true), 1);
        assert_eq!(variants_for(4096, true), 64);
        assert_eq!(variants_for(16 * 1024, true), 16);
        assert_eq!(variants_for(16, true), MAX_VARIANTS);
        assert_eq!(variants_for(1 << 20, true), 1);
        // No payload repeats within the largest window.
        for size in [1000, 4096, 20_000] {
            assert!(variants_for(size, true) * size > 32 * 1024, "{size}");
        }
        let variants: Vec<Vec<u8>> = (0..3)
            .map(|index| payload_variant(PayloadKind::Text, 4096, index))
            .collect();
        assert_eq!(variants[0], payload(PayloadKind::Text, 4096));
        assert_ne!(variants[0], variants[1]);
        assert_ne!(variants[1], variants[2]);
        for variant in &variants {
            assert_eq!(variant.len(), 4096);
            assert!(std::str::from_utf8(variant).is_ok());
        }
        // Compressed, the frames differ in length; the server reads them in turn, each
        // in a fresh context since the client resets its compressor.
        let compression = negotiated();
        let encoded =
            EncodedMessage::new(PayloadKind::Text, &variants, Some(&compression), [1; 4], 7);
        assert_eq!(encoded.frames(), 9, "whole cycles: 3 of 3");
        let mut server = server(Some(&compression));
        let received = messages(&mut server, encoded.frames_from(0, 0, usize::MAX));
        assert_eq!(received.len(), 9);
        for (index, message) in received.iter().enumerate() {
            assert_eq!(message.as_bytes(), &variants[index % 3][..], "{index}");
        }
        // Connections start each at its own frame, so at its own variant.
        let starts: Vec<usize> = (0..4)
            .map(|connection| encoded.start_for(connection))
            .collect();
        assert_eq!(starts, [0, 1, 2, 3]);
        assert_eq!(encoded.start_for(9), 0);
        let mut server = self::server(Some(&compression));
        let from_second = messages(&mut server, encoded.frames_from(1, 0, 2));
        assert_eq!(from_second[0].as_bytes(), &variants[1][..]);
        assert_eq!(from_second[1].as_bytes(), &variants[2][..]);
    }

    #[test]
    fn writes_can_stop_anywhere_and_go_on() {
        let variants = [b"abc".to_vec(), b"de".to_vec()];
        let encoded = EncodedMessage::new(PayloadKind::Binary, &variants, None, [0; 4], 4);
        assert_eq!(encoded.frames(), 4);
        assert_eq!((encoded.frame_len(0), encoded.frame_len(1)), (9, 8));
        assert_eq!(encoded.frames_from(0, 0, 1), b"\x82\x83\0\0\0\0abc");
        assert_eq!(encoded.frames_from(0, 6, 2), b"abc\x82\x82\0\0\0\0de");
        assert_eq!(encoded.frames_from(1, 0, 100).len(), 8 + 9 + 8);
        // 6 bytes into frame 0, then 5 more: 2 bytes into frame 1.
        assert_eq!(encoded.advance(0, 6, 5), (1, 1, 2));
        // Frame 1's rest and frame 2: on to frame 3.
        assert_eq!(encoded.advance(1, 2, 6 + 9), (2, 3, 0));
        // The end of the batch: back to frame 0.
        assert_eq!(encoded.advance(3, 0, 8), (1, 0, 0));
        assert_eq!(encoded.advance(0, 0, 0), (0, 0, 0));
        // Big frames are kept once.
        let big = EncodedMessage::new(PayloadKind::Binary, &[vec![0; 300_000]], None, [0; 4], 16);
        assert_eq!(big.frames(), 1);
        assert_eq!(big.frames_from(0, 0, 16).len(), big.frame_len(0));
    }

    #[test]
    fn control_frames_are_masked() {
        let mut server = server(None);
        server.receive_data(&pong_frame(b"hi", [5, 6, 7, 8]));
        assert!(matches!(server.next_event(), Some(Event::Pong(payload)) if payload == "hi"));
        server.receive_data(&close_frame(1000, [5, 6, 7, 8]));
        assert!(
            matches!(server.next_event(), Some(Event::Close(Some(frame))) if frame.code == 1000.into())
        );
    }
}
