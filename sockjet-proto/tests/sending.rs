//! Sending: exact bytes on the wire (RFC 6455 §5.2, §5.7), fragment sequencing (§5.4),
//! splitting by `max_send_frame_size`, nothing after the close frame (§5.5.1), and the
//! zero-copy path for large server payloads.

mod common;

use std::io::IoSlice;

use common::*;
use sockjet_proto::{
    ApiMisuse, Bytes, CloseCode, Config, Event, Message, Outgoing, Protocol, State, bytes::Buf,
    frame::OpCode,
};

/// Every kind of data send, for "must fail" checks.
fn try_all_data_sends(proto: &mut Protocol) -> [Result<(), ApiMisuse>; 4] {
    [
        proto.send_text("x"),
        proto.send_binary(b"x"),
        proto.send_message(Message::text("x")),
        proto.send_fragment(OpCode::Binary, Bytes::from_static(b"x"), false),
    ]
}

#[test]
fn server_sends_text_exact_bytes() {
    let mut server = server();
    server.send_text("Hello").unwrap();
    // RFC 6455 §5.7: "A single-frame unmasked text message".
    assert_eq!(drain(&mut server), b"\x81\x05Hello");
}

#[test]
fn client_sends_text_masked_with_fixed_key() {
    let mut client = client();
    client.send_text("Hello").unwrap();
    // RFC 6455 §5.7: "A single-frame masked text message".
    assert_eq!(
        drain(&mut client),
        [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
}

#[test]
fn client_sends_binary_masked_with_fixed_key() {
    for (len, header) in [
        (0usize, vec![0x82, 0x80]),
        (125, vec![0x82, 0x80 | 125]),
        (256, vec![0x82, 0xFE, 0x01, 0x00]),
        (70_000, vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]),
    ] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
        let mut expected = header;
        expected.extend(KEY);
        expected.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
        let mut client = client();
        client.send_binary(&payload).unwrap();
        assert_eq!(drain(&mut client), expected, "len {len}");
        // send_message takes the same path for clients, without touching the input.
        let shared = Bytes::from(payload.clone());
        let mut client = self::client();
        client
            .send_message(Message::Binary(shared.clone()))
            .unwrap();
        assert_eq!(drain(&mut client), expected, "len {len}");
        assert_eq!(
            shared, payload,
            "the caller's bytes are not masked in place"
        );
    }
}

#[test]
fn server_sends_binary_length_encodings() {
    for (len, header) in [
        (0usize, vec![0x82, 0x00]),
        (125, vec![0x82, 125]),
        (126, vec![0x82, 126, 0, 126]),
        (0xFFFF, vec![0x82, 126, 0xFF, 0xFF]),
        (0x1_0000, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ] {
        let mut server = server();
        server.send_binary(&vec![0xAB; len]).unwrap();
        let wire = drain(&mut server);
        assert_eq!(wire[..header.len()], header[..], "len {len}");
        assert_eq!(wire.len(), header.len() + len);
        assert!(wire[header.len()..].iter().all(|&b| b == 0xAB));
    }
}

#[test]
fn side_sends_after_close() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        let before = drain(&mut proto);
        for result in try_all_data_sends(&mut proto) {
            assert_eq!(result, Err(ApiMisuse::SendAfterClose));
        }
        assert!(proto.outgoing().is_empty());
        assert_eq!(
            before,
            frame_from(side, FIN | CLOSE, &close_payload(1000, b""))
        );
    }
}

