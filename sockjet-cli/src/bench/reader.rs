//! A minimal reader of server frames: enough to count echoes without the cost of
//! reassembling them.
//!
//! Data payloads are skipped, not buffered: a message is counted when its last frame
//! (FIN) ends, with its length on the wire. Control frames are kept whole (at most 125
//! bytes), since pings need their payload echoed and close frames carry a code. Every
//! rule a client must check on server frames is checked: no mask, no RSV bits but RSV1
//! on the first frame of a message when compression was negotiated, control frames
//! unfragmented and short, continuations only inside a message.
//!
//! With `sockjet bench --floor` the server is a plain TCP echo that returns the client's
//! own frames, masked: the reader then accepts masked frames
//! ([`FrameReader::accept_masked`]). Their data payloads are skipped as always (never
//! unmasked, only counted); the payload of a masked control frame (at most 125 bytes, in
//! practice the echo of our own close frame) is unmasked, so that its close code reads
//! right.

use std::fmt;

use sockjet_proto::frame::{FrameHeader, OpCode, mask::apply_mask};

/// What a server sent, one frame or message at a time.
#[derive(Debug, Eq, PartialEq)]
pub(crate) enum ServerFrame<'a> {
    /// A complete data message.
    Message {
        /// Payload length on the wire, across all its frames: compressed, if `compressed`.
        wire_len: u64,
        /// Whether RSV1 was set (permessage-deflate).
        compressed: bool,
        /// The payload, for the message that [`FrameReader::capture_next_compressed`] asked
        /// for.
        captured: Option<&'a [u8]>,
        /// The first bytes of the payload (at most [`HEAD_LEN`], fewer if it is shorter),
        /// when [`FrameReader::keep_heads`] asked for them; empty otherwise.
        head: &'a [u8],
    },
    /// A ping, whose payload the pong must echo.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame: its code, or `None` for an empty one (1005, no status).
    Close(Option<u16>),
}

