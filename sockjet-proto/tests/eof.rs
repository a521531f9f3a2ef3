//! RFC 6455 §7.1.5 and §7.1.7: the end of the TCP stream. Before the closing handshake it
//! is an abnormal closure (1006), never answered with a close frame; after it, a normal
//! end. Either way our half of the connection closes too.

mod common;

use common::*;
use sockjet_proto::{
    ApiMisuse, CloseCode, CloseFrame, ConnectionClosed, Event, Message, ProtocolError,
    ServerConfig, ServerProtocol, State,
};

#[test]
fn side_receives_eof_before_close() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_eof();
        assert_eq!(proto.state(), State::Closed);
        assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
        assert_eq!(CloseCode::from(proto.close_error().unwrap()).as_u16(), 1006);
        assert!(proto.outgoing().is_empty(), "no close frame after EOF");
        assert!(proto.eof_to_send(), "our half closes too");
        assert!(!proto.eof_to_send());
        let closed = proto.connection_closed();
        assert_eq!(closed, ConnectionClosed::default());
        assert_eq!(closed.code(), CloseCode::ABNORMAL_CLOSURE);
        assert_eq!(proto.next_event(), None);
    }
}

#[test]
fn side_receives_eof_mid_frame() {
    for side in SIDES {
        for cut in [1, 2, 5] {
            let wire = frame_to(side, FIN | BINARY, b"abcdef");
            let mut proto = proto(side);
            assert_eq!(feed(&mut proto, &wire[..cut]), []);
            proto.receive_eof();
            // The incomplete frame gives no event; the connection is then closed.
            assert_eq!(proto.next_event(), None);
            assert_eq!(proto.state(), State::Closed);
            assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
            assert_eq!(proto.buffered_len(), 0);
            assert_eq!(proto.next_event(), None);
            assert!(proto.outgoing().is_empty());
        }
    }
}

#[test]
fn side_receives_eof_mid_text_frame() {
    // A partial text frame was already unmasked and validated; EOF drops it.
    for side in SIDES {
        let wire = frame_to(side, FIN | TEXT, "€uro".as_bytes());
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &wire[..wire.len() - 2]), []);
        proto.receive_eof();
        assert_eq!(proto.next_event(), None);
        assert_eq!(proto.state(), State::Closed);
        assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
        assert_eq!(proto.next_event(), None);
    }
}

#[test]
fn side_receives_eof_mid_fragmented_message() {
    for side in SIDES {
        let mut proto = proto(side);
        assert_eq!(feed(&mut proto, &frame_to(side, TEXT, b"part")), []);
        proto.receive_eof();
        assert_eq!(proto.state(), State::Closed);
        assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
        assert_eq!(proto.next_event(), None);
    }
}

#[test]
fn side_receives_eof_twice() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_eof();
        assert!(proto.eof_to_send());
        proto.receive_eof();
        assert_eq!(proto.state(), State::Closed);
        assert!(!proto.eof_to_send(), "EOF is sent once");
        assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
    }
}

#[test]
fn side_receives_eof_after_failure() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_data(&frame_to(side, FIN | TEXT, b"\xff"));
        assert_eq!(proto.next_event(), None);
        proto.receive_eof();
        assert_eq!(proto.state(), State::Closed);
        // The first error is kept.
        assert_eq!(proto.close_error(), Some(&ProtocolError::InvalidUtf8));
    }
}

#[test]
fn side_receives_eof_after_close_handshake() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
        feed(
            &mut proto,
            &frame_to(side, FIN | CLOSE, &close_payload(1000, b"")),
        );
        proto.receive_eof();
        assert_eq!(proto.state(), State::Closed);
        assert_eq!(proto.close_error(), None);
        assert!(proto.connection_closed().is_ok());
        assert_eq!(proto.connection_closed().code(), CloseCode::NORMAL_CLOSURE);
    }
}

#[test]
fn side_receives_eof_after_close_frame_only() {
    // The peer's close frame arrived, then EOF before we... had nothing to do: we echoed
    // at once. Closing handshake complete from our side.
    for side in SIDES {
        let mut proto = proto(side);
        feed(&mut proto, &frame_to(side, FIN | CLOSE, b""));
        proto.receive_eof();
        assert_eq!(proto.close_error(), None);
        assert_eq!(proto.connection_closed().code(), CloseCode::NO_STATUS_RCVD);
    }
}

