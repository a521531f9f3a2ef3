//! RFC 6455 §5.6 and §8.1: text messages are UTF-8; invalid UTF-8 fails the connection
//! with 1007, as soon as it is seen (Autobahn 6.4.*), even inside an incomplete frame.

mod common;

use common::*;
use sockjet_proto::{CloseCode, Event, Message, ProtocolError, Side, State};

/// Samples from Autobahn's section 6 and Markus Kuhn's UTF-8 stress test.
const VALID: &[&str] = &[
    "",
    "Hello-µ@ßöäüàá-UTF-8!!",
    "κόσμε",
    "\u{0}",
    "\u{80}",
    "\u{800}",
    "\u{10000}",
    "\u{7f}\u{7ff}\u{ffff}\u{10ffff}",
    "\u{d7ff}\u{e000}\u{fffd}",
    "€𝄞😀",
];

const INVALID: &[&[u8]] = &[
    b"\xff",
    b"\xfe",
    b"\x80",             // lone continuation byte
    b"\xbf",             // lone continuation byte
    b"\xc0\xaf",         // overlong "/"
    b"\xe0\x80\xaf",     // overlong "/"
    b"\xf0\x80\x80\xaf", // overlong "/"
    b"\xc1\xbf",         // overlong U+7F
    b"\xed\xa0\x80",     // surrogate U+D800
    b"\xed\xbf\xbf",     // surrogate U+DFFF
    b"\xf4\x90\x80\x80", // U+110000
    b"\xf5\x80\x80\x80", // lead byte above F4
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // Autobahn 6.3.1
    b"\xe2\x28\xa1",     // E2 followed by ASCII
    b"ok\xc3",           // truncated at the end
    b"\xf0\x9f\x98",     // truncated emoji
];

#[test]
fn side_receives_valid_text() {
    for side in SIDES {
        for text in VALID {
            let mut proto = proto(side);
            assert_eq!(
                feed(&mut proto, &frame_to(side, FIN | TEXT, text.as_bytes())),
                [Event::Message(Message::text(*text))],
                "{side:?} {text:?}"
            );
            assert_eq!(proto.close_error(), None);
        }
    }
}

#[test]
fn side_receives_valid_text_bytewise() {
    for side in SIDES {
        for text in VALID {
            let mut proto = proto(side);
            assert_eq!(
                feed_bytewise(&mut proto, &frame_to(side, FIN | TEXT, text.as_bytes())),
                [Event::Message(Message::text(*text))],
                "{side:?} {text:?}"
            );
        }
    }
}

#[test]
fn side_receives_invalid_utf8_text() {
    for side in SIDES {
        for bytes in INVALID {
            let mut proto = proto(side);
            proto.receive_data(&frame_to(side, FIN | TEXT, bytes));
            assert_failed(&mut proto, ProtocolError::InvalidUtf8);
        }
    }
}

#[test]
fn side_receives_invalid_utf8_text_bytewise() {
    for side in SIDES {
        for bytes in INVALID {
            let mut proto = proto(side);
            assert_eq!(
                feed_bytewise(&mut proto, &frame_to(side, FIN | TEXT, bytes)),
                []
            );
            assert_failed(&mut proto, ProtocolError::InvalidUtf8);
        }
    }
}

#[test]
fn side_receives_invalid_utf8_in_binary_message() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | BINARY, b"\xff\xc0\xaf")),
            [Event::Message(Message::binary(&b"\xff\xc0\xaf"[..]))]
        );
        assert_eq!(proto.close_error(), None);
    }
}

#[test]
fn server_fails_fast_inside_partial_frame() {
    // The header announces 1000 bytes; the first 10 arrive, with an invalid sequence.
    let mut payload = b"hello \xc0\xaf".to_vec();
    payload.resize(1000, b'a');
    let wire = masked(FIN | TEXT, &payload);
    let header_len = 2 + 2 + 4;
    let mut server = server();
    server.receive_data(&wire[..header_len + 10]);
    assert_eq!(server.next_event(), None);
    // Failed already, 990 payload bytes before the frame is complete.
    assert_eq!(server.close_error(), Some(&ProtocolError::InvalidUtf8));
    assert_closing(&mut server, CloseCode::INVALID_DATA);
    assert!(server.eof_to_send());
    // The rest of the frame is ignored.
    server.receive_data(&wire[header_len + 10..]);
    assert_eq!(server.next_event(), None);
    assert_eq!(server.buffered_len(), 0);
    assert!(server.outgoing().is_empty());
}

#[test]
fn client_fails_fast_inside_partial_frame() {
    let mut payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5".to_vec(); // κόσμε
    payload.extend(b"\xed\xa0\x80"); // a surrogate
    payload.resize(70_000, b'a');
    let wire = unmasked(FIN | TEXT, &payload);
    let header_len = 10;
    let mut client = client();
    // "κόσμε" is 11 bytes; ED alone is a valid prefix, ED A0 is not.
    client.receive_data(&wire[..header_len + 11 + 1]);
    assert_eq!(client.next_event(), None);
    assert_eq!(client.close_error(), None);
    client.receive_data(&wire[header_len + 12..header_len + 13]);
    assert_eq!(client.next_event(), None);
    assert_eq!(client.close_error(), Some(&ProtocolError::InvalidUtf8));
    assert_closing(&mut client, CloseCode::INVALID_DATA);
    assert!(!client.eof_to_send());
}

