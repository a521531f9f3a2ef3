//! permessage-deflate wired into the protocol (RFC 7692 §6-§7) and the handshake.

mod common;

use common::{FixedKeys, assert_closing, drain, feed, frame_to, sent_frames};
use sockjet_proto::{
    ClientConfig, ClientProtocol, CloseCode, Config, DeflateConfig, Event, Message, Protocol,
    ServerConfig, ServerProtocol, Side, State,
};

/// A client and a server that negotiated permessage-deflate through a real handshake.
fn negotiated_pair(
    client_deflate: DeflateConfig,
    server_deflate: DeflateConfig,
) -> (Protocol, Protocol) {
    negotiated_pair_with(Config::default(), client_deflate, server_deflate)
}

fn negotiated_pair_with(
    base: Config,
    client_deflate: DeflateConfig,
    server_deflate: DeflateConfig,
) -> (Protocol, Protocol) {
    let uri = "ws://example.com/chat".parse().unwrap();
    let client_config =
        ClientConfig::default().protocol(base.clone().deflate(Some(client_deflate)));
    let mut client = ClientProtocol::with_key(&uri, client_config, [7; 16])
        .with_mask_keys(FixedKeys([1, 2, 3, 4]));
    client.send_request(client.connect_request()).unwrap();
    let mut request = Vec::new();
    client.outgoing().drain_into(&mut request);

    let server_config = ServerConfig::default().protocol(base.deflate(Some(server_deflate)));
    let mut server = ServerProtocol::new(server_config);
    server.receive_data(&request);
    let Some(Event::Request(request)) = server.next_event() else {
        panic!("no request: {:?}", server.handshake_error());
    };
    let response = server.accept(&request);
    server.send_response(response).unwrap();
    let mut response = Vec::new();
    server.outgoing().drain_into(&mut response);

    client.receive_data(&response);
    assert!(
        matches!(client.next_event(), Some(Event::Response(_))),
        "{:?}",
        client.handshake_error()
    );
    (client.into_protocol(), server.into_protocol())
}

fn transfer(from: &mut Protocol, to: &mut Protocol) -> Vec<Event> {
    let wire = drain(from);
    feed(to, &wire)
}

#[test]
fn handshake_negotiates_compression_by_default() {
    let (client, server) = negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    assert!(client.is_compressing());
    assert!(server.is_compressing());
}

#[test]
fn handshake_without_compression_on_either_side_gives_plain_frames() {
    let uri = "ws://example.com/".parse().unwrap();
    let client = ClientProtocol::with_key(
        &uri,
        ClientConfig::default().protocol(Config::default().deflate(None)),
        [7; 16],
    );
    let request = client.connect_request();
    assert!(request.headers().get("sec-websocket-extensions").is_none());
    let client = ClientProtocol::with_key(&uri, ClientConfig::default(), [7; 16]);
    let offer = client.connect_request().headers()["sec-websocket-extensions"].clone();
    assert!(offer.to_str().unwrap().starts_with("permessage-deflate"));
}

#[test]
fn messages_round_trip_compressed_both_ways() {
    let (mut client, mut server) =
        negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    let text = "compressible text ".repeat(100);
    for _ in 0..3 {
        client.send_text(&text).unwrap();
        let wire = drain(&mut client);
        assert!(
            wire.len() < text.len() / 4,
            "{} bytes on the wire",
            wire.len()
        );
        assert_eq!(wire[0] & 0x40, 0x40, "RSV1 set on a compressed message");
        assert_eq!(
            feed(&mut server, &wire),
            [Event::Message(Message::text(text.clone()))]
        );

        server
            .send_message(Message::binary(vec![42u8; 5000]))
            .unwrap();
        assert_eq!(
            transfer(&mut server, &mut client),
            [Event::Message(Message::binary(vec![42u8; 5000]))]
        );
    }
}

#[test]
fn small_messages_and_opt_outs_go_uncompressed() {
    let (mut client, mut server) =
        negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    // Below the threshold.
    server.send_text("hi").unwrap();
    let frames = sent_frames(&mut server);
    assert_eq!(frames[0].header.rsv, 0);
    assert_eq!(frames[0].payload, b"hi");
    // Opted out per message.
    let big = Message::binary(vec![1u8; 4096]);
    server.send_message_with(big.clone(), false).unwrap();
    let wire = drain(&mut server);
    assert_eq!(wire[0] & 0x40, 0);
    assert_eq!(feed(&mut client, &wire), [Event::Message(big)]);
}

