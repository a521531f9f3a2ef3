//! RFC 6455 §5.5.1, §7.1 and §7.4: the closing handshake, close codes and reasons, and
//! who closes the TCP connection.

mod common;

use common::*;
use sockjet_proto::{
    ApiMisuse, CloseCode, CloseFrame, ConnectionClosed, Event, ProtocolError, Side, State,
};

/// RFC 6455 §7.4.1 and §7.4.2: codes an endpoint may send.
const VALID_CODES: &[u16] = &[
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
];

/// Codes that must not appear in a close frame: unused (below 1000), reserved for local
/// use (1004, 1005, 1006, 1015), reserved for future revisions (1016-2999) and undefined
/// (5000 and up).
const INVALID_CODES: &[u16] = &[
    0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
];

/// The close frame `sender` would write for `payload` (masked with [`KEY`] by a client).
fn close_frame_from(sender: Side, payload: &[u8]) -> Vec<u8> {
    frame_from(sender, FIN | CLOSE, payload)
}

#[test]
fn side_receives_valid_close_codes() {
    for side in SIDES {
        for &code in VALID_CODES {
            let payload = close_payload(code, b"bye");
            let mut proto = proto(side);
            let expected = CloseFrame::new(CloseCode::from(code), "bye");
            assert_eq!(
                feed(&mut proto, &frame_to(side, FIN | CLOSE, &payload)),
                [Event::Close(Some(expected.clone()))],
                "{side:?} {code}"
            );
            // The close frame is echoed byte for byte.
            assert_eq!(drain(&mut proto), close_frame_from(side, &payload));
            assert_eq!(proto.state(), State::Closing);
            assert_eq!(proto.close_error(), None);
            assert_eq!(
                proto.connection_closed(),
                ConnectionClosed {
                    rcvd: Some(expected.clone()),
                    sent: Some(expected),
                    rcvd_then_sent: Some(true),
                }
            );
        }
    }
}

#[test]
fn side_receives_invalid_close_codes() {
    for side in SIDES {
        for &code in INVALID_CODES {
            let mut proto = proto(side);
            proto.receive_data(&frame_to(side, FIN | CLOSE, &close_payload(code, b"")));
            assert_failed(&mut proto, ProtocolError::InvalidCloseCode(code));
        }
    }
}

#[test]
fn side_receives_one_byte_close_payload() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_data(&frame_to(side, FIN | CLOSE, &[0x03]));
        assert_failed(&mut proto, ProtocolError::CloseFrameTooShort);
    }
}

#[test]
fn side_receives_close_reason_with_invalid_utf8() {
    for side in SIDES {
        for reason in [&b"\xff"[..], b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"] {
            let mut proto = proto(side);
            proto.receive_data(&frame_to(side, FIN | CLOSE, &close_payload(1000, reason)));
            assert_failed(&mut proto, ProtocolError::InvalidUtf8);
        }
    }
}

#[test]
fn side_receives_close_with_longest_reason() {
    for side in SIDES {
        let reason = "é".repeat(61) + "a"; // 123 bytes
        let payload = close_payload(4000, reason.as_bytes());
        assert_eq!(payload.len(), 125);
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | CLOSE, &payload)),
            [Event::Close(Some(CloseFrame::new(
                CloseCode::from(4000),
                reason.as_str()
            )))]
        );
        assert_eq!(drain(&mut proto), close_frame_from(side, &payload));
    }
}

#[test]
fn side_receives_close_over_125_bytes() {
    for side in SIDES {
        let payload = close_payload(1000, &[b'a'; 124]);
        let mut proto = proto(side);
        proto.receive_data(&frame_to(side, FIN | CLOSE, &payload));
        assert_failed(&mut proto, ProtocolError::ControlFrameTooLong);
    }
}

#[test]
fn side_receives_empty_close() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | CLOSE, b"")),
            [Event::Close(None)]
        );
        // Echoed as an empty close frame, not as 1005.
        assert_eq!(drain(&mut proto), close_frame_from(side, b""));
        let no_status = CloseFrame::new(CloseCode::NO_STATUS_RCVD, "");
        assert_eq!(
            proto.connection_closed(),
            ConnectionClosed {
                rcvd: Some(no_status.clone()),
                sent: Some(no_status),
                rcvd_then_sent: Some(true),
            }
        );
        assert!(proto.connection_closed().is_ok());
    }
}