#[test]
fn side_fails_fast_on_the_byte_that_breaks_utf8() {
    // A text frame fed byte by byte fails exactly when the first impossible byte arrives.
    // "\xf4\x90" (above U+10FFFF) is impossible at the 0x90.
    for side in SIDES {
        let mut payload = b"abc\xf4\x90\x80\x80".to_vec();
        payload.resize(200, b'z');
        let wire = frame_to(side, FIN | TEXT, &payload);
        let header_len = wire.len() - payload.len();
        let mut proto = proto(side);
        for (i, byte) in wire.iter().enumerate() {
            proto.receive_data(std::slice::from_ref(byte));
            assert_eq!(proto.next_event(), None);
            let failed = proto.close_error().is_some();
            assert_eq!(failed, i >= header_len + 4, "{side:?} byte {i}");
            if failed {
                break;
            }
        }
        assert_failed(&mut proto, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn side_fails_fast_in_first_fragment() {
    // The message is not finished, but its first fragment is already invalid.
    for side in SIDES {
        let mut proto = proto(side);
        let mut wire = frame_to(side, TEXT, b"ok \xff");
        wire.extend(frame_to(side, FIN | CONT, b"never"));
        proto.receive_data(&wire[..wire.len() - 7]);
        assert_failed(&mut proto, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn side_receives_code_point_split_across_fragments() {
    // "€" is E2 82 AC and "😀" is F0 9F 98 80: every split between fragments.
    for side in SIDES {
        for text in ["€", "😀", "a€b😀c", "κόσμε"] {
            let bytes = text.as_bytes();
            for cut in 0..=bytes.len() {
                let mut wire = frame_to(side, TEXT, &bytes[..cut]);
                wire.extend(frame_to(side, FIN | CONT, &bytes[cut..]));
                let mut proto = proto(side);
                assert_eq!(
                    feed(&mut proto, &wire),
                    [Event::Message(Message::text(text))],
                    "{side:?} {text:?} cut {cut}"
                );
            }
        }
    }
}

#[test]
fn side_receives_code_point_split_across_three_fragments_and_a_ping() {
    for side in SIDES {
        let mut wire = frame_to(side, TEXT, b"\xf0");
        wire.extend(frame_to(side, CONT, b"\x9f\x98"));
        wire.extend(frame_to(side, FIN | PING, b""));
        wire.extend(frame_to(side, FIN | CONT, b"\x80"));
        let mut proto = proto(side);
        assert_eq!(
            feed_bytewise(&mut proto, &wire),
            [Event::Ping("".into()), Event::Message(Message::text("😀"))]
        );
    }
}

#[test]
fn side_receives_invalid_continuation_in_next_fragment() {
    // E2 is a valid prefix; the next fragment's 0x28 cannot continue it.
    for side in SIDES {
        let mut wire = frame_to(side, TEXT, b"a\xe2");
        wire.extend(frame_to(side, FIN | CONT, b"\x28\xa1"));
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &wire), []);
        assert_failed(&mut proto, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn side_receives_truncated_code_point_in_final_fragment() {
    for side in SIDES {
        let mut wire = frame_to(side, TEXT, b"a");
        wire.extend(frame_to(side, FIN | CONT, b"\xe2\x82"));
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &wire), []);
        assert_failed(&mut proto, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn side_resets_utf8_state_between_messages() {
    // A message that ends on a complete code point leaves nothing for the next one; and
    // a failed-looking prefix in a binary message does not leak into the validator.
    for side in SIDES {
        let mut wire = frame_to(side, TEXT, b"\xe2\x82");
        wire.extend(frame_to(side, FIN | CONT, b"\xac"));
        wire.extend(frame_to(side, BINARY, b"\xe2"));
        wire.extend(frame_to(side, FIN | CONT, b"\x82"));
        wire.extend(frame_to(side, FIN | TEXT, b"\xc3\xa9"));
        let mut proto = proto(side);
        assert_eq!(
            feed_bytewise(&mut proto, &wire),
            [
                Event::Message(Message::text("€")),
                Event::Message(Message::binary(&b"\xe2\x82"[..])),
                Event::Message(Message::text("é")),
            ]
        );
        assert_eq!(proto.close_error(), None);
    }
}

#[test]
fn side_receives_large_text_split_everywhere_near_code_points() {
    // 3-byte code points in a 16-bit-length frame, cut at every offset of the first 40
    // bytes: partial unmasking and validation must agree with the whole frame.
    for side in SIDES {
        let text = "€".repeat(100);
        let wire = frame_to(side, FIN | TEXT, text.as_bytes());
        for cut in 0..40 {
            let mut proto = proto(side);
            let mut all = feed(&mut proto, &wire[..cut]);
            all.extend(feed(&mut proto, &wire[cut..]));
            assert_eq!(all, [Event::Message(Message::text(text.as_str()))]);
        }
    }
}

#[test]
fn client_state_after_invalid_utf8_is_closing() {
    let mut client = client();
    client.receive_data(&unmasked(FIN | TEXT, b"\xff"));
    assert_eq!(client.next_event(), None);
    assert_eq!(client.state(), State::Closing);
    assert_eq!(client.side(), Side::Client);
    // The client then waits for the server to close TCP.
    client.receive_eof();
    assert_eq!(client.state(), State::Closed);
    assert_eq!(client.close_error(), Some(&ProtocolError::InvalidUtf8));
    assert!(client.eof_to_send());
}
