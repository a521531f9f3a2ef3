//! RFC 6455 §5.1 and §5.3: clients mask every frame, servers never do, and each side
//! fails the connection on a frame masked the wrong way.

mod common;

use common::*;
use sockjet_proto::{
    Bytes, Config, Event, Message, Protocol, ProtocolError, Side,
    frame::{FrameHeader, OpCode},
};

/// RFC 6455 §5.7: "A single-frame masked text message (contains "Hello")".
const RFC_MASKED_HELLO: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
/// RFC 6455 §5.7: "A single-frame unmasked text message (contains "Hello")".
const RFC_UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];

#[test]
fn server_receives_masked_frame() {
    let mut server = server();
    assert_eq!(
        feed(&mut server, &RFC_MASKED_HELLO),
        [Event::Message(Message::text("Hello"))]
    );
    assert_eq!(server.close_error(), None);
    assert!(server.outgoing().is_empty());
}

#[test]
fn client_receives_unmasked_frame() {
    let mut client = client();
    assert_eq!(
        feed(&mut client, &RFC_UNMASKED_HELLO),
        [Event::Message(Message::text("Hello"))]
    );
    assert_eq!(client.close_error(), None);
    assert!(client.outgoing().is_empty());
}

#[test]
fn server_receives_unmasked_frame() {
    let mut server = server();
    server.receive_data(&RFC_UNMASKED_HELLO);
    assert_failed(&mut server, ProtocolError::IncorrectMasking);
}

#[test]
fn client_receives_masked_frame() {
    let mut client = client();
    client.receive_data(&RFC_MASKED_HELLO);
    assert_failed(&mut client, ProtocolError::IncorrectMasking);
}

#[test]
fn server_receives_unmasked_control_frame() {
    for first in [FIN | PING, FIN | PONG, FIN | CLOSE] {
        let mut server = server();
        server.receive_data(&unmasked(first, b""));
        // No pong and no close echo: only the 1002 close frame.
        assert_failed(&mut server, ProtocolError::IncorrectMasking);
    }
}

#[test]
fn client_receives_masked_control_frame() {
    for first in [FIN | PING, FIN | PONG, FIN | CLOSE] {
        let mut client = client();
        client.receive_data(&masked(first, b""));
        assert_failed(&mut client, ProtocolError::IncorrectMasking);
    }
}

#[test]
fn server_receives_unmasked_frame_after_valid_one() {
    let mut server = server();
    let mut wire = masked(FIN | BINARY, b"ok");
    wire.extend(unmasked(FIN | BINARY, b"bad"));
    wire.extend(masked(FIN | BINARY, b"never"));
    assert_eq!(
        feed(&mut server, &wire),
        [Event::Message(Message::binary(&b"ok"[..]))]
    );
    assert_failed(&mut server, ProtocolError::IncorrectMasking);
}

#[test]
fn server_receives_masked_frame_with_zero_key() {
    let mut server = server();
    let wire = raw_frame(FIN | BINARY, Some([0; 4]), b"\x01\x02\x03");
    assert_eq!(
        feed(&mut server, &wire),
        [Event::Message(Message::binary(&b"\x01\x02\x03"[..]))]
    );
}

#[test]
fn server_unmasks_every_length_and_key_phase() {
    let key = [0xff, 0x00, 0xaa, 0x55];
    for len in 0..=80usize {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let mut server = server();
        let events = feed(&mut server, &raw_frame(FIN | BINARY, Some(key), &payload));
        assert_eq!(
            events,
            [Event::Message(Message::binary(payload))],
            "len {len}"
        );
    }
}

#[test]
fn server_unmasks_binary_split_at_every_offset() {
    let payload: Vec<u8> = (0..300u32).map(|i| (i * 7 + 1) as u8).collect();
    let wire = raw_frame(FIN | BINARY, Some([0x6d, 0xb6, 0xb2, 0x80]), &payload);
    for cut in 0..=wire.len() {
        let mut server = server();
        let mut all = feed(&mut server, &wire[..cut]);
        all.extend(feed(&mut server, &wire[cut..]));
        assert_eq!(
            all,
            [Event::Message(Message::binary(payload.clone()))],
            "cut {cut}"
        );
    }
}

