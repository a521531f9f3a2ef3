//! The server side of the opening handshake on arbitrary request bytes (then frames), cut
//! into reads where the fuzzer chooses: never panics, only valid requests reach the
//! application, the outcome does not depend on read boundaries, and the output stays
//! bounded. See `sockjet_fuzz::Input` for the input layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_fuzz::{Input, drain_events};
use sockjet_proto::{
    Config, Event, HandshakeError, ProtocolError, ServerConfig, ServerProtocol, State,
    http::{HeaderValue, Method, StatusCode, header},
};

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    handshake_error: Option<HandshakeError>,
    close_error: Option<ProtocolError>,
    state: State,
    subprotocol: Option<String>,
    output: Vec<u8>,
}

fn config_for(selector: u8) -> ServerConfig {
    match selector % 4 {
        0 => ServerConfig::default(),
        1 => ServerConfig::default()
            .max_request_line(64)
            .max_header_bytes(256)
            .max_headers(6),
        2 => ServerConfig::default().protocol(
            Config::default()
                .max_message_size(Some(64))
                .max_frame_size(Some(32)),
        ),
        _ => ServerConfig::default().server_header(None),
    }
}

fn run(selector: u8, pieces: &[&[u8]]) -> Outcome {
    let mut server = ServerProtocol::new(config_for(selector));
    let mut events = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        server.receive_data(piece);
        fed += piece.len();
        let mut new = Vec::new();
        drain_events(|| server.next_event(), fed, &mut new);
        for event in new {
            let request = match &event {
                Event::Request(request) => Some(request.clone()),
                _ => None,
            };
            events.push(event);
            if let Some(request) = &request {
                // Only a valid opening handshake reaches the application.
                assert_eq!(request.method(), Method::GET);
                let headers = request.headers();
                assert!(headers.contains_key(header::SEC_WEBSOCKET_KEY));
                assert_eq!(headers[header::SEC_WEBSOCKET_VERSION], "13");
                assert_eq!(server.state(), State::Connecting);
                let response = if selector & 0x10 != 0 {
                    server.reject(StatusCode::FORBIDDEN, "no")
                } else {
                    let mut response = server.accept(request);
                    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
                    // Accept the first subprotocol offered, if the selector says so.
                    let offered = headers
                        .get(header::SEC_WEBSOCKET_PROTOCOL)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.split(',').next())
                        .map(str::trim)
                        .and_then(|first| HeaderValue::from_str(first).ok());
                    if let (true, Some(first)) = (selector & 0x20 != 0, offered) {
                        response
                            .headers_mut()
                            .insert(header::SEC_WEBSOCKET_PROTOCOL, first);
                    }
                    response
                };
                server.send_response(response).expect("answer to a request");
                // Exactly one answer.
                assert!(
                    server
                        .send_response(server.reject(StatusCode::GONE, ""))
                        .is_err()
                );
                // The rest of this read is already in the open connection.
                drain_events(|| server.next_event(), fed, &mut events);
            }
        }
        assert!(server.outgoing().len() <= 3 * fed + 4096);
        assert!(server.buffered_len() <= fed);
    }
    let mut output = Vec::new();
    server.outgoing().drain_into(&mut output);
    Outcome {
        events,
        handshake_error: server.handshake_error().cloned(),
        close_error: server.protocol().close_error().cloned(),
        state: server.state(),
        subprotocol: server.subprotocol().map(str::to_owned),
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
        assert!(!whole.events.iter().any(|e| matches!(e, Event::Request(_))));
    }
    // Then the end of the stream: always closed.
    let mut server = ServerProtocol::new(config_for(input.selector));
    server.receive_data(input.data);
    let mut events = Vec::new();
    drain_events(|| server.next_event(), input.data.len(), &mut events);
    server.receive_eof();
    let mut late = Vec::new();
    drain_events(|| server.next_event(), input.data.len(), &mut late);
    assert_ne!(server.state(), State::Open);
});
