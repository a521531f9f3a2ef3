//! The permessage-deflate (RFC 7692) scenario: sockjet's side of what
//! `peers/python_deflate.py` and `peers/node_deflate.js` play, and what they must report.
//!
//! One connection, on `/deflate`:
//!
//! 1. Both sides report what was negotiated: sockjet its [`Connection::is_compressed`]
//!    and the `Sec-WebSocket-Extensions` of the handshake response, the peer its own view
//!    of the extension and its parameters. They must match the test case's expectation.
//! 2. The peer sends each of [`peer_messages`] (text with non-ASCII characters, binary,
//!    1 MiB compressible, 256 KiB incompressible, 300 kB of non-ASCII text, the same
//!    600-byte text five times, empty text and binary, a fragmented text and a fragmented
//!    binary message with empty fragments); sockjet checks each byte for byte and echoes
//!    it with `send`. The peer reports each echo, with whether it arrived compressed and
//!    its size on the wire: the sizes of the five identical echoes show whether sockjet
//!    kept its compression context between messages, as negotiated.
//! 3. sockjet pings, then sends [`sockjet_sends`]: messages sent with
//!    [`Connection::send_uncompressed`] and [`Sender::send_uncompressed`](sockjet::Sender)
//!    (which must arrive without RSV1), then compressed ones, the last being [`END`].
//! 4. The peer closes with 1000 "deflate done"; sockjet's `recv` ends and `closed()` says
//!    so.
//!
//! As a client, sockjet sends frames of at most 4 KiB, so its compressed messages arrive
//! fragmented too.

use std::{sync::Arc, time::Instant};

use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sockjet::{
    ClientBuilder, CloseCode, CloseFrame, Connection, ConnectionClosed, Message, Server,
    proto::{DeflateConfig, http::header::SEC_WEBSOCKET_EXTENSIONS},
};
use tokio::sync::mpsc;

use crate::{
    process::{PeerCommand, PeerProcess},
    scenario::{
        MIB, TEST_TIMEOUT, beside_peer, check_eq, check_events, connection_config, expect,
        large_text, message_observation, pattern, send, sockjet_big, spawn_listening, step,
    },
};

/// The path of the scenario.
pub const PATH: &str = "/deflate";

/// The last message sockjet sends.
pub const END: &str = "end of deflate scenario ✓";

/// The reason of the peer's close (code 1000).
pub const CLOSE_REASON: &str = "deflate done";

/// How many times the peer sends the same text in a row, and where the first one is in
/// [`peer_messages`].
pub const REPEATS: usize = 5;
const FIRST_REPEAT: usize = 5;

/// The frame size limit of sockjet as a client.
pub const CLIENT_FRAME_SIZE: usize = 4 * 1024;

const KIB: usize = 1024;

/// Incompressible bytes: SHA-1 of `"seed:0"`, `"seed:1"`, ... concatenated, cut to
/// `length`; the peers compute the same.
pub fn noise(length: usize, seed: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(length + 20);
    let mut block = 0usize;
    while data.len() < length {
        data.extend_from_slice(&Sha1::digest(format!("{seed}:{block}")));
        block += 1;
    }
    data.truncate(length);
    data
}

/// What the peer named `peer` sends, as sockjet must receive it (fragmented messages
/// reassembled). The same list is in the peer scripts.
pub fn peer_messages(peer: &str) -> Vec<Message> {
    let repeated = crate::scenario::hex(&noise(300, "repeat"));
    let mut fragmented = pattern(64 * KIB, 7, 1, 256);
    fragmented.extend(noise(64 * KIB, "frag"));
    fragmented.extend(pattern(1000, 3, 5, 256));
    let mut messages = vec![
        Message::text(format!("héllo deflate from {peer} ✓ 🦀")),
        Message::binary((0..=255u8).collect::<Vec<_>>()),
        Message::binary(pattern(MIB, 31, 7, 251)),
        Message::binary(noise(256 * KIB, "peer")),
        Message::text("ö🦀".repeat(50_000)),
    ];
    messages.extend((0..REPEATS).map(|_| Message::text(repeated.clone())));
    messages.extend([
        Message::text(""),
        Message::binary(Vec::new()),
        Message::text("frag-one frag-twö frag-three 🦀"),
        Message::binary(fragmented),
    ]);
    messages
}

