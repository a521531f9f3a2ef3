//! The client side of the opening handshake on arbitrary response bytes (then frames),
//! cut into reads where the fuzzer chooses: never panics, only a 101 with the right
//! `Sec-WebSocket-Accept` opens the connection, the outcome does not depend on read
//! boundaries, and the output stays bounded. See `sockjet_fuzz::Input` for the layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_fuzz::{FixedKeys, Input, drain_events};
use sockjet_proto::{
    ClientConfig, ClientProtocol, Config, Event, HandshakeError, ProtocolError, State,
    http::{StatusCode, Uri, header},
};

/// RFC 6455 §1.3's example: the key "dGhlIHNhbXBsZSBub25jZQ==" and its accept value.
const KEY: [u8; 16] = *b"the sample nonce";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    handshake_error: Option<HandshakeError>,
    close_error: Option<ProtocolError>,
    state: State,
    subprotocol: Option<String>,
    failed_response: Option<String>,
    output: Vec<u8>,
}

fn config_for(selector: u8) -> ClientConfig {
    match selector % 4 {
        0 => ClientConfig::default(),
        1 => ClientConfig::default().subprotocols(["chat", "superchat"]),
        2 => ClientConfig::default().max_header_bytes(256).max_headers(6),
        _ => ClientConfig::default().protocol(
            Config::default()
                .max_message_size(Some(64))
                .max_frame_size(Some(32)),
        ),
    }
}

fn client(selector: u8) -> ClientProtocol {
    let uri: Uri = "ws://example.com/chat".parse().expect("valid URI");
    let config = config_for(selector);
    let mut client = ClientProtocol::with_key(&uri, config, KEY).with_mask_keys(FixedKeys);
    client
        .send_request(client.connect_request())
        .expect("first request");
    let mut request = Vec::new();
    client.outgoing().drain_into(&mut request);
    assert!(request.starts_with(b"GET /chat HTTP/1.1\r\n"));
    client
}

fn run(selector: u8, pieces: &[&[u8]]) -> Outcome {
    let mut client = client(selector);
    let offered: &[&str] = if selector % 4 == 1 {
        &["chat", "superchat"]
    } else {
        &[]
    };
    let mut events = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        client.receive_data(piece);
        fed += piece.len();
        drain_events(|| client.next_event(), fed, &mut events);
        assert!(client.outgoing().len() <= 3 * fed + 256);
        assert!(client.buffered_len() <= fed);
    }
    for event in &events {
        if let Event::Response(response) = event {
            // Only a valid 101 opens the connection.
            assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
            let accept = response.headers()[header::SEC_WEBSOCKET_ACCEPT].as_bytes();
            assert_eq!(accept.trim_ascii(), ACCEPT.as_bytes());
            assert_eq!(client.handshake_error(), None);
        }
    }
    if let Some(subprotocol) = client.subprotocol() {
        assert!(
            offered.contains(&subprotocol),
            "{subprotocol} was not offered"
        );
    }
    let mut output = Vec::new();
    client.outgoing().drain_into(&mut output);
    Outcome {
        events,
        handshake_error: client.handshake_error().cloned(),
        close_error: client.protocol().close_error().cloned(),
        state: client.state(),
        subprotocol: client.subprotocol().map(str::to_owned),
        failed_response: client.failed_response().map(|r| format!("{r:?}")),
        output,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::parse(bytes) else {
        return;
    };
    let split = run(input.selector, &input.pieces);
    let whole = run(input.selector, &[input.data]);
    assert_eq!(split, whole, "outcome depends on read boundaries");
    if whole.handshake_error.is_some() {
        assert_eq!(whole.state, State::Closed);
        assert!(!whole.events.iter().any(|e| matches!(e, Event::Response(_))));
    }
    let mut client = client(input.selector);
    client.receive_data(input.data);
    let mut events = Vec::new();
    drain_events(|| client.next_event(), input.data.len(), &mut events);
    client.receive_eof();
    let mut late = Vec::new();
    drain_events(|| client.next_event(), input.data.len(), &mut late);
    assert_ne!(client.state(), State::Open);
    assert_ne!(client.state(), State::Connecting);
});
