//! `FrameHeader::decode` on arbitrary bytes: never panics, and a decoded header encodes
//! to bytes that decode to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_proto::{
    ProtocolError,
    frame::{FrameHeader, OpCode},
};

fuzz_target!(|bytes: &[u8]| {
    match FrameHeader::decode(bytes) {
        Ok(Some((header, len))) => {
            assert!((2..=FrameHeader::MAX_LEN).contains(&len) && len <= bytes.len());
            assert!(header.rsv < 8);
            assert!(header.payload_len < 1 << 63);
            // The header is all in its first `len` bytes; any shorter prefix needs more.
            assert_eq!(FrameHeader::decode(&bytes[..len]), Ok(Some((header, len))));
            for cut in 0..len {
                assert_eq!(FrameHeader::decode(&bytes[..cut]), Ok(None));
            }
            // Round trip: the minimal encoding is never longer and decodes equal.
            let mut wire = Vec::new();
            header.encode(&mut wire);
            assert!(wire.len() <= len);
            assert_eq!(FrameHeader::decode(&wire), Ok(Some((header, wire.len()))));
            let mut array = [0u8; FrameHeader::MAX_LEN];
            assert_eq!(header.encode_to_array(&mut array), wire.len());
            assert_eq!(&array[..wire.len()], &wire[..]);
            // The first byte carries FIN, RSV and the opcode unchanged.
            assert_eq!(wire[0], bytes[0]);
            assert_eq!(OpCode::try_from(bytes[0] & 0x0F), Ok(header.opcode));
        }
        Ok(None) => assert!(bytes.len() < FrameHeader::MAX_LEN),
        Err(ProtocolError::InvalidOpcode(opcode)) => {
            assert!(bytes.len() >= 2);
            assert_eq!(opcode, bytes[0] & 0x0F);
        }
        Err(ProtocolError::InvalidPayloadLength) => {
            assert_eq!(bytes[1] & 0x7F, 127);
            assert!(bytes[2] & 0x80 != 0);
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
