//! RFC 6455 §5.2 and §5.6: binary messages, the three payload length encodings, and the
//! header fields a receiver must reject (reserved bits, reserved opcodes, 64-bit length
//! with its top bit set).

mod common;

use common::*;
use sockjet_proto::{Config, Event, Message, ProtocolError};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn side_receives_binary_at_length_encoding_boundaries() {
    for side in SIDES {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, 0x1_0001] {
            let payload = pattern(len);
            let wire = frame_to(side, FIN | BINARY, &payload);
            let mut proto = proto(side);
            assert_eq!(
                feed(&mut proto, &wire),
                [Event::Message(Message::binary(payload))],
                "{side:?} len {len}"
            );
            assert_eq!(proto.buffered_len(), 0);
            assert!(proto.outgoing().is_empty());
        }
    }
}

#[test]
fn client_receives_exact_rfc_binary_frame() {
    // RFC 6455 §5.7: "256 bytes binary message in a single unmasked frame".
    let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
    wire.extend(pattern(256));
    let mut client = client();
    assert_eq!(
        feed(&mut client, &wire),
        [Event::Message(Message::binary(pattern(256)))]
    );
}

#[test]
fn side_receives_non_minimal_length_encodings() {
    // RFC 6455 §5.2 says "the minimal number of bytes MUST be used", but rejecting
    // non-minimal encodings is left to the receiver; this core accepts them.
    for side in SIDES {
        let mask_bit = if side == sockjet_proto::Side::Server {
            0x80
        } else {
            0
        };
        for (second, ext) in [(126u8, vec![0, 3]), (127, vec![0, 0, 0, 0, 0, 0, 0, 3])] {
            let mut wire = vec![FIN | BINARY, mask_bit | second];
            wire.extend(ext);
            if side == sockjet_proto::Side::Server {
                wire.extend([0, 0, 0, 0]);
            }
            wire.extend(b"xyz");
            let mut proto = proto(side);
            assert_eq!(
                feed(&mut proto, &wire),
                [Event::Message(Message::binary(&b"xyz"[..]))]
            );
        }
    }
}

#[test]
fn side_receives_many_messages_in_one_read() {
    for side in SIDES {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200usize {
            let payload = pattern(i);
            wire.extend(frame_to(side, FIN | BINARY, &payload));
            expected.push(Event::Message(Message::binary(payload)));
        }
        let mut whole = proto(side);
        assert_eq!(feed(&mut whole, &wire), expected);
        let mut bytewise = proto(side);
        assert_eq!(feed_bytewise(&mut bytewise, &wire), expected);
    }
}

#[test]
fn side_receives_binary_with_arbitrary_bytes() {
    for side in SIDES {
        let payload: Vec<u8> = (0..=255).collect();
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | BINARY, &payload)),
            [Event::Message(Message::binary(payload))]
        );
        assert_eq!(proto.close_error(), None);
    }
}

#[test]
fn side_receives_reserved_bits() {
    for side in SIDES {
        for rsv in [0x40, 0x20, 0x10, 0x70] {
            for opcode in [TEXT, BINARY, PING] {
                let mut proto = proto(side);
                proto.receive_data(&frame_to(side, FIN | rsv | opcode, b"x"));
                assert_failed(&mut proto, ProtocolError::ReservedBitsSet);
            }
        }
    }
}

#[test]
fn side_receives_reserved_bits_on_continuation() {
    for side in SIDES {
        let mut wire = frame_to(side, BINARY, b"a");
        wire.extend(frame_to(side, FIN | 0x40 | CONT, b"b"));
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &wire), []);
        assert_failed(&mut proto, ProtocolError::ReservedBitsSet);
    }
}

#[test]
fn side_receives_reserved_opcodes() {
    for side in SIDES {
        for opcode in [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let mut proto = proto(side);
            // Only the first two bytes are needed to reject the opcode.
            proto.receive_data(&frame_to(side, FIN | opcode, b"abc")[..2]);
            assert_failed(&mut proto, ProtocolError::InvalidOpcode(opcode));
        }
    }
}

#[test]
fn side_receives_64_bit_length_with_top_bit_set() {
    for side in SIDES {
        let mask_bit = if side == sockjet_proto::Side::Server {
            0x80
        } else {
            0
        };
        let mut wire = vec![FIN | BINARY, mask_bit | 127];
        wire.extend((1u64 << 63).to_be_bytes());
        // Unlimited sizes, so that only the top bit is wrong.
        let config = Config::default()
            .max_message_size(None)
            .max_frame_size(None);
        let mut proto = proto_with(side, config);
        proto.receive_data(&wire);
        assert_failed(&mut proto, ProtocolError::InvalidPayloadLength);
    }
}

#[test]
fn side_receives_binary_message_after_text_message() {
    for side in SIDES {
        let mut wire = frame_to(side, FIN | TEXT, b"t");
        wire.extend(frame_to(side, FIN | BINARY, b"b"));
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &wire),
            [
                Event::Message(Message::text("t")),
                Event::Message(Message::binary(&b"b"[..]))
            ]
        );
    }
}

#[test]
fn server_receives_binary_through_receive_buffer() {
    // Drivers may read straight into the input buffer.
    let payload = pattern(10_000);
    let wire = masked(FIN | BINARY, &payload);
    let mut server = server();
    let mut all = Vec::new();
    for piece in wire.chunks(3000) {
        let buffer = server.receive_buffer();
        assert!(buffer.capacity() - buffer.len() >= piece.len());
        buffer.extend_from_slice(piece);
        all.extend(events(&mut server));
    }
    assert_eq!(all, [Event::Message(Message::binary(payload))]);
}