#[test]
fn server_sends_eof_after_close_handshake() {
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    let mut server = server();
    feed(&mut server, &masked(FIN | CLOSE, &close_payload(1000, b"")));
    assert!(server.eof_to_send());
    assert!(!server.eof_to_send(), "reported once");
    assert!(server.close_expected());
    server.receive_eof();
    assert_eq!(server.state(), State::Closed);
    assert_eq!(server.close_error(), None);
    assert!(!server.eof_to_send(), "EOF already sent");
}

#[test]
fn server_initiates_close() {
    let mut server = server();
    server
        .send_close(CloseCode::NORMAL_CLOSURE, "done")
        .unwrap();
    assert_eq!(drain(&mut server), b"\x88\x06\x03\xe8done");
    assert_eq!(server.state(), State::Closing);
    assert!(server.close_expected());
    // The server waits for the client's close frame before closing TCP.
    assert!(!server.eof_to_send());
    assert_eq!(
        feed(
            &mut server,
            &masked(FIN | CLOSE, &close_payload(1000, b"ok"))
        ),
        [Event::Close(Some(CloseFrame::new(
            CloseCode::NORMAL_CLOSURE,
            "ok"
        )))]
    );
    assert!(server.outgoing().is_empty(), "no second close frame");
    assert!(server.eof_to_send());
    assert_eq!(
        server.connection_closed(),
        ConnectionClosed {
            rcvd: Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "ok")),
            sent: Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "done")),
            rcvd_then_sent: Some(false),
        }
    );
    server.receive_eof();
    assert_eq!(server.state(), State::Closed);
    assert_eq!(server.close_error(), None);
    assert!(server.connection_closed().is_ok());
}

#[test]
fn client_initiates_close_and_waits_for_server_eof() {
    let mut client = client();
    client.send_close(CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(
        drain(&mut client),
        masked(FIN | CLOSE, &close_payload(1001, b""))
    );
    assert_eq!(
        feed(
            &mut client,
            &unmasked(FIN | CLOSE, &close_payload(1001, b""))
        ),
        [Event::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            ""
        )))]
    );
    assert!(client.outgoing().is_empty());
    // RFC 6455 §7.1.1: the client waits for the server to close TCP...
    assert!(!client.eof_to_send());
    assert!(client.close_expected());
    assert_eq!(client.state(), State::Closing);
    // ... then closes its half.
    client.receive_eof();
    assert_eq!(client.state(), State::Closed);
    assert!(client.eof_to_send());
    assert_eq!(client.close_error(), None);
    assert_eq!(
        client.connection_closed(),
        ConnectionClosed {
            rcvd: Some(CloseFrame::new(CloseCode::GOING_AWAY, "")),
            sent: Some(CloseFrame::new(CloseCode::GOING_AWAY, "")),
            rcvd_then_sent: Some(false),
        }
    );
}

#[test]
fn client_receives_close_first_and_echoes_masked() {
    let mut client = client();
    let payload = close_payload(1012, b"restart");
    assert_eq!(
        feed(&mut client, &unmasked(FIN | CLOSE, &payload)),
        [Event::Close(Some(CloseFrame::new(
            CloseCode::SERVICE_RESTART,
            "restart"
        )))]
    );
    let mut expected = vec![0x88, 0x80 | 9];
    expected.extend(KEY);
    expected.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    assert_eq!(drain(&mut client), expected);
    assert!(!client.eof_to_send());
    assert_eq!(client.connection_closed().rcvd_then_sent, Some(true));
    client.receive_eof();
    assert_eq!(client.close_error(), None);
    assert!(
        !client.connection_closed().is_ok(),
        "1012 is not an OK close"
    );
}

#[test]
fn side_ignores_frames_after_close() {
    for side in SIDES {
        let mut wire = frame_to(side, FIN | CLOSE, &close_payload(1000, b""));
        wire.extend(frame_to(side, FIN | TEXT, b"late"));
        wire.extend(frame_to(side, FIN | PING, b"late"));
        wire.extend(frame_to(side, FIN | CLOSE, &close_payload(1001, b"")));
        let mut proto = proto(side);
        assert_eq!(
            feed(&mut proto, &wire),
            [Event::Close(Some(CloseFrame::new(
                CloseCode::NORMAL_CLOSURE,
                ""
            )))]
        );
        // Only the echo; no pong, no second close.
        assert_eq!(
            drain(&mut proto),
            close_frame_from(side, &close_payload(1000, b""))
        );
        assert_eq!(proto.buffered_len(), 0);
        proto.receive_data(&frame_to(side, FIN | BINARY, b"later"));
        assert_eq!(proto.next_event(), None);
        assert_eq!(proto.buffered_len(), 0);
        assert_eq!(proto.close_error(), None);
    }
}