#[test]
fn side_sends_after_receiving_close() {
    for side in SIDES {
        let mut proto = proto(side);
        feed(&mut proto, &frame_to(side, FIN | CLOSE, b""));
        drain(&mut proto);
        for result in try_all_data_sends(&mut proto) {
            assert_eq!(result, Err(ApiMisuse::SendAfterClose));
        }
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_after_failure() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_data(&frame_to(side, FIN | 0x0B, b""));
        assert_eq!(proto.next_event(), None);
        drain(&mut proto);
        for result in try_all_data_sends(&mut proto) {
            assert_eq!(result, Err(ApiMisuse::SendAfterClose));
        }
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_fragments_in_sequence() {
    for side in SIDES {
        let mut proto = proto(side);
        proto
            .send_fragment(OpCode::Text, Bytes::from_static(b"Hel"), false)
            .unwrap();
        proto
            .send_fragment(OpCode::Continuation, Bytes::from_static(b"l"), false)
            .unwrap();
        proto
            .send_fragment(OpCode::Continuation, Bytes::from_static(b"o"), true)
            .unwrap();
        // A new message may start after the last fragment.
        proto
            .send_fragment(OpCode::Binary, Bytes::from_static(b"!"), true)
            .unwrap();
        let mut expected = frame_from(side, TEXT, b"Hel");
        expected.extend(frame_from(side, CONT, b"l"));
        expected.extend(frame_from(side, FIN | CONT, b"o"));
        expected.extend(frame_from(side, FIN | BINARY, b"!"));
        let wire = drain(&mut proto);
        assert_eq!(wire, expected);
        let mut peer = proto_with(peer_of(side), Config::default());
        assert_eq!(
            feed(&mut peer, &wire),
            [
                Event::Message(Message::text("Hello")),
                Event::Message(Message::binary(&b"!"[..]))
            ]
        );
    }
}

#[test]
fn side_sends_continuation_without_start() {
    for side in SIDES {
        let mut proto = proto(side);
        for fin in [false, true] {
            assert_eq!(
                proto.send_fragment(OpCode::Continuation, Bytes::new(), fin),
                Err(ApiMisuse::BadFragmentSequence)
            );
        }
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_new_fragmented_message_inside_one() {
    for side in SIDES {
        let mut proto = proto(side);
        proto
            .send_fragment(OpCode::Binary, Bytes::from_static(b"a"), false)
            .unwrap();
        drain(&mut proto);
        for opcode in [OpCode::Text, OpCode::Binary] {
            for fin in [false, true] {
                assert_eq!(
                    proto.send_fragment(opcode, Bytes::new(), fin),
                    Err(ApiMisuse::BadFragmentSequence)
                );
            }
        }
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_control_opcode_as_fragment() {
    for side in SIDES {
        let mut proto = proto(side);
        for opcode in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
            assert_eq!(
                proto.send_fragment(opcode, Bytes::new(), true),
                Err(ApiMisuse::BadFragmentSequence)
            );
        }
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_continuation_after_last_fragment() {
    for side in SIDES {
        let mut proto = proto(side);
        proto
            .send_fragment(OpCode::Text, Bytes::from_static(b"a"), false)
            .unwrap();
        proto
            .send_fragment(OpCode::Continuation, Bytes::from_static(b"b"), true)
            .unwrap();
        drain(&mut proto);
        assert_eq!(
            proto.send_fragment(OpCode::Continuation, Bytes::from_static(b"c"), true),
            Err(ApiMisuse::BadFragmentSequence)
        );
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_whole_message_inside_fragmented_one() {
    // RFC 6455 §5.4: the fragments of one message must not be interleaved with another
    // message. ApiMisuse::BadFragmentSequence documents "a new message was started while
    // one was open".
    for side in SIDES {
        let mut proto = proto(side);
        proto
            .send_fragment(OpCode::Text, Bytes::from_static(b"a"), false)
            .unwrap();
        drain(&mut proto);
        assert_eq!(
            proto.send_text("b"),
            Err(ApiMisuse::BadFragmentSequence),
            "{side:?} send_text"
        );
        assert_eq!(
            proto.send_binary(b"b"),
            Err(ApiMisuse::BadFragmentSequence),
            "{side:?} send_binary"
        );
        assert_eq!(
            proto.send_message(Message::binary(&b"b"[..])),
            Err(ApiMisuse::BadFragmentSequence),
            "{side:?} send_message"
        );
        assert!(proto.outgoing().is_empty(), "{side:?}: nothing on the wire");
    }
}

#[test]
fn side_splits_messages_by_max_send_frame_size() {
    for side in SIDES {
        let config = Config::default().max_send_frame_size(Some(4));
        let mut expected = frame_from(side, TEXT, b"hell");
        expected.extend(frame_from(side, CONT, b"o wo"));
        expected.extend(frame_from(side, FIN | CONT, b"rld"));

        let mut proto = proto_with(side, config.clone());
        proto.send_text("hello world").unwrap();
        assert_eq!(drain(&mut proto), expected, "{side:?} send_text");

        let mut proto = proto_with(side, config.clone());
        proto.send_message(Message::text("hello world")).unwrap();
        assert_eq!(drain(&mut proto), expected, "{side:?} send_message");

        let mut expected = frame_from(side, BINARY, b"0123");
        expected.extend(frame_from(side, FIN | CONT, b"4567"));
        let mut proto = proto_with(side, config.clone());
        proto.send_binary(b"01234567").unwrap();
        assert_eq!(drain(&mut proto), expected, "{side:?}: no empty last frame");
        let mut proto = proto_with(side, config.clone());
        proto
            .send_message(Message::binary(&b"01234567"[..]))
            .unwrap();
        assert_eq!(drain(&mut proto), expected, "{side:?}: no empty last frame");

        // Messages that fit, including the empty one, stay whole.
        let mut proto = proto_with(side, config);
        proto.send_binary(b"0123").unwrap();
        proto.send_text("").unwrap();
        proto.send_message(Message::binary(Bytes::new())).unwrap();
        let mut expected = frame_from(side, FIN | BINARY, b"0123");
        expected.extend(frame_from(side, FIN | TEXT, b""));
        expected.extend(frame_from(side, FIN | BINARY, b""));
        assert_eq!(drain(&mut proto), expected);
    }
}

#[test]
fn side_splits_text_inside_code_points() {
    // Fragments of a text message need not be valid UTF-8 on their own; the peer
    // reassembles them.
    for side in SIDES {
        let config = Config::default().max_send_frame_size(Some(4));
        let mut proto = proto_with(side, config);
        let text = "€€€ κόσμε 😀";
        proto.send_text(text).unwrap();
        let wire = drain(&mut proto);
        let frames = decode_frames(&wire);
        assert_eq!(frames.len(), text.len().div_ceil(4));
        assert!(frames.iter().all(|f| f.payload.len() <= 4));
        let mut peer = proto_with(peer_of(side), Config::default());
        assert_eq!(
            feed_bytewise(&mut peer, &wire),
            [Event::Message(Message::text(text))]
        );
    }
}

#[test]
fn server_splits_large_message_without_copying() {
    let config = Config::default().max_send_frame_size(Some(2000));
    let mut server = server_with(config);
    let payload = Bytes::from(vec![5u8; 5000]);
    server
        .send_message(Message::Binary(payload.clone()))
        .unwrap();
    let out = server.outgoing();
    let mut slices = [IoSlice::new(&[]); 8];
    // header, 2000, header, 2000, header + 1000 (copied: 1000 < SHARE_THRESHOLD)
    assert_eq!(out.chunks_vectored(&mut slices), 5);
    assert_eq!(slices[1].as_ptr(), payload.as_ptr());
    assert_eq!(slices[3].as_ptr(), payload[2000..].as_ptr());
    let wire = drain(&mut server);
    let frames = decode_frames(&wire);
    let sizes: Vec<usize> = frames.iter().map(|f| f.payload.len()).collect();
    assert_eq!(sizes, [2000, 2000, 1000]);
}

#[test]
fn server_sends_large_payload_without_copying() {
    for len in [Outgoing::SHARE_THRESHOLD, 16 * 1024, 1 << 20] {
        let payload = Bytes::from(vec![0x42u8; len]);
        let mut server = server();
        server
            .send_message(Message::Binary(payload.clone()))
            .unwrap();
        let out = server.outgoing();
        assert_eq!(
            out.remaining(),
            payload.len() + if len < 0x1_0000 { 4 } else { 10 }
        );
        let header_len = out.chunk().len();
        assert_eq!(out.chunk()[0], 0x82);
        out.advance(header_len);
        // The payload chunk is the caller's buffer itself.
        assert_eq!(out.chunk().as_ptr(), payload.as_ptr(), "len {len}");
        assert_eq!(out.chunk().len(), len);
        out.advance(len);
        assert!(out.is_empty());
    }
}

#[test]
fn server_sends_large_text_and_fragment_without_copying() {
    let text = "z".repeat(4096);
    let message = Message::text(text);
    let Message::Text(shared) = &message else {
        unreachable!()
    };
    let text_ptr = shared.as_bytes().as_ptr();
    let mut server = server();
    server.send_message(message.clone()).unwrap();
    let data = Bytes::from(vec![1u8; 3000]);
    server
        .send_fragment(OpCode::Binary, data.clone(), true)
        .unwrap();
    let out = server.outgoing();
    let mut slices = [IoSlice::new(&[]); 8];
    assert_eq!(out.chunks_vectored(&mut slices), 4);
    assert_eq!(&*slices[0], [0x81, 126, 0x10, 0x00]);
    assert_eq!(slices[1].as_ptr(), text_ptr);
    assert_eq!(&*slices[2], [0x82, 126, 0x0B, 0xB8]);
    assert_eq!(slices[3].as_ptr(), data.as_ptr());
}

#[test]
fn server_copies_small_payload_into_one_buffer() {
    let payload = Bytes::from(vec![1u8; Outgoing::SHARE_THRESHOLD - 1]);
    let mut server = server();
    server
        .send_message(Message::Binary(payload.clone()))
        .unwrap();
    server.send_text("after").unwrap();
    let out = server.outgoing();
    // One coalesced chunk: header, payload, next frame.
    assert_eq!(out.chunk().len(), out.remaining());
    assert_ne!(out.chunk()[4..].as_ptr(), payload.as_ptr());
}

#[test]
fn server_keeps_frame_order_across_shared_and_copied_payloads() {
    let mut server = server();
    server.send_text("first").unwrap();
    server
        .send_message(Message::binary(vec![2u8; 2048]))
        .unwrap();
    server.send_ping(b"third").unwrap();
    server
        .send_message(Message::binary(vec![4u8; 4096]))
        .unwrap();
    server
        .send_close(CloseCode::NORMAL_CLOSURE, "fifth")
        .unwrap();
    // Write the output one byte at a time, as a slow socket would.
    let out = server.outgoing();
    let mut wire = Vec::new();
    for _ in 0..100_000 {
        if !out.has_remaining() {
            break;
        }
        wire.push(out.chunk()[0]);
        out.advance(1);
    }
    let frames = decode_frames(&wire);
    let summary: Vec<(OpCode, usize)> = frames
        .iter()
        .map(|f| (f.header.opcode, f.payload.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (OpCode::Text, 5),
            (OpCode::Binary, 2048),
            (OpCode::Ping, 5),
            (OpCode::Binary, 4096),
            (OpCode::Close, 7),
        ]
    );
    assert_eq!(server.state(), State::Closing);
}

#[test]
fn side_messages_round_trip_to_peer() {
    for side in SIDES {
        let mut proto = proto(side);
        let big = vec![9u8; 100_000];
        proto.send_text("κόσμε").unwrap();
        proto.send_binary(&big).unwrap();
        proto.send_message(Message::binary(big.clone())).unwrap();
        proto.send_ping(b"p").unwrap();
        proto.send_close(CloseCode::GOING_AWAY, "bye").unwrap();
        let wire = drain(&mut proto);
        let mut peer = proto_with(peer_of(side), Config::default());
        let events = feed(&mut peer, &wire);
        assert_eq!(
            events,
            [
                Event::Message(Message::text("κόσμε")),
                Event::Message(Message::binary(big.clone())),
                Event::Message(Message::binary(big)),
                Event::Ping("p".into()),
                Event::Close(Some(sockjet_proto::CloseFrame::new(
                    CloseCode::GOING_AWAY,
                    "bye"
                ))),
            ]
        );
        assert_eq!(peer.side(), peer_of(side));
    }
}
