//! Payloads, and the client frames `bench` writes: data frames encoded once per connection
//! and written again and again, and the few control frames it answers with.

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

/// The payload of every message of a run: `size` bytes of `kind`.
///
/// Text is a run of records like `{"id":123,"symbol":"S45","price":12.34,"qty":56},`
/// with varying numbers, cut to `size` bytes. It is all ASCII, so any cut is valid UTF-8.
/// Binary is xorshift output: deterministic, so two runs send the same bytes.
pub(crate) fn payload(kind: PayloadKind, size: usize) -> Vec<u8> {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
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

/// Largest batch of copies of a frame kept per connection: with big messages the batch
/// holds a single frame, and writes cycle through it.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One message, encoded once as a complete masked frame, and repeated `copies` times
/// back to back so that `copies` messages go out in one write.
///
/// Every copy reuses the same masking key, and connections that negotiated alike share
/// one encoding. RFC 6455 §5.3 wants a fresh key per frame so that a hostile page cannot
/// choose the bytes on the wire to poison a proxy cache; a load tool sends its own fixed
/// payload, and encoding once is what keeps it from being the bottleneck.
#[derive(Clone, Debug)]
pub(crate) struct EncodedMessage {
    /// `copies` copies of the frame, back to back.
    batch: Vec<u8>,
    /// Length of one frame.
    frame_len: usize,
}

impl EncodedMessage {
    /// Encodes `payload` once, compressed with `deflate` when given, in a batch of at most
    /// `copies` frames.
    pub(crate) fn new(
        kind: PayloadKind,
        payload: &[u8],
        deflate: Option<&Compression>,
        mask: [u8; 4],
        copies: usize,
    ) -> Self {
        let opcode = match kind {
            PayloadKind::Text => OpCode::Text,
            PayloadKind::Binary => OpCode::Binary,
        };
        let frame = match deflate {
            Some(compression) => {
                let compressed = compression.compress(payload);
                encode_frame(opcode, true, &compressed, mask)
            }
            None => encode_frame(opcode, false, payload, mask),
        };
        let copies = copies.clamp(1, (MAX_BATCH_BYTES / frame.len().max(1)).max(1));
        let frame_len = frame.len();
        Self {
            batch: frame.repeat(copies),
            frame_len,
        }
    }

    /// Length of one frame on the wire.
    pub(crate) fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The bytes at `offset` (within one frame) of an endless stream of frames, at most
    /// `limit` of them: a slice of the batch, so that any write starts without copying.
    pub(crate) fn stream_at(&self, offset: usize, limit: usize) -> &[u8] {
        let end = self.batch.len().min(offset.saturating_add(limit));
        &self.batch[offset..end]
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
                let encoded = EncodedMessage::new(kind, &payload, None, [1, 2, 3, 4], 3);
                let wire = encoded.stream_at(0, 3 * encoded.frame_len());
                let received = messages(&mut server(None), wire);
                assert_eq!(received.len(), 3, "{kind:?} {size}");
                for message in received {
                    assert_eq!(message.as_bytes(), &payload[..]);
                    assert_eq!(message.is_text(), kind == PayloadKind::Text);
                }
            }
        }
    }

    #[test]
    fn compressed_frames_round_trip_and_repeat_identically() {
        let config = Compression::offer();
        let params = config
            .client_accept(&["permessage-deflate; client_no_context_takeover"])
            .expect("valid answer");
        let compression = Compression { params, config };
        let payload = payload(PayloadKind::Text, 2000);
        let encoded = EncodedMessage::new(
            PayloadKind::Text,
            &payload,
            Some(&compression),
            [9, 8, 7, 6],
            4,
        );
        assert!(encoded.frame_len() < 1000, "JSON-like text compresses");
        // The server decompresses each copy with the context the previous one left:
        // identical copies are only right because the client resets its compressor.
        let mut server = server(Some(&compression));
        let received = messages(&mut server, encoded.stream_at(0, usize::MAX));
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
    fn the_stream_of_frames_can_start_anywhere() {
        let encoded = EncodedMessage::new(PayloadKind::Binary, b"abc", None, [0; 4], 4);
        assert_eq!(encoded.frame_len(), 9);
        assert_eq!(encoded.stream_at(0, 9), b"\x82\x83\0\0\0\0abc");
        assert_eq!(encoded.stream_at(6, 5), b"abc\x82\x83");
        assert_eq!(encoded.stream_at(8, 100).len(), 36 - 8);
        // Big frames are kept once.
        let big = EncodedMessage::new(PayloadKind::Binary, &[0; 300_000], None, [0; 4], 16);
        assert_eq!(big.stream_at(0, usize::MAX).len(), big.frame_len());
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
