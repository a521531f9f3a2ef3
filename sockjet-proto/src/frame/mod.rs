//! Frame-level codec (RFC 6455 §5.2): opcodes and frame headers.
//!
//! Most users never touch frames: [`Protocol`](crate::Protocol) turns them into messages.
//! This module is public for fuzzing, benchmarks and custom drivers.

pub mod mask;

use bytes::BufMut;

use crate::error::ProtocolError;

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes are rejected when decoding.
///
/// ```
/// use sockjet_proto::frame::OpCode;
/// assert!(OpCode::Ping.is_control());
/// assert_eq!(OpCode::try_from(0x2).unwrap(), OpCode::Binary);
/// assert!(OpCode::try_from(0x3).is_err());
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Whether this is a control opcode (close, ping, pong).
    ///
    /// ```
    /// assert!(!sockjet_proto::frame::OpCode::Text.is_control());
    /// ```
    pub const fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }

    /// The 4-bit value on the wire.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::frame::OpCode::Pong.as_u8(), 0xA);
    /// ```
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }
}

impl TryFrom<u8> for OpCode {
    type Error = ProtocolError;

    fn try_from(value: u8) -> Result<Self, ProtocolError> {
        Ok(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST
            // _Fail the WebSocket Connection_."
            other => return Err(ProtocolError::InvalidOpcode(other)),
        })
    }
}

/// The first reserved bit (RSV1) as it appears in [`FrameHeader::rsv`]; "Per-Message
/// Compressed" under permessage-deflate (RFC 7692 §6).
///
/// ```
/// assert_eq!(sockjet_proto::frame::RSV1 << 4, 0x40);
/// ```
pub const RSV1: u8 = 0b100;
/// The second reserved bit (RSV2) as it appears in [`FrameHeader::rsv`].
///
/// ```
/// assert_eq!(sockjet_proto::frame::RSV2 << 4, 0x20);
/// ```
pub const RSV2: u8 = 0b010;
/// The third reserved bit (RSV3) as it appears in [`FrameHeader::rsv`].
///
/// ```
/// assert_eq!(sockjet_proto::frame::RSV3 << 4, 0x10);
/// ```
pub const RSV3: u8 = 0b001;

/// A decoded frame header.
///
/// ```
/// use sockjet_proto::frame::{FrameHeader, OpCode};
/// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Text, mask: None, payload_len: 5 };
/// let mut wire = Vec::new();
/// header.encode(&mut wire);
/// assert_eq!(wire, [0x81, 0x05]);
/// assert_eq!(FrameHeader::decode(&wire).unwrap(), Some((header, 2)));
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2 and RSV3, in the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Longest possible header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
    pub const MAX_LEN: usize = 14;

    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed ("need more" is not an error), or the
    /// header and its length in bytes. Any valid length encoding is accepted, including
    /// non-minimal ones (RFC 6455 leaves rejecting them optional; Autobahn expects them
    /// accepted).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidOpcode`] for a reserved opcode and
    /// [`ProtocolError::InvalidPayloadLength`] when the 64-bit length has its top bit set.
    ///
    /// ```
    /// use sockjet_proto::frame::FrameHeader;
    /// assert_eq!(FrameHeader::decode(&[0x82]).unwrap(), None);
    /// assert!(FrameHeader::decode(&[0x83, 0x00]).is_err());
    /// ```
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [first, second, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::try_from(first & 0x0F)?;
        let masked = second & 0x80 != 0;
        let (payload_len, mut len) = match second & 0x7F {
            126 => match buf.get(2..4) {
                Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(bytes) => {
                    let value = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
                    // RFC 6455 §5.2: "the most significant bit MUST be 0".
                    if value >> 63 != 0 {
                        return Err(ProtocolError::InvalidPayloadLength);
                    }
                    (value, 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            match buf.get(len..len + 4) {
                Some(key) => {
                    len += 4;
                    Some(key.try_into().expect("4 bytes"))
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = Self {
            fin: first & 0x80 != 0,
            rsv: (first >> 4) & 0x07,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, len)))
    }

    /// Appends the header to `dst`, with the shortest length encoding.
    ///
    /// ```
    /// use sockjet_proto::frame::{FrameHeader, OpCode};
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: Some([1, 2, 3, 4]), payload_len: 300 };
    /// let mut wire = Vec::new();
    /// header.encode(&mut wire);
    /// assert_eq!(wire, [0x82, 0xFE, 0x01, 0x2C, 1, 2, 3, 4]);
    /// ```
    pub fn encode(&self, dst: &mut impl BufMut) {
        let mut bytes = [0u8; Self::MAX_LEN];
        let len = self.encode_to_array(&mut bytes);
        dst.put_slice(&bytes[..len]);
    }

    /// Writes the header into a fixed array and returns its length; the allocation-free
    /// core of [`encode`](Self::encode).
    ///
    /// ```
    /// use sockjet_proto::frame::{FrameHeader, OpCode};
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Ping, mask: None, payload_len: 0 };
    /// let mut bytes = [0u8; FrameHeader::MAX_LEN];
    /// assert_eq!(header.encode_to_array(&mut bytes), 2);
    /// ```
    pub fn encode_to_array(&self, bytes: &mut [u8; Self::MAX_LEN]) -> usize {
        bytes[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = match self.payload_len {
            0..=125 => {
                bytes[1] = mask_bit | self.payload_len as u8;
                2
            }
            126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            bytes[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask,
            payload_len,
        }
    }

    #[test]
    fn length_encodings_round_trip_at_boundaries() {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = header(len, mask);
                let mut wire = Vec::new();
                h.encode(&mut wire);
                assert_eq!(FrameHeader::decode(&wire).unwrap(), Some((h, wire.len())));
                for cut in 0..wire.len() {
                    assert_eq!(FrameHeader::decode(&wire[..cut]).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let wire = [0x82, 126, 0, 5];
        assert_eq!(
            FrameHeader::decode(&wire).unwrap().unwrap().0.payload_len,
            5
        );
        let wire = [0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(
            FrameHeader::decode(&wire).unwrap().unwrap().0.payload_len,
            5
        );
    }

    #[test]
    fn top_bit_of_64_bit_length_is_rejected() {
        let wire = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&wire),
            Err(ProtocolError::InvalidPayloadLength)
        );
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for opcode in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::decode(&[0x80 | opcode, 0]),
                Err(ProtocolError::InvalidOpcode(opcode))
            );
        }
    }

    #[test]
    fn rsv_bits_are_decoded() {
        let (h, _) = FrameHeader::decode(&[0xF1, 0]).unwrap().unwrap();
        assert_eq!(h.rsv, 0b111);
        assert!(h.fin);
    }
}