/// How sockjet sends a message of [`sockjet_sends`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum SendMode {
    /// [`Connection::send`]: compressed if negotiated and not below the threshold.
    Send,
    /// [`Connection::send_uncompressed`].
    Uncompressed,
    /// [`Sender::send_uncompressed`](sockjet::Sender::send_uncompressed).
    SenderUncompressed,
}

/// What sockjet sends after the echoes, and how.
pub fn sockjet_sends() -> Vec<(Message, SendMode)> {
    let compressible = "uncompressed ✓ ".repeat(4000);
    vec![
        (Message::text(compressible.clone()), SendMode::Uncompressed),
        (Message::binary(sockjet_big()), SendMode::SenderUncompressed),
        // The same again, compressed: skipping compression for one message leaves the
        // compression context as it was.
        (Message::text(compressible), SendMode::Send),
        (Message::binary(noise(256 * KIB, "sockjet")), SendMode::Send),
        (Message::binary(sockjet_big()), SendMode::Send),
        (Message::text(large_text()), SendMode::Send),
        (Message::text(END), SendMode::Send),
    ]
}

/// What permessage-deflate negotiation agreed on (RFC 7692 §7.1), as each side reports
/// it: `server_*` describe the server's compressor, `client_*` the client's. A window
/// size left out of the negotiation is 15.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Negotiated {
    /// `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits`.
    pub server_max_window_bits: u8,
    /// `client_max_window_bits`.
    pub client_max_window_bits: u8,
}

impl Negotiated {
    /// Context takeover both ways, and these window sizes.
    pub fn windows(server_max_window_bits: u8, client_max_window_bits: u8) -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits,
            client_max_window_bits,
        }
    }

    /// The same with no context takeover both ways.
    pub fn no_context_takeover(self) -> Self {
        Self {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..self
        }
    }

    /// As the peers report it.
    pub fn to_json(self) -> Value {
        json!({
            "server_no_context_takeover": self.server_no_context_takeover,
            "client_no_context_takeover": self.client_no_context_takeover,
            "server_max_window_bits": self.server_max_window_bits,
            "client_max_window_bits": self.client_max_window_bits,
        })
    }

    /// Parses the `Sec-WebSocket-Extensions` of a handshake response (its values joined
    /// with ", "); `None` if empty.
    ///
    /// # Errors
    ///
    /// If it is anything but one permessage-deflate element with known parameters.
    pub fn from_response_header(header: &str) -> Result<Option<Self>, String> {
        if header.trim().is_empty() {
            return Ok(None);
        }
        if header.contains(',') {
            return Err(format!("more than one extension accepted: {header:?}"));
        }
        let mut parts = header.split(';').map(str::trim);
        if parts.next() != Some("permessage-deflate") {
            return Err(format!("not permessage-deflate: {header:?}"));
        }
        let mut negotiated = Self::windows(15, 15);
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (param, None),
            };
            let bits = || {
                value
                    .and_then(|value| value.parse::<u8>().ok())
                    .ok_or_else(|| format!("{name} without a valid value in {header:?}"))
            };
            match name {
                "server_no_context_takeover" => negotiated.server_no_context_takeover = true,
                "client_no_context_takeover" => negotiated.client_no_context_takeover = true,
                "server_max_window_bits" => negotiated.server_max_window_bits = bits()?,
                "client_max_window_bits" => negotiated.client_max_window_bits = bits()?,
                _ => return Err(format!("unknown parameter {name:?} in {header:?}")),
            }
        }
        Ok(Some(negotiated))
    }
}

/// One test of the scenario: how each side is configured, and what they must agree on.
#[derive(Clone, Debug)]
pub struct DeflateCase {
    /// sockjet's permessage-deflate configuration; `None` turns compression off.
    pub sockjet: Option<DeflateConfig>,
    /// The peer's options: its first argument after the role, as JSON (see the peer
    /// scripts).
    pub peer_options: Value,
    /// What both sides must report as negotiated; `None`: no compression.
    pub expected: Option<Negotiated>,
}

/// Which side sockjet plays.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Side {
    Server,
    Client,
}

