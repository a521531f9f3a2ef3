//! RFC 6455 §5.4: fragmented messages are reassembled; continuation frames must follow a
//! non-final data frame and nothing else; control frames may be interleaved.

mod common;

use common::*;
use sockjet_proto::{CloseCode, CloseFrame, Event, Message, ProtocolError, State};

#[test]
fn server_receives_fragmented_text() {
    let mut server = server();
    let mut wire = masked(TEXT, b"Hel");
    wire.extend(masked(FIN | CONT, b"lo"));
    // RFC 6455 §5.7: "A fragmented unmasked text message": 0x01 0x03 "Hel", 0x80 0x02 "lo".
    assert_eq!(
        feed(&mut server, &wire),
        [Event::Message(Message::text("Hello"))]
    );
}

#[test]
fn client_receives_fragmented_text() {
    let mut client = client();
    // The exact bytes of RFC 6455 §5.7.
    let wire = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(
        feed(&mut client, &wire),
        [Event::Message(Message::text("Hello"))]
    );
}

#[test]
fn side_receives_fragmented_binary_in_many_pieces() {
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = frame_to(side, BINARY, &[0]);
        let mut expected = vec![0u8];
        for i in 1..50u8 {
            wire.extend(frame_to(side, CONT, &[i, i]));
            expected.extend([i, i]);
        }
        wire.extend(frame_to(side, FIN | CONT, &[0xff]));
        expected.push(0xff);
        assert_eq!(
            feed(&mut proto, &wire),
            [Event::Message(Message::binary(expected))],
            "{side:?}"
        );
        assert_eq!(proto.close_error(), None);
    }
}

#[test]
fn side_reports_nothing_until_final_fragment() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &frame_to(side, BINARY, b"ab")), []);
        assert_eq!(feed(&mut proto, &frame_to(side, CONT, b"cd")), []);
        assert_eq!(proto.buffered_len(), 0, "complete fragments are consumed");
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | CONT, b"ef")),
            [Event::Message(Message::binary(&b"abcdef"[..]))]
        );
    }
}

#[test]
fn side_receives_empty_fragments() {
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = frame_to(side, TEXT, b"");
        wire.extend(frame_to(side, CONT, b""));
        wire.extend(frame_to(side, CONT, b"x"));
        wire.extend(frame_to(side, FIN | CONT, b""));
        // An empty message made of an empty first and final fragment, too.
        wire.extend(frame_to(side, BINARY, b""));
        wire.extend(frame_to(side, FIN | CONT, b""));
        assert_eq!(
            feed(&mut proto, &wire),
            [
                Event::Message(Message::text("x")),
                Event::Message(Message::binary(&b""[..]))
            ],
            "{side:?}"
        );
    }
}

#[test]
fn side_receives_consecutive_fragmented_messages() {
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = Vec::new();
        for word in ["one", "two", "three"] {
            let (a, b) = word.split_at(1);
            wire.extend(frame_to(side, TEXT, a.as_bytes()));
            wire.extend(frame_to(side, FIN | CONT, b.as_bytes()));
            wire.extend(frame_to(side, FIN | BINARY, word.as_bytes()));
        }
        assert_eq!(
            feed_bytewise(&mut proto, &wire),
            [
                Event::Message(Message::text("one")),
                Event::Message(Message::binary(&b"one"[..])),
                Event::Message(Message::text("two")),
                Event::Message(Message::binary(&b"two"[..])),
                Event::Message(Message::text("three")),
                Event::Message(Message::binary(&b"three"[..])),
            ]
        );
    }
}

#[test]
fn side_receives_continuation_without_start() {
    for side in SIDES {
        for first in [CONT, FIN | CONT] {
            let mut proto = proto(side);
            proto.receive_data(&frame_to(side, first, b"x"));
            assert_failed(&mut proto, ProtocolError::UnexpectedContinuation);
        }
    }
}

#[test]
fn side_receives_continuation_after_complete_message() {
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = frame_to(side, TEXT, b"a");
        wire.extend(frame_to(side, FIN | CONT, b"b"));
        wire.extend(frame_to(side, FIN | CONT, b"c"));
        assert_eq!(
            feed(&mut proto, &wire),
            [Event::Message(Message::text("ab"))]
        );
        assert_failed(&mut proto, ProtocolError::UnexpectedContinuation);
    }
}

#[test]
fn side_receives_new_message_inside_fragmented_one() {
    for side in SIDES {
        for start in [TEXT, BINARY] {
            for next in [TEXT, BINARY, FIN | TEXT, FIN | BINARY] {
                let mut proto = proto(side);
                let mut wire = frame_to(side, start, b"a");
                wire.extend(frame_to(side, next, b"b"));
                proto.receive_data(&wire);
                assert_failed(&mut proto, ProtocolError::ExpectedContinuation);
            }
        }
    }
}

#[test]
fn side_receives_pong_between_fragments() {
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = frame_to(side, BINARY, b"a");
        wire.extend(frame_to(side, FIN | PONG, b"p1"));
        wire.extend(frame_to(side, CONT, b"b"));
        wire.extend(frame_to(side, FIN | PONG, b"p2"));
        wire.extend(frame_to(side, FIN | CONT, b"c"));
        assert_eq!(
            feed(&mut proto, &wire),
            [
                Event::Pong("p1".into()),
                Event::Pong("p2".into()),
                Event::Message(Message::binary(&b"abc"[..])),
            ]
        );
        assert!(proto.outgoing().is_empty());
    }
}

#[test]
fn side_receives_close_inside_fragmented_message() {
    // RFC 6455 §5.4: control frames may be injected in the middle of a fragmented
    // message. The close ends the connection; the unfinished message is dropped.
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = frame_to(side, TEXT, b"unfinished");
        wire.extend(frame_to(side, FIN | CLOSE, &close_payload(1001, b"")));
        wire.extend(frame_to(side, FIN | CONT, b"ignored"));
        assert_eq!(
            feed(&mut proto, &wire),
            [Event::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                ""
            )))]
        );
        assert_eq!(proto.state(), State::Closing);
        assert_eq!(proto.close_error(), None);
        assert_eq!(proto.buffered_len(), 0);
    }
}

#[test]
fn side_receives_fragmented_message_split_everywhere() {
    for side in SIDES {
        let mut wire = frame_to(side, TEXT, "ü".as_bytes());
        wire.extend(frame_to(side, FIN | PING, b"!"));
        wire.extend(frame_to(side, CONT, b"ber"));
        wire.extend(frame_to(side, FIN | CONT, "-€".as_bytes()));
        for cut in 0..=wire.len() {
            let mut proto = proto(side);
            let mut all = feed(&mut proto, &wire[..cut]);
            all.extend(feed(&mut proto, &wire[cut..]));
            assert_eq!(
                all,
                [
                    Event::Ping("!".into()),
                    Event::Message(Message::text("über-€"))
                ],
                "{side:?} cut {cut}"
            );
        }
    }
}
