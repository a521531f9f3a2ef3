//! The `Extension` trait as the protocol uses it: a toy extension on RSV2 shows that the
//! reserved-bit rules, limits and UTF-8 checks are the protocol's, whatever the extension.

mod common;

use common::{assert_closing, feed, frame_to, sent_frames, server};
use sockjet_proto::{
    BytesMut, CloseCode, Event, Message, Protocol, Side,
    extension::{DecodeError, Extension},
    frame::{OpCode, RSV1, RSV2},
};

/// XORs every byte with 0x20 (ASCII case swap) and refuses payloads starting with `!`.
/// Messages shorter than 2 bytes are left alone.
#[derive(Debug)]
struct CaseSwap;

impl Extension for CaseSwap {
    fn name(&self) -> &'static str {
        "x-case-swap"
    }

    fn rsv(&self) -> u8 {
        RSV2
    }

    fn encode(&mut self, payload: &[u8], out: &mut BytesMut) -> bool {
        if payload.len() < 2 {
            return false;
        }
        out.extend(payload.iter().map(|b| b ^ 0x20));
        true
    }

    fn decode(
        &mut self,
        payload: &[u8],
        _fin: bool,
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), DecodeError> {
        if payload.first() == Some(&b'!') {
            return Err(DecodeError::Invalid);
        }
        for &byte in payload {
            if out.len() == max_len {
                return Err(DecodeError::TooBig);
            }
            out.extend_from_slice(&[byte ^ 0x20]);
        }
        Ok(())
    }
}

fn server_with_extension() -> Protocol {
    let mut server = server();
    server.set_extension(Box::new(CaseSwap));
    server
}

/// First header byte: FIN, the given reserved bits and opcode.
fn first_byte(fin: bool, rsv: u8, opcode: OpCode) -> u8 {
    (u8::from(fin) << 7) | (rsv << 4) | opcode.as_u8()
}

#[test]
fn outgoing_messages_go_through_the_extension_with_its_bit() {
    let mut server = server_with_extension();
    server.send_message(Message::text("Hello")).unwrap();
    server.send_message(Message::text("x")).unwrap();
    server
        .send_message_with(Message::text("Plain"), false)
        .unwrap();
    let frames = sent_frames(&mut server);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].header.rsv, RSV2);
    assert_eq!(&frames[0].payload[..], b"hELLO");
    // Below the extension's own threshold, and opted out: sent as is, without the bit.
    assert_eq!(frames[1].header.rsv, 0);
    assert_eq!(&frames[1].payload[..], b"x");
    assert_eq!(frames[2].header.rsv, 0);
    assert_eq!(&frames[2].payload[..], b"Plain");
    assert!(
        !server.is_compressing(),
        "only permessage-deflate compresses"
    );
    assert_eq!(server.extension().map(|e| e.name()), Some("x-case-swap"));
}

#[test]
fn incoming_fragmented_message_is_decoded_frame_by_frame() {
    let mut server = server_with_extension();
    let mut wire = frame_to(Side::Server, first_byte(false, RSV2, OpCode::Text), b"hEL");
    // RSV2 only on the first frame; the continuation still goes through the extension.
    wire.extend(frame_to(
        Side::Server,
        first_byte(true, 0, OpCode::Continuation),
        b"LO",
    ));
    // A message without the bit is not decoded.
    wire.extend(frame_to(
        Side::Server,
        first_byte(true, 0, OpCode::Text),
        b"as is",
    ));
    assert_eq!(
        feed(&mut server, &wire),
        [
            Event::Message(Message::text("Hello")),
            Event::Message(Message::text("as is")),
        ]
    );
}

#[test]
fn another_reserved_bit_fails_with_1002() {
    let mut server = server_with_extension();
    feed(
        &mut server,
        &frame_to(Side::Server, first_byte(true, RSV1, OpCode::Text), b"hi"),
    );
    assert_closing(&mut server, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn the_extension_bit_on_a_control_frame_fails_with_1002() {
    let mut server = server_with_extension();
    feed(
        &mut server,
        &frame_to(Side::Server, first_byte(true, RSV2, OpCode::Ping), b"hi"),
    );
    assert_closing(&mut server, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn the_extension_bit_on_a_continuation_fails_with_1002() {
    let mut server = server_with_extension();
    let mut wire = frame_to(Side::Server, first_byte(false, RSV2, OpCode::Text), b"hE");
    wire.extend(frame_to(
        Side::Server,
        first_byte(true, RSV2, OpCode::Continuation),
        b"LLO",
    ));
    feed(&mut server, &wire);
    assert_closing(&mut server, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn the_bit_without_an_extension_fails_with_1002() {
    let mut server = server();
    feed(
        &mut server,
        &frame_to(Side::Server, first_byte(true, RSV2, OpCode::Text), b"hi"),
    );
    assert_closing(&mut server, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn decode_errors_map_to_close_codes() {
    let mut server = server_with_extension();
    feed(
        &mut server,
        &frame_to(Side::Server, first_byte(true, RSV2, OpCode::Binary), b"!x"),
    );
    assert_closing(&mut server, CloseCode::INVALID_DATA);

    let config = sockjet_proto::Config::default().max_message_size(Some(4));
    let mut server = common::server_with(config);
    server.set_extension(Box::new(CaseSwap));
    // Within the limit on the wire for a decoded size that only the extension knows:
    // the protocol gives it the limit, and its TooBig is 1009.
    let mut wire = frame_to(
        Side::Server,
        first_byte(false, RSV2, OpCode::Binary),
        b"abc",
    );
    wire.extend(frame_to(
        Side::Server,
        first_byte(true, 0, OpCode::Continuation),
        b"de",
    ));
    feed(&mut server, &wire);
    assert_closing(&mut server, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn decoded_text_is_validated_as_utf8() {
    let mut server = server_with_extension();
    // "é" (C3 A9) is valid as sent, but decodes to E3 89, a sequence that never completes.
    feed(
        &mut server,
        &frame_to(
            Side::Server,
            first_byte(true, RSV2, OpCode::Text),
            &[0xc3, 0xa9],
        ),
    );
    assert_closing(&mut server, CloseCode::INVALID_DATA);
}