/// A server frame that breaks RFC 6455 (or RFC 7692).
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct FrameError(String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the reader is in the byte stream.
#[derive(Clone, Copy, Debug)]
enum Position {
    /// Reading a frame header, of which `header_len` bytes are in `header`.
    Header,
    /// Reading `remaining` payload bytes of a data frame.
    DataPayload { remaining: u64, fin: bool },
    /// Reading `remaining` payload bytes of a control frame into `control`, masked with
    /// `mask` if any (`--floor` only).
    ControlPayload {
        remaining: u64,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
    },
}

/// Most bytes of a compressed message kept to inflate it; a message compressed to more is
/// not checked.
const MAX_CAPTURE: usize = 16 << 20;

/// Bytes kept from the start of each data message with [`FrameReader::keep_heads`]: what
/// `--fanout` puts there (a sequence number and a send time).
pub(crate) const HEAD_LEN: usize = 16;

/// Parses the frames a server sends, fed in reads of any size.
#[derive(Debug)]
pub(crate) struct FrameReader {
    position: Position,
    /// A header split across reads.
    header: [u8; FrameHeader::MAX_LEN],
    header_len: usize,
    /// The message being received: its wire length so far and whether it is compressed.
    message: Option<(u64, bool)>,
    /// The payload of the control frame being received.
    control: Vec<u8>,
    /// Whether RSV1 may be set: permessage-deflate was negotiated.
    compression: bool,
    /// Whether masked frames are accepted: the server echoes our frames as they are
    /// (`--floor`).
    accept_masked: bool,
    /// Keep the payload of the next compressed message.
    capture_next: bool,
    /// The payload of the compressed message being captured, if any.
    captured: Option<Vec<u8>>,
    /// Keep the first bytes of every data message ([`keep_heads`](Self::keep_heads)).
    keep_heads: bool,
    /// The first bytes of the message being received, `head_len` of them so far.
    head: [u8; HEAD_LEN],
    head_len: usize,
}

impl FrameReader {
    /// A reader for a connection with or without permessage-deflate.
    pub(crate) fn new(compression: bool) -> Self {
        Self {
            position: Position::Header,
            header: [0; FrameHeader::MAX_LEN],
            header_len: 0,
            message: None,
            control: Vec::new(),
            compression,
            accept_masked: false,
            capture_next: false,
            captured: None,
            keep_heads: false,
            head: [0; HEAD_LEN],
            head_len: 0,
        }
    }

    /// Keeps the first [`HEAD_LEN`] bytes of every data message's payload, for
    /// [`ServerFrame::Message`]'s `head`: a copy of 16 bytes at most per message, however
    /// the message is split in frames and reads.
    pub(crate) fn keep_heads(&mut self) {
        self.keep_heads = true;
    }

    /// Accepts masked frames from then on, instead of failing on them: for a server that
    /// is a plain TCP echo of our own (masked) frames (`--floor`). Their data payloads are
    /// skipped unread, like any other.
    pub(crate) fn accept_masked(&mut self) {
        self.accept_masked = true;
    }

    /// Asks for the payload of the next compressed message, to check its length once
    /// inflated.
    pub(crate) fn capture_next_compressed(&mut self) {
        self.capture_next = self.compression;
    }

    /// Parses `data`, the next bytes from the server, and reports what it completes.
    ///
    /// # Errors
    ///
    /// The first rule the server broke; the connection must then be dropped, as the rest
    /// of the stream cannot be trusted.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        on_frame: &mut impl FnMut(ServerFrame<'_>),
    ) -> Result<(), FrameError> {
        while !data.is_empty() {
            match self.position {
                Position::Header => {
                    let Some(header) = self.take_header(&mut data)? else {
                        return Ok(());
                    };
                    self.start_frame(header, on_frame)?;
                }
                Position::DataPayload { remaining, fin } => {
                    let (taken, rest) = split(data, remaining);
                    data = rest;
                    if self.keep_heads && self.head_len < HEAD_LEN {
                        let kept = taken.len().min(HEAD_LEN - self.head_len);
                        self.head[self.head_len..self.head_len + kept]
                            .copy_from_slice(&taken[..kept]);
                        self.head_len += kept;
                    }
                    if let Some(captured) = &mut self.captured {
                        if captured.len() + taken.len() <= MAX_CAPTURE {
                            captured.extend_from_slice(taken);
                        } else {
                            self.captured = None;
                        }
                    }
                    let remaining = remaining - taken.len() as u64;
                    self.position = Position::DataPayload { remaining, fin };
                    if remaining == 0 {
                        self.end_data_frame(fin, on_frame);
                    }
                }
                Position::ControlPayload {
                    remaining,
                    opcode,
                    mask,
                } => {
                    let (taken, rest) = split(data, remaining);
                    data = rest;
                    self.control.extend_from_slice(taken);
                    let remaining = remaining - taken.len() as u64;
                    self.position = Position::ControlPayload {
                        remaining,
                        opcode,
                        mask,
                    };
                    if remaining == 0 {
                        self.end_control_frame(opcode, mask, on_frame)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes the header at the start of `data` (after any part kept from earlier reads)
    /// and advances `data` past it; `None` (with everything kept) when it is incomplete.
    fn take_header(&mut self, data: &mut &[u8]) -> Result<Option<FrameHeader>, FrameError> {
        let invalid = |error| FrameError(format!("invalid frame header: {error}"));
        if self.header_len == 0 {
            // The usual case: the whole header is in this read, decode it in place.
            if let Some((header, len)) = FrameHeader::decode(data).map_err(invalid)? {
                *data = &data[len..];
                return Ok(Some(header));
            }
        }
        // A header split across reads: gather it, at most 14 bytes.
        let kept = self.header_len;
        let taken = data.len().min(FrameHeader::MAX_LEN - kept);
        self.header[kept..kept + taken].copy_from_slice(&data[..taken]);
        match FrameHeader::decode(&self.header[..kept + taken]).map_err(invalid)? {
            Some((header, len)) => {
                *data = &data[len - kept..];
                self.header_len = 0;
                Ok(Some(header))
            }
            None => {
                *data = &data[taken..];
                self.header_len = kept + taken;
                Ok(None)
            }
        }
    }

    /// Checks a frame header against what a server may send, and gets ready for its
    /// payload.
    fn start_frame(
        &mut self,
        header: FrameHeader,
        on_frame: &mut impl FnMut(ServerFrame<'_>),
    ) -> Result<(), FrameError> {
        let fail = |why: &str| Err(FrameError(why.to_owned()));
        // RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
        // Unless the server is a plain TCP echo of our own frames (`--floor`).
        if header.mask.is_some() && !self.accept_masked {
            return fail("masked frame from the server");
        }
        let rsv1 = header.rsv & 0b100 != 0;
        if header.rsv & 0b011 != 0 {
            return fail("RSV2 or RSV3 set");
        }
        if header.opcode.is_control() {
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes
            // or less and MUST NOT be fragmented."
            if !header.fin || header.payload_len > 125 {
                return fail("fragmented or oversized control frame");
            }
            // RFC 7692 §6: RSV1 is for data messages only.
            if rsv1 {
                return fail("RSV1 set on a control frame");
            }
            self.control.clear();
            self.position = Position::ControlPayload {
                remaining: header.payload_len,
                opcode: header.opcode,
                mask: header.mask,
            };
            if header.payload_len == 0 {
                self.end_control_frame(header.opcode, header.mask, on_frame)?;
            }
            return Ok(());
        }
        match (header.opcode, self.message) {
            (OpCode::Continuation, None) => return fail("continuation frame outside a message"),
            (OpCode::Continuation, Some(_)) if rsv1 => {
                return fail("RSV1 set on a continuation frame");
            }
            (OpCode::Continuation, Some(_)) => {}
            (_, Some(_)) => return fail("new message before the previous one ended"),
            (_, None) => {
                if rsv1 && !self.compression {
                    return fail("RSV1 set without compression");
                }
                self.message = Some((0, rsv1));
                if rsv1 && self.capture_next {
                    self.capture_next = false;
                    self.captured = Some(Vec::new());
                }
            }
        }
        if let Some((wire_len, _)) = &mut self.message {
            *wire_len = wire_len.saturating_add(header.payload_len);
        }
        self.position = Position::DataPayload {
            remaining: header.payload_len,
            fin: header.fin,
        };
        if header.payload_len == 0 {
            self.end_data_frame(header.fin, on_frame);
        }
        Ok(())
    }

    /// Ends a data frame; after the last one of its message, reports the message.
    fn end_data_frame(&mut self, fin: bool, on_frame: &mut impl FnMut(ServerFrame<'_>)) {
        self.position = Position::Header;
        if !fin {
            return;
        }
        let (wire_len, compressed) = self.message.take().unwrap_or_default();
        let captured = self.captured.take();
        let head_len = std::mem::take(&mut self.head_len);
        on_frame(ServerFrame::Message {
            wire_len,
            compressed,
            captured: captured.as_deref(),
            head: &self.head[..head_len],
        });
    }

    /// Ends a control frame, unmasking its payload if it was masked, and reports it.
    fn end_control_frame(
        &mut self,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        on_frame: &mut impl FnMut(ServerFrame<'_>),
    ) -> Result<(), FrameError> {
        self.position = Position::Header;
        if let Some(key) = mask {
            apply_mask(&mut self.control, key);
        }
        let frame = match opcode {
            OpCode::Ping => ServerFrame::Ping(&self.control),
            OpCode::Pong => ServerFrame::Pong,
            OpCode::Close => match self.control[..] {
                [] => ServerFrame::Close(None),
                // RFC 6455 §5.5.1: a body starts with a 2-byte code.
                [_] => return Err(FrameError("close frame with a 1-byte body".to_owned())),
                [high, low, ..] => ServerFrame::Close(Some(u16::from_be_bytes([high, low]))),
            },
            _ => unreachable!("only control opcodes reach here"),
        };
        on_frame(frame);
        Ok(())
    }
}

/// Splits off at most `len` bytes from the front of `data`.
fn split(data: &[u8], len: u64) -> (&[u8], &[u8]) {
    let at = usize::try_from(len).map_or(data.len(), |len| len.min(data.len()));
    data.split_at(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of what the reader reports, to compare.
    #[derive(Debug, Eq, PartialEq)]
    enum Seen {
        Message(u64, bool, Option<Vec<u8>>),
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>),
    }

    fn server_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut wire = Vec::new();
        header.encode(&mut wire);
        wire.extend_from_slice(payload);
        wire
    }

    fn feed_in_pieces(
        reader: &mut FrameReader,
        wire: &[u8],
        pieces: &[usize],
    ) -> Result<Vec<Seen>, FrameError> {
        let mut seen = Vec::new();
        let mut record = |frame: ServerFrame<'_>| {
            seen.push(match frame {
                ServerFrame::Message {
                    wire_len,
                    compressed,
                    captured,
                    ..
                } => Seen::Message(wire_len, compressed, captured.map(<[u8]>::to_vec)),
                ServerFrame::Ping(payload) => Seen::Ping(payload.to_vec()),
                ServerFrame::Pong => Seen::Pong,
                ServerFrame::Close(code) => Seen::Close(code),
            });
        };
        let mut rest = wire;
        for &piece in pieces {
            let (now, later) = rest.split_at(piece.min(rest.len()));
            reader.feed(now, &mut record)?;
            rest = later;
        }
        reader.feed(rest, &mut record)?;
        Ok(seen)
    }

    /// A stream with every kind of frame: two single-frame messages, a message in three
    /// fragments with a ping between them, a long one, a pong, a close.
    fn mixed_stream() -> (Vec<u8>, Vec<Seen>) {
        let mut wire = Vec::new();
        wire.extend(server_frame(true, 0, OpCode::Text, b"hello"));
        wire.extend(server_frame(true, 0, OpCode::Binary, &[7; 300]));
        wire.extend(server_frame(false, 0, OpCode::Text, b"frag"));
        wire.extend(server_frame(true, 0, OpCode::Ping, b"are you there"));
        wire.extend(server_frame(false, 0, OpCode::Continuation, b"men"));
        wire.extend(server_frame(true, 0, OpCode::Continuation, b"ted"));
        wire.extend(server_frame(true, 0, OpCode::Binary, &[1; 70_000]));
        wire.extend(server_frame(true, 0, OpCode::Binary, b""));
        wire.extend(server_frame(true, 0, OpCode::Pong, b""));
        wire.extend(server_frame(
            true,
            0,
            OpCode::Close,
            &[0x03, 0xE8, b'o', b'k'],
        ));
        let expected = vec![
            Seen::Message(5, false, None),
            Seen::Message(300, false, None),
            Seen::Ping(b"are you there".to_vec()),
            Seen::Message(10, false, None),
            Seen::Message(70_000, false, None),
            Seen::Message(0, false, None),
            Seen::Pong,
            Seen::Close(Some(1000)),
        ];
        (wire, expected)
    }

    #[test]
    fn frames_split_at_every_boundary_parse_alike() {
        let (wire, expected) = mixed_stream();
        // Two cuts anywhere in the first 400 bytes (every header and the fragmented
        // message are there), the rest whole.
        for first in 0..400 {
            for second in (first..400).step_by(7) {
                let mut reader = FrameReader::new(false);
                let seen = feed_in_pieces(&mut reader, &wire, &[first, second - first]);
                assert_eq!(seen.as_ref(), Ok(&expected), "cuts at {first}, {second}");
            }
        }
    }

    #[test]
    fn byte_by_byte_parses_alike() {
        let (wire, expected) = mixed_stream();
        let mut reader = FrameReader::new(false);
        let seen = feed_in_pieces(&mut reader, &wire, &vec![1; wire.len()]).unwrap();
        assert_eq!(seen, expected);
    }

    #[test]
    fn compressed_messages_are_flagged_and_one_is_captured() {
        let mut wire = Vec::new();
        wire.extend(server_frame(false, 0b100, OpCode::Text, b"abc"));
        wire.extend(server_frame(true, 0, OpCode::Continuation, b"de"));
        wire.extend(server_frame(true, 0b100, OpCode::Text, b"xyz"));
        wire.extend(server_frame(true, 0, OpCode::Text, b"plain"));
        for cut in 0..wire.len() {
            let mut reader = FrameReader::new(true);
            reader.capture_next_compressed();
            let seen = feed_in_pieces(&mut reader, &wire, &[cut]).unwrap();
            assert_eq!(
                seen,
                [
                    Seen::Message(5, true, Some(b"abcde".to_vec())),
                    Seen::Message(3, true, None),
                    Seen::Message(5, false, None),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn our_own_masked_frames_echoed_are_accepted_only_when_asked() {
        use crate::bench::frames::{close_frame, encode_frame, pong_frame};
        let key = [0xA5, 0x5A, 0x3C, 0xC3];
        // What a plain TCP echo returns: the client's frames as they were sent (masked),
        // here with an unmasked frame among them too.
        let mut wire = Vec::new();
        wire.extend(encode_frame(OpCode::Text, false, b"hello", key));
        wire.extend(encode_frame(OpCode::Binary, false, &[7; 300], key));
        wire.extend(server_frame(true, 0, OpCode::Text, b"plain"));
        wire.extend(pong_frame(b"hi", key));
        wire.extend(encode_frame(OpCode::Ping, false, b"are you there", key));
        wire.extend(encode_frame(OpCode::Binary, false, &[1; 70_000], key));
        wire.extend(encode_frame(OpCode::Binary, false, b"", key));
        wire.extend(close_frame(1000, key));
        let expected = vec![
            Seen::Message(5, false, None),
            Seen::Message(300, false, None),
            Seen::Message(5, false, None),
            Seen::Pong,
            // Control payloads are unmasked: the ping's to answer it, the close's code.
            Seen::Ping(b"are you there".to_vec()),
            Seen::Message(70_000, false, None),
            Seen::Message(0, false, None),
            Seen::Close(Some(1000)),
        ];
        let close_at = wire.len() - 8;
        for cut in (0..400).chain(close_at..wire.len()) {
            let mut reader = FrameReader::new(false);
            reader.accept_masked();
            let seen = feed_in_pieces(&mut reader, &wire, &[cut]);
            assert_eq!(seen.as_ref(), Ok(&expected), "cut at {cut}");
        }
        let mut reader = FrameReader::new(false);
        reader.accept_masked();
        let seen = feed_in_pieces(&mut reader, &wire, &vec![1; wire.len()]).unwrap();
        assert_eq!(seen, expected);
        // Without `accept_masked`, the first masked frame is an error.
        let mut reader = FrameReader::new(false);
        let error = reader.feed(&wire, &mut |_| {}).unwrap_err();
        assert_eq!(error.to_string(), "masked frame from the server");
        // The other rules still hold for masked frames.
        let mut rsv2 = encode_frame(OpCode::Text, false, b"a", key);
        rsv2[0] |= 0b0010_0000;
        let mut reader = FrameReader::new(false);
        reader.accept_masked();
        assert!(reader.feed(&rsv2, &mut |_| {}).is_err());
    }

    #[test]
    fn heads_are_kept_across_frames_and_reads() {
        let mut wire = Vec::new();
        let long: Vec<u8> = (0..40).collect();
        wire.extend(server_frame(true, 0, OpCode::Binary, &long));
        wire.extend(server_frame(true, 0, OpCode::Text, b"short"));
        // A head split over three fragments, with a ping among them.
        wire.extend(server_frame(false, 0, OpCode::Binary, &long[..3]));
        wire.extend(server_frame(true, 0, OpCode::Ping, b"p"));
        wire.extend(server_frame(false, 0, OpCode::Continuation, &long[3..10]));
        wire.extend(server_frame(true, 0, OpCode::Continuation, &long[10..]));
        wire.extend(server_frame(true, 0, OpCode::Binary, b""));
        let expected: Vec<Vec<u8>> = vec![
            long[..HEAD_LEN].to_vec(),
            b"short".to_vec(),
            long[..HEAD_LEN].to_vec(),
            Vec::new(),
        ];
        for cut in 0..wire.len() {
            let mut reader = FrameReader::new(false);
            reader.keep_heads();
            let mut heads = Vec::new();
            let mut record = |frame: ServerFrame<'_>| {
                if let ServerFrame::Message { head, .. } = frame {
                    heads.push(head.to_vec());
                }
            };
            reader.feed(&wire[..cut], &mut record).unwrap();
            reader.feed(&wire[cut..], &mut record).unwrap();
            assert_eq!(heads, expected, "cut at {cut}");
        }
        // Without keep_heads, none.
        let mut reader = FrameReader::new(false);
        reader
            .feed(&wire, &mut |frame| {
                if let ServerFrame::Message { head, .. } = frame {
                    assert!(head.is_empty());
                }
            })
            .unwrap();
    }

    #[test]
    fn rule_breaking_frames_are_errors() {
        let masked = [0x81, 0x81, 1, 2, 3, 4, b'a'];
        let cases: [(&[u8], bool); 9] = [
            (&masked, false),
            (&server_frame(true, 0b100, OpCode::Text, b"a"), false),
            (&server_frame(true, 0b010, OpCode::Text, b"a"), true),
            (&server_frame(true, 0b100, OpCode::Ping, b""), true),
            (&server_frame(false, 0, OpCode::Ping, b""), false),
            (&server_frame(true, 0, OpCode::Pong, &[0; 126]), false),
            (&server_frame(true, 0, OpCode::Continuation, b"a"), false),
            (&server_frame(true, 0, OpCode::Close, b"x"), false),
            (&[0x83, 0x00], false),
        ];
        for (wire, compression) in cases {
            let mut reader = FrameReader::new(compression);
            assert!(
                reader.feed(wire, &mut |_| {}).is_err(),
                "{wire:02x?} accepted"
            );
        }
        let mut reader = FrameReader::new(false);
        let mut twice = server_frame(false, 0, OpCode::Text, b"a");
        twice.extend(server_frame(true, 0, OpCode::Text, b"b"));
        assert!(reader.feed(&twice, &mut |_| {}).is_err());
    }
}