#[test]
fn compressed_message_fragmented_on_send_sets_rsv1_on_first_frame_only() {
    let base = Config::default().max_send_frame_size(Some(16));
    let deflate = DeflateConfig::default();
    let (mut client, mut server) = negotiated_pair_with(base, deflate.clone(), deflate);
    let text: String = (0..2000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    client.send_text(&text).unwrap();
    let wire = drain(&mut client);
    let frames = common::decode_frames(&wire);
    assert!(frames.len() > 1);
    assert_eq!(frames[0].header.rsv, 0b100);
    assert!(frames[1..].iter().all(|frame| frame.header.rsv == 0));
    assert_eq!(
        feed(&mut server, &wire),
        [Event::Message(Message::text(text))]
    );
}

#[test]
fn rsv1_without_negotiation_fails_with_1002() {
    for side in [Side::Client, Side::Server] {
        let mut proto = common::proto(side);
        feed(&mut proto, &frame_to(side, 0x80 | 0x40 | 0x1, b"x"));
        assert_closing(&mut proto, CloseCode::PROTOCOL_ERROR);
    }
}

#[test]
fn rsv1_on_control_or_continuation_frames_fails_with_1002() {
    let (_, mut server) = negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    feed(&mut server, &frame_to(Side::Server, 0x80 | 0x40 | 0x9, b""));
    assert_closing(&mut server, CloseCode::PROTOCOL_ERROR);

    let (_, mut server) = negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    let mut wire = frame_to(Side::Server, 0x01, b"ab");
    wire.extend(frame_to(Side::Server, 0x80 | 0x40, b"cd"));
    feed(&mut server, &wire);
    assert_closing(&mut server, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let (_, mut server) = negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    feed(
        &mut server,
        &frame_to(Side::Server, 0x80 | 0x40 | 0x2, &[0xff, 0xff, 0xff, 0xff]),
    );
    assert_closing(&mut server, CloseCode::INVALID_DATA);
}

#[test]
fn decompression_bomb_fails_with_1009_within_the_limit() {
    // 64 MiB of zeros compress to about 64 KiB; the server allows 1 MiB messages.
    let (mut client, mut server) =
        negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    client.send_binary(&vec![0u8; 64 << 20]).unwrap();
    let wire = drain(&mut client);
    assert!(wire.len() < 1 << 20, "{} bytes", wire.len());
    let events = feed(&mut server, &wire);
    assert!(events.is_empty());
    assert_closing(&mut server, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(server.state(), State::Closing);
}

#[test]
fn compressed_invalid_utf8_fails_with_1007() {
    let (mut client, mut server) =
        negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    // Build a compressed binary message, then flip its opcode to text.
    let mut bad = vec![b'a'; 300];
    bad[150] = 0xff;
    client.send_binary(&bad).unwrap();
    let mut wire = drain(&mut client);
    wire[0] = (wire[0] & 0xF0) | 0x1;
    feed(&mut server, &wire);
    assert_closing(&mut server, CloseCode::INVALID_DATA);
}

#[test]
fn fragmented_compressed_message_is_reassembled() {
    let (mut client, mut server) =
        negotiated_pair(DeflateConfig::default(), DeflateConfig::default());
    let text = "fragmented and compressed ".repeat(50);
    client.send_text(&text).unwrap();
    let frames = sent_frames(&mut client);
    assert_eq!(frames.len(), 1);
    let payload = &frames[0].payload;
    // Re-send the compressed payload as three fragments: RSV1 on the first only.
    let thirds = [
        &payload[..payload.len() / 3],
        &payload[payload.len() / 3..payload.len() * 2 / 3],
        &payload[payload.len() * 2 / 3..],
    ];
    let mut wire = frame_to(Side::Server, 0x40 | 0x1, thirds[0]);
    wire.extend(frame_to(Side::Server, 0x00, thirds[1]));
    wire.extend(frame_to(Side::Server, 0x80, thirds[2]));
    assert_eq!(
        feed(&mut server, &wire),
        [Event::Message(Message::text(text))]
    );
}
