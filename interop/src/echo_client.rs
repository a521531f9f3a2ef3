//! Third-party clients against a sockjet echo server, whichever engine runs it:
//! `peers/python_echo_client.py` (Python `websockets`) and `peers/node_echo_client.js`
//! (Node.js `ws`). Each sends text, binary, empty, 1 MiB, large non-ASCII, incompressible
//! and fragmented messages, then 100 pipelined ones, pings and closes with 1000 "done";
//! it reports whether every echo came back unchanged, in order and of the same type.

use serde_json::{Value, json};

use crate::{
    process::{PeerCommand, PeerProcess},
    scenario::fail_with,
};

/// The messages each client sends, in order (the same names are in both peers).
pub const ECHOED: [&str; 8] = [
    "text",
    "binary",
    "empty_text",
    "big_binary",
    "big_text",
    "noise",
    "fragmented_text",
    "fragmented_binary",
];

/// `python peers/python_echo_client.py URL deflate|plain`.
pub fn python(url: &str, compression: bool) -> PeerCommand {
    PeerCommand::python("python echo client", "python_echo_client.py")
        .arg(url)
        .arg(mode(compression))
}

/// `node peers/node_echo_client.js URL deflate|plain`.
pub fn node(url: &str, compression: bool) -> PeerCommand {
    PeerCommand::node("node echo client", "node_echo_client.js")
        .arg(url)
        .arg(mode(compression))
}

fn mode(compression: bool) -> &'static str {
    if compression { "deflate" } else { "plain" }
}

/// The observations after `open`, as a client reports them when every echo is right.
pub fn expected_events() -> Vec<Value> {
    let mut events: Vec<Value> = ECHOED
        .iter()
        .map(|name| {
            let kind = if name.contains("text") {
                "text"
            } else {
                "binary"
            };
            json!({"event": "echo", "name": name, "type": kind, "equal": true})
        })
        .collect();
    events.push(json!({"event": "pipelined", "in_order": true}));
    events.push(json!({"event": "pong"}));
    events.push(json!({"event": "closed", "code": 1000, "reason": "done"}));
    events
}

/// Runs `client` to its end and checks what it reported: permessage-deflate negotiated
/// if and only if `compression`, then [`expected_events`]. Returns the negotiated
/// `Sec-WebSocket-Extensions`. Fails the test, with the peer's output, otherwise.
pub async fn run(client: &PeerCommand, compression: bool) -> String {
    let mut peer = PeerProcess::spawn(client);
    // Each observation within EVENT_TIMEOUT up to the last, then the exit.
    loop {
        match peer.next_event().await {
            Ok(event) if event["event"] == "closed" => break,
            Ok(_) => {}
            Err(error) => fail_with(&peer, error),
        }
    }
    let events = peer
        .finish()
        .await
        .unwrap_or_else(|error| fail_with(&peer, error));
    let Some((open, rest)) = events.split_first() else {
        fail_with(&peer, "no observation at all");
    };
    let extensions = open["extensions"].as_str().unwrap_or_default().to_owned();
    if open["event"] != "open" || extensions.starts_with("permessage-deflate") != compression {
        fail_with(
            &peer,
            format_args!("first observation {open}; compression expected: {compression}"),
        );
    }
    crate::scenario::check_events(&peer, rest, &expected_events());
    extensions
}