#[test]
fn side_sends_after_eof() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_eof();
        assert_eq!(proto.send_text("x"), Err(ApiMisuse::SendAfterClose));
        assert_eq!(proto.send_binary(b"x"), Err(ApiMisuse::SendAfterClose));
        assert_eq!(
            proto.send_message(Message::binary(&b"x"[..])),
            Err(ApiMisuse::SendAfterClose)
        );
        assert_eq!(proto.send_ping(b""), Err(ApiMisuse::SendAfterClose));
        assert_eq!(proto.send_pong(b""), Err(ApiMisuse::SendAfterClose));
        assert_eq!(
            proto.send_close(CloseCode::NORMAL_CLOSURE, ""),
            Err(ApiMisuse::SendAfterClose)
        );
        proto.fail(CloseCode::INTERNAL_ERROR, "too late");
        assert!(proto.outgoing().is_empty());
        assert_eq!(proto.state(), State::Closed);
    }
}

#[test]
fn side_receives_close_and_eof_before_taking_events() {
    // A driver may see the close frame and EOF in one loop iteration (read() returned
    // data, then 0) and report both before calling next_event(). The close frame was
    // fully received: it must not be lost, and the connection closed cleanly.
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_data(&frame_to(side, FIN | CLOSE, &close_payload(1000, b"")));
        proto.receive_eof();
        assert_eq!(
            events(&mut proto),
            [Event::Close(Some(CloseFrame::new(
                CloseCode::NORMAL_CLOSURE,
                ""
            )))],
            "{side:?}"
        );
        assert_eq!(proto.close_error(), None);
        assert_eq!(proto.state(), State::Closed);
    }
}

#[test]
fn side_receives_message_and_eof_before_taking_events() {
    for side in SIDES {
        let mut proto = proto(side);
        proto.receive_data(&frame_to(side, FIN | TEXT, b"last words"));
        proto.receive_eof();
        assert_eq!(
            events(&mut proto),
            [Event::Message(Message::text("last words"))],
            "{side:?}"
        );
        assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
    }
}

#[test]
fn server_receives_request_frames_and_eof_before_answering() {
    // A scripted client sends its request, a message and a close frame, then half-closes,
    // all before the application answers the request. ServerProtocol::send_response
    // then hands the frames to the Protocol and reports the EOF right after.
    let mut wire = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    wire.extend(masked(FIN | TEXT, b"hi"));
    wire.extend(masked(FIN | CLOSE, &close_payload(1000, b"")));
    let mut server = ServerProtocol::new(ServerConfig::default());
    server.receive_data(&wire);
    server.receive_eof();
    let Some(Event::Request(request)) = server.next_event() else {
        panic!("no request");
    };
    server.send_response(server.accept(&request)).unwrap();
    let mut events = Vec::new();
    for _ in 0..10 {
        match server.next_event() {
            Some(event) => events.push(event),
            None => break,
        }
    }
    assert_eq!(
        events,
        [
            Event::Message(Message::text("hi")),
            Event::Close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""))),
        ]
    );
    assert_eq!(server.protocol().close_error(), None);
}

#[test]
fn side_reports_error_buffered_before_eof() {
    // The outcome must not depend on whether next_event() ran between the last read and
    // the EOF: a complete but invalid header (or invalid UTF-8 at the start of a partial
    // text frame) is the peer's protocol error, whatever follows.
    for side in SIDES {
        let config = sockjet_proto::Config::default().max_frame_size(Some(32));
        let cases: [(Vec<u8>, ProtocolError); 3] = [
            (
                frame_to(side, FIN | BINARY, &[0; 200])[..10].to_vec(),
                ProtocolError::FrameTooBig {
                    size: 200,
                    limit: 32,
                },
            ),
            (
                frame_to(side, FIN | 0x40 | BINARY, b"abc")[..4].to_vec(),
                ProtocolError::ReservedBitsSet,
            ),
            (
                frame_to(side, FIN | TEXT, b"\xff and more")[..8].to_vec(),
                ProtocolError::InvalidUtf8,
            ),
        ];
        for (wire, error) in cases {
            // next_event() before the EOF: the error.
            let mut first = proto_with(side, config.clone());
            first.receive_data(&wire);
            assert_eq!(first.next_event(), None);
            first.receive_eof();
            assert_eq!(first.close_error(), Some(&error), "{side:?}");
            // The EOF right behind the data: the same error.
            let mut second = proto_with(side, config.clone());
            second.receive_data(&wire);
            second.receive_eof();
            assert_eq!(second.next_event(), None);
            assert_eq!(second.state(), State::Closed);
            assert_eq!(second.close_error(), Some(&error), "{side:?} {wire:02x?}");
        }
    }
}