/// The `Sec-WebSocket-Extensions` of the handshake response, its values joined.
fn response_extensions(ws: &Connection) -> String {
    ws.response()
        .headers()
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plays sockjet's side of the scenario; returns a summary.
async fn play(mut ws: Connection, peer: &str, case: &DeflateCase) -> Result<String, String> {
    let ws = &mut ws;
    check_eq(
        "sockjet's is_compressed()",
        ws.is_compressed(),
        case.expected.is_some(),
    )?;
    let header = response_extensions(ws);
    check_eq(
        &format!("negotiation in the response's Sec-WebSocket-Extensions {header:?}"),
        Negotiated::from_response_header(&header)?,
        case.expected,
    )?;
    let messages = peer_messages(peer);
    let count = messages.len();
    for (index, message) in messages.into_iter().enumerate() {
        expect(ws, &format!("peer's message {index}"), message.clone()).await?;
        send(ws, &format!("echoing message {index}"), message).await?;
    }
    let rtt = step("sockjet ping", ws.ping())
        .await?
        .map_err(|error| format!("sockjet ping: {error}"))?;
    let sender = ws.sender();
    for (index, (message, mode)) in sockjet_sends().into_iter().enumerate() {
        let what = format!("sending message {index} ({mode:?})");
        let sending = async {
            match mode {
                SendMode::Send => ws.send(message).await,
                SendMode::Uncompressed => ws.send_uncompressed(message).await,
                SendMode::SenderUncompressed => sender.send_uncompressed(message).await,
            }
        };
        step(&what, sending)
            .await?
            .map_err(|error| format!("{what}: {error}"))?;
    }
    // The peer closes with 1000: recv ends without an error.
    match step("recv after the peer's close", ws.recv()).await? {
        Ok(None) => {}
        other => {
            return Err(format!(
                "recv after the peer's close(1000): expected Ok(None), got {other:?}"
            ));
        }
    }
    let bye = CloseFrame::new(CloseCode::NORMAL_CLOSURE, CLOSE_REASON);
    let closed = step("closed()", ws.closed()).await?;
    check_eq(
        "closed() after the peer's close",
        &closed,
        &ConnectionClosed {
            rcvd: Some(bye.clone()),
            sent: Some(bye),
            rcvd_then_sent: Some(true),
        },
    )?;
    Ok(format!(
        "compressed: {}, Sec-WebSocket-Extensions: {header:?}, {count} echoes, ping RTT {rtt:?}",
        ws.is_compressed()
    ))
}

/// The observations the peer must report after its `listening` line if it is a server:
/// `wire` (the compressed size) left out.
fn expected_peer_events(peer: &str, case: &DeflateCase) -> Vec<Value> {
    let threshold = case.sockjet.as_ref().map_or(0, |config| config.threshold);
    let compressed = |message: &Message, mode: SendMode| {
        case.expected.is_some() && mode == SendMode::Send && message.len() >= threshold
    };
    let observe = |message: &Message, mode: SendMode| {
        let mut observation = message_observation(message);
        observation["compressed"] = compressed(message, mode).into();
        observation
    };
    let mut events = vec![json!({
        "event": "open",
        "path": PATH,
        "extensions": if case.expected.is_some() { "permessage-deflate" } else { "" },
        "deflate": case.expected.map(Negotiated::to_json),
    })];
    events.extend(
        peer_messages(peer)
            .iter()
            .map(|message| observe(message, SendMode::Send)),
    );
    events.extend(
        sockjet_sends()
            .iter()
            .map(|(message, mode)| observe(message, *mode)),
    );
    events.push(json!({"event": "closed", "code": 1000, "reason": CLOSE_REASON}));
    events.push(json!({"event": "done"}));
    events
}

/// Checks the peer's observations (after `listening`), then the wire sizes of sockjet's
/// five identical echoes: equal without context takeover, and all but the first a
/// fraction of the first with it (if the window holds a whole message).
fn check_peer_events(peer: &PeerProcess, events: &[Value], case: &DeflateCase, side: Side) {
    let mut wires = Vec::new();
    let stripped: Vec<Value> = events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            if let Some(object) = event.as_object_mut() {
                wires.push(object.remove("wire").and_then(|wire| wire.as_u64()));
            }
            event
        })
        .collect();
    check_events(peer, &stripped, &expected_peer_events(peer.name(), case));
    let Some(negotiated) = case.expected else {
        return;
    };
    // The first observation is "open": the echo of peer message i is observation i + 1.
    let repeats: Vec<u64> = wires[1 + FIRST_REPEAT..1 + FIRST_REPEAT + REPEATS]
        .iter()
        .map(|wire| wire.expect("check_events made sure these were compressed"))
        .collect();
    let (no_context_takeover, window_bits) = match side {
        Side::Server => (
            negotiated.server_no_context_takeover,
            negotiated.server_max_window_bits,
        ),
        Side::Client => (
            negotiated.client_no_context_takeover,
            negotiated.client_max_window_bits,
        ),
    };
    if no_context_takeover {
        assert!(
            repeats.iter().all(|&wire| wire == repeats[0]),
            "{}: sockjet compressed {REPEATS} identical messages without context takeover to {repeats:?} bytes: expected all equal",
            peer.name()
        );
    } else if window_bits >= 10 {
        // zlib reaches back at most the window minus 262 bytes: 762 at 10 bits, more
        // than the 600 bytes of the message.
        assert!(
            repeats[1..].iter().all(|&wire| wire * 2 < repeats[0]),
            "{}: sockjet compressed {REPEATS} identical messages with context takeover ({window_bits}-bit window) to {repeats:?} bytes: expected the later ones much smaller",
            peer.name()
        );
    }
}