#[test]
fn server_unmasks_text_delivered_in_uneven_pieces() {
    // Text payloads are unmasked in place as they arrive (to validate UTF-8 early), so
    // the key phase must follow the payload offset across pieces of every size.
    let text = "κόσμε €𝄞 ".repeat(40);
    let wire = raw_frame(FIN | TEXT, Some([0x12, 0x34, 0x56, 0x78]), text.as_bytes());
    for step in [1, 2, 3, 5, 7, 13, 64] {
        let mut server = server();
        let mut all = Vec::new();
        for piece in wire.chunks(step) {
            all.extend(feed(&mut server, piece));
        }
        assert_eq!(
            all,
            [Event::Message(Message::text(text.as_str()))],
            "step {step}"
        );
    }
}

#[test]
fn server_reassembles_fragments_with_different_keys() {
    let mut wire = raw_frame(TEXT, Some([1, 2, 3, 4]), b"frag");
    wire.extend(raw_frame(CONT, Some([9, 8, 7, 6]), b"men"));
    wire.extend(raw_frame(FIN | CONT, Some([0xaa; 4]), b"ted"));
    let mut server = server();
    assert_eq!(
        feed_bytewise(&mut server, &wire),
        [Event::Message(Message::text("fragmented"))]
    );
}

#[test]
fn client_sends_fresh_key_per_frame() {
    let mut client = Protocol::new(Side::Client, Config::default()).with_mask_keys(CountingKeys(0));
    client.send_text("a").unwrap();
    client.send_binary(b"bc").unwrap();
    client.send_ping(b"d").unwrap();
    let wire = drain(&mut client);
    assert_eq!(
        wire,
        [
            0x81,
            0x81,
            0,
            1,
            2,
            3,
            b'a', // key 0 1 2 3
            0x82,
            0x82,
            4,
            5,
            6,
            7,
            b'b' ^ 4,
            b'c' ^ 5, // key 4 5 6 7
            0x89,
            0x81,
            8,
            9,
            10,
            11,
            b'd' ^ 8, // key 8 9 10 11
        ]
    );
}

#[test]
fn client_masks_every_frame_type() {
    let mut client = client();
    client.send_text("t").unwrap();
    client.send_binary(b"b").unwrap();
    client.send_ping(b"p").unwrap();
    client.send_pong(b"q").unwrap();
    client
        .send_fragment(OpCode::Text, Bytes::from_static(b"f"), false)
        .unwrap();
    client
        .send_fragment(OpCode::Continuation, Bytes::from_static(b"g"), true)
        .unwrap();
    client
        .send_close(sockjet_proto::CloseCode::NORMAL_CLOSURE, "")
        .unwrap();
    let frames = sent_frames(&mut client);
    assert_eq!(frames.len(), 7);
    for frame in &frames {
        assert_eq!(frame.header.mask, Some(KEY), "{frame:?}");
    }
    let payloads: Vec<&[u8]> = frames.iter().map(|f| f.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        [&b"t"[..], b"b", b"p", b"q", b"f", b"g", b"\x03\xe8"]
    );
}

#[test]
fn server_never_masks() {
    let mut server = server();
    server.send_text("t").unwrap();
    server.send_binary(b"b").unwrap();
    server
        .send_message(Message::binary(vec![7u8; 5000]))
        .unwrap();
    server.send_ping(b"p").unwrap();
    server.send_pong(b"q").unwrap();
    server
        .send_close(sockjet_proto::CloseCode::NORMAL_CLOSURE, "")
        .unwrap();
    let wire = drain(&mut server);
    let frames = decode_frames(&wire);
    assert_eq!(frames.len(), 6);
    for frame in &frames {
        assert_eq!(frame.header.mask, None, "{frame:?}");
    }
    assert_eq!(frames[2].payload, vec![7u8; 5000]);
}

#[test]
fn client_output_decodes_with_frame_header_decoder() {
    // What a client writes is exactly what a server reads.
    let mut client = client();
    client.send_binary(&[0u8; 200]).unwrap();
    let wire = drain(&mut client);
    let (header, len) = FrameHeader::decode(&wire).unwrap().unwrap();
    assert_eq!(len, 8);
    assert_eq!(header.mask, Some(KEY));
    assert_eq!(header.payload_len, 200);
    // Zeros masked are the key repeated.
    assert!(wire[8..].chunks(4).all(|c| c == KEY));
    let mut server = server();
    assert_eq!(
        feed(&mut server, &wire),
        [Event::Message(Message::binary(vec![0u8; 200]))]
    );
}