#[test]
fn side_receives_close_split_bytewise() {
    for side in SIDES {
        let payload = close_payload(3001, "ciao ✓".as_bytes());
        let mut proto = proto(side);
        assert_eq!(
            feed_bytewise(&mut proto, &frame_to(side, FIN | CLOSE, &payload)),
            [Event::Close(Some(CloseFrame::new(
                CloseCode::from(3001),
                "ciao ✓"
            )))]
        );
        assert_eq!(drain(&mut proto), close_frame_from(side, &payload));
    }
}

#[test]
fn side_sends_close_with_unsendable_code() {
    for side in SIDES {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            let mut proto = proto(side);
            let code = CloseCode::from(code);
            assert_eq!(
                proto.send_close(code, ""),
                Err(ApiMisuse::UnsendableCloseCode(code))
            );
            assert!(proto.outgoing().is_empty());
            assert_eq!(proto.state(), State::Open);
            assert_eq!(proto.connection_closed(), ConnectionClosed::default());
        }
    }
}

#[test]
fn side_sends_close_with_reason_length_limit() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(
            proto.send_close(CloseCode::NORMAL_CLOSURE, &"x".repeat(124)),
            Err(ApiMisuse::ControlFrameTooLong)
        );
        assert!(proto.outgoing().is_empty());
        let reason = "x".repeat(123);
        proto
            .send_close(CloseCode::NORMAL_CLOSURE, &reason)
            .unwrap();
        let frames = sent_frames(&mut proto);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload, close_payload(1000, reason.as_bytes()));
    }
}

#[test]
fn side_sends_close_twice() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        assert_eq!(
            proto.send_close(CloseCode::NORMAL_CLOSURE, ""),
            Err(ApiMisuse::SendAfterClose)
        );
        assert_closing(&mut proto, CloseCode::NORMAL_CLOSURE);
    }
}

#[test]
fn side_sends_close_after_receiving_close() {
    for side in SIDES {
        let mut proto = proto(side);
        feed(
            &mut proto,
            &frame_to(side, FIN | CLOSE, &close_payload(1000, b"")),
        );
        assert_eq!(
            proto.send_close(CloseCode::GOING_AWAY, ""),
            Err(ApiMisuse::SendAfterClose)
        );
        assert_closing(&mut proto, CloseCode::NORMAL_CLOSURE);
    }
}

#[test]
fn side_receives_close_reply_with_other_code() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        drain(&mut proto);
        let reply = close_payload(1001, b"later");
        assert_eq!(
            feed(&mut proto, &frame_to(side, FIN | CLOSE, &reply)),
            [Event::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                "later"
            )))]
        );
        assert!(proto.outgoing().is_empty());
        let closed = proto.connection_closed();
        assert_eq!(closed.sent.unwrap().code, CloseCode::NORMAL_CLOSURE);
        assert_eq!(closed.rcvd.unwrap().code, CloseCode::GOING_AWAY);
        assert_eq!(closed.rcvd_then_sent, Some(false));
    }
}

#[test]
fn side_fails_with_reason_truncated_on_char_boundary() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.fail(CloseCode::INTERNAL_ERROR, &"é".repeat(100));
        let reason = assert_closing(&mut proto, CloseCode::INTERNAL_ERROR);
        // 123 bytes would cut an "é" in half.
        assert_eq!(reason, "é".repeat(61));
        assert_eq!(proto.close_error(), None, "the peer did nothing wrong");
        assert_eq!(proto.eof_to_send(), side == Side::Server);
    }
}

#[test]
fn side_fails_after_sending_close() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        proto.fail(CloseCode::INTERNAL_ERROR, "timeout");
        // No second close frame.
        assert_closing(&mut proto, CloseCode::NORMAL_CLOSURE);
    }
}

#[test]
fn side_fails_with_unsendable_code() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.fail(CloseCode::ABNORMAL_CLOSURE, "gone");
        assert!(proto.outgoing().is_empty(), "1006 never goes on the wire");
        assert_eq!(proto.state(), State::Closing);
        assert_eq!(proto.connection_closed().sent, None);
    }
}

#[test]
fn side_receives_eof_after_sending_close() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        proto.receive_eof();
        assert_eq!(proto.state(), State::Closed);
        assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
        let closed = proto.connection_closed();
        assert_eq!(closed.code(), CloseCode::ABNORMAL_CLOSURE);
        assert_eq!(closed.rcvd_then_sent, None);
        assert!(!closed.is_ok());
    }
}