/// sockjet's connection options for `case`: 4 MiB messages, its compression settings,
/// and frames of at most `frame_size`.
fn config(case: &DeflateCase, frame_size: Option<usize>) -> sockjet::ConnectionConfig {
    connection_config(frame_size).compression(case.sockjet.clone())
}

/// A sockjet server, and `client` (run with the JSON options of `case` and
/// `ws://127.0.0.1:PORT`) playing the scenario against it.
pub async fn deflate_server_with(client: PeerCommand, case: DeflateCase) {
    let started = Instant::now();
    let case = Arc::new(case);
    let server = Server::builder()
        .connection(config(&case, None))
        .bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("ws://{}", server.local_addr());
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<String, String>>();
    let peer_name = client.name.clone();
    let serving = tokio::spawn(server.serve({
        let case = case.clone();
        move |ws: Connection| {
            let (tx, peer_name, case) = (tx.clone(), peer_name.clone(), case.clone());
            async move {
                let result = match ws.path() {
                    PATH => play(ws, &peer_name, &case).await,
                    other => Err(format!("unexpected path {other:?}")),
                };
                let _ = tx.send(result);
            }
        }
    }));

    let mut peer = PeerProcess::spawn(&client.arg(case.peer_options.to_string()).arg(&url));
    let run = async {
        match rx.recv().await {
            None => Err("the server stopped".to_owned()),
            Some(result) => result.map_err(|error| format!("sockjet server: {error}")),
        }
    };
    let (summary, events) = beside_peer(&mut peer, TEST_TIMEOUT, None, run).await;
    serving.abort();
    check_peer_events(&peer, &events, &case, Side::Server);
    println!(
        "{} ↔ sockjet server, deflate: ok in {:?} ({summary})",
        peer.name(),
        started.elapsed(),
    );
}

/// `server` (run with the JSON options of `case`; it prints
/// `{"event":"listening","port":N}`), and a sockjet client playing the scenario against
/// it with frames of at most [`CLIENT_FRAME_SIZE`].
pub async fn deflate_client_with(server: PeerCommand, case: DeflateCase) {
    let started = Instant::now();
    let (mut peer, port) = spawn_listening(&server.arg(case.peer_options.to_string())).await;
    let name = peer.name().to_owned();
    let run = async {
        let ws = step(
            "connecting",
            ClientBuilder::new(format!("ws://127.0.0.1:{port}{PATH}"))
                .connection(config(&case, Some(CLIENT_FRAME_SIZE)))
                .connect(),
        )
        .await?
        .map_err(|error| format!("connecting: {error}"))?;
        play(ws, &name, &case).await
    };
    let (summary, events) = beside_peer(&mut peer, TEST_TIMEOUT, Some("sockjet client"), run).await;
    check_peer_events(&peer, &events[1..], &case, Side::Client);
    println!(
        "{} ↔ sockjet client, deflate: ok in {:?} ({summary})",
        peer.name(),
        started.elapsed()
    );
}

/// A sockjet configuration that restricts everything it can: no context takeover both
/// ways, 10-bit server and 9-bit client windows, every message compressed (threshold 0),
/// at level 9 with zlib's largest `memLevel`. Negotiated as
/// `Negotiated::windows(10, 9).no_context_takeover()` with a peer that accepts it.
pub fn sockjet_restricted() -> DeflateConfig {
    DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(Some(10))
        .client_max_window_bits(Some(9))
        .threshold(0)
        .compression_level(9)
        .mem_level(9)
}
