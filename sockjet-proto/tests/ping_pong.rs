//! RFC 6455 §5.5, §5.5.2 and §5.5.3: pings are answered with a pong carrying the same
//! payload (but not after a close frame); control frames are at most 125 bytes, never
//! fragmented, and may be interleaved inside a fragmented message.

mod common;

use common::*;
use sockjet_proto::{ApiMisuse, CloseCode, Event, Message, ProtocolError, State};

#[test]
fn server_answers_ping_with_same_payload() {
    let mut server = server();
    // RFC 6455 §5.7: "Unmasked Ping request and masked Ping response", reversed: the
    // client's ping is masked, the server's pong is not.
    assert_eq!(
        feed(&mut server, &masked(FIN | PING, b"Hello")),
        [Event::Ping("Hello".into())]
    );
    assert_eq!(drain(&mut server), b"\x8a\x05Hello");
}

#[test]
fn client_answers_ping_with_masked_pong() {
    let mut client = client();
    // RFC 6455 §5.7: 0x89 0x05 "Hello" ...
    assert_eq!(
        feed(&mut client, b"\x89\x05Hello"),
        [Event::Ping("Hello".into())]
    );
    // ... answered by 0x8a 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58.
    assert_eq!(
        drain(&mut client),
        [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
}

#[test]
fn side_answers_empty_and_longest_pings() {
    for side in SIDES {
        for len in [0, 1, 125] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let mut proto = proto(side);
            assert_eq!(
                feed(&mut proto, &frame_to(side, FIN | PING, &payload)),
                [Event::Ping(payload.clone().into())]
            );
            assert_eq!(drain(&mut proto), frame_from(side, FIN | PONG, &payload));
        }
    }
}

#[test]
fn side_answers_each_ping() {
    for side in SIDES {
        let mut wire = Vec::new();
        let mut expected_out = Vec::new();
        for i in 0..10u8 {
            wire.extend(frame_to(side, FIN | PING, &[i]));
            expected_out.extend(frame_from(side, FIN | PONG, &[i]));
        }
        let mut proto = proto(side);
        let events = feed_bytewise(&mut proto, &wire);
        assert_eq!(events.len(), 10);
        assert_eq!(drain(&mut proto), expected_out);
    }
}

#[test]
fn side_receives_pong_without_answering() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | PONG, b"unsolicited")),
            [Event::Pong("unsolicited".into())]
        );
        assert!(proto.outgoing().is_empty());
        assert_eq!(proto.state(), State::Open);
    }
}

#[test]
fn side_receives_control_frame_of_126_bytes() {
    for side in SIDES {
        for opcode in [PING, PONG, CLOSE] {
            let mut proto = proto(side);
            // The 16-bit length form; the header alone is enough to fail.
            let wire = frame_to(side, FIN | opcode, &[0; 126]);
            proto.receive_data(&wire[..wire.len() - 126]);
            assert_failed(&mut proto, ProtocolError::ControlFrameTooLong);
        }
    }
}

#[test]
fn side_receives_control_frame_with_non_minimal_length() {
    // 125 bytes written in the 16-bit form is still a 125-byte control frame.
    for side in SIDES {
        let mask_bit = if side == sockjet_proto::Side::Server {
            0x80
        } else {
            0
        };
        let mut wire = vec![FIN | PING, mask_bit | 126, 0, 125];
        if mask_bit != 0 {
            wire.extend([0; 4]);
        }
        wire.extend([b'p'; 125]);
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &wire),
            [Event::Ping(vec![b'p'; 125].into())]
        );
    }
}

#[test]
fn side_receives_fragmented_ping() {
    for side in SIDES {
        for opcode in [PING, PONG, CLOSE] {
            let mut proto = proto(side);
            proto.receive_data(&frame_to(side, opcode, b"a"));
            assert_failed(&mut proto, ProtocolError::FragmentedControlFrame);
        }
    }
}

#[test]
fn side_receives_ping_interleaved_in_fragmented_message() {
    for side in SIDES {
        let mut wire = frame_to(side, TEXT, b"frag");
        wire.extend(frame_to(side, FIN | PING, b"p1"));
        wire.extend(frame_to(side, CONT, b"men"));
        wire.extend(frame_to(side, FIN | PING, b"p2"));
        wire.extend(frame_to(side, FIN | CONT, b"ted"));
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &wire),
            [
                Event::Ping("p1".into()),
                Event::Ping("p2".into()),
                Event::Message(Message::text("fragmented")),
            ]
        );
        let mut expected = frame_from(side, FIN | PONG, b"p1");
        expected.extend(frame_from(side, FIN | PONG, b"p2"));
        assert_eq!(drain(&mut proto), expected);
    }
}

#[test]
fn side_does_not_answer_ping_after_receiving_close() {
    for side in SIDES {
        let mut wire = frame_to(side, FIN | CLOSE, &close_payload(1000, b""));
        wire.extend(frame_to(side, FIN | PING, b"late"));
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &wire).len(), 1);
        // Only the close echo.
        assert_closing(&mut proto, CloseCode::NORMAL_CLOSURE);
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_does_not_answer_ping_after_sending_close() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        assert_closing(&mut proto, CloseCode::NORMAL_CLOSURE);
        // The peer had not seen our close yet when it sent its ping.
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | PING, b"p")),
            [Event::Ping("p".into())]
        );
        assert!(proto.outgoing().is_empty(), "no pong after our close frame");
    }
}

#[test]
fn side_sends_ping_and_pong() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_ping(b"are you there").unwrap();
        proto.send_pong(b"heartbeat").unwrap();
        let mut expected = frame_from(side, FIN | PING, b"are you there");
        expected.extend(frame_from(side, FIN | PONG, b"heartbeat"));
        assert_eq!(drain(&mut proto), expected);
    }
}

#[test]
fn side_sends_control_frame_over_125_bytes() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(
            proto.send_ping(&[0; 126]),
            Err(ApiMisuse::ControlFrameTooLong)
        );
        assert_eq!(
            proto.send_pong(&[0; 126]),
            Err(ApiMisuse::ControlFrameTooLong)
        );
        assert!(proto.outgoing().is_empty());
        proto.send_ping(&[0; 125]).unwrap();
        proto.send_pong(&[0; 125]).unwrap();
        assert_eq!(sent_frames(&mut proto).len(), 2);
    }
}

#[test]
fn side_sends_ping_after_close() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        drain(&mut proto);
        assert_eq!(proto.send_ping(b""), Err(ApiMisuse::SendAfterClose));
        assert_eq!(proto.send_pong(b""), Err(ApiMisuse::SendAfterClose));
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_sends_ping_inside_fragmented_message() {
    for side in SIDES {
        let mut proto = proto(side);
        proto
            .send_fragment(
                sockjet_proto::frame::OpCode::Binary,
                "a".as_bytes().to_vec().into(),
                false,
            )
            .unwrap();
        proto.send_ping(b"p").unwrap();
        proto
            .send_fragment(
                sockjet_proto::frame::OpCode::Continuation,
                "b".as_bytes().to_vec().into(),
                true,
            )
            .unwrap();
        let mut expected = frame_from(side, BINARY, b"a");
        expected.extend(frame_from(side, FIN | PING, b"p"));
        expected.extend(frame_from(side, FIN | CONT, b"b"));
        assert_eq!(drain(&mut proto), expected);
    }
}
