//! sockjet's side of the interop scenario that `peers/python_scenario.py` and
//! `peers/node_scenario.js` play on theirs, and the observations the peers must report.
//!
//! Two connections, one after the other:
//!
//! * `/main`: the peer sends text (non-ASCII), binary, 1 MiB of binary, a fragmented text
//!   and a fragmented binary message; sockjet checks each and answers with its own text,
//!   binary, 1 MiB and a large non-ASCII text. sockjet pings (an RTT comes back), says
//!   "ping me", the peer pings and reports the pong, says "pong received", then closes
//!   with 4001 "bye": sockjet's `recv()` fails with those frames, and `closed()` says so.
//! * `/sockjet-closes`: the peer says hello; sockjet closes with 1001; the peer reports
//!   the code and reason it received.

use std::{fmt::Display, future::Future, time::Duration};

use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sockjet::{
    ClientBuilder, CloseCode, CloseFrame, Connection, ConnectionClosed, ConnectionConfig,
    ErrorKind, Message, Server,
};
use tokio::{sync::mpsc, time::timeout};

use crate::process::{PeerCommand, PeerProcess};

/// Bound of every single step (a send, a receive, a ping, a close).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound of a whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// 1 MiB.
pub const MIB: usize = 1 << 20;

/// Message size limit on both sides: above the 1 MiB messages, so these pass.
pub const MAX_SIZE: usize = 4 * MIB;

/// The text sockjet sends first.
pub const SOCKJET_TEXT: &str = "¡hola from sockjet! ✓ 🦀 ünïcødé";

/// The close reason sockjet sends with 1001.
pub const GOING_AWAY_REASON: &str = "sockjet going away";

/// Deterministic bytes: `(i * mul + add) % modulo`; the peers compute the same.
pub fn pattern(length: usize, mul: usize, add: usize, modulo: usize) -> Vec<u8> {
    (0..length)
        .map(|i| u8::try_from((i * mul + add) % modulo).expect("modulo is at most 256"))
        .collect()
}

/// The 1 MiB the peers (and the browser) send: a period of 251 bytes, so that a lost,
/// repeated or misplaced chunk of any power-of-two size shows.
pub fn peer_big() -> Vec<u8> {
    pattern(MIB, 31, 7, 251)
}

/// The 1 MiB sockjet sends.
pub fn sockjet_big() -> Vec<u8> {
    pattern(MIB, 17, 3, 253)
}

/// The large text sockjet sends: 300 000 bytes of 2- and 4-byte characters. With a 64 KiB
/// send frame size, fragment boundaries fall inside characters.
pub fn large_text() -> String {
    "ö🦀".repeat(50_000)
}

/// SHA-1 in hex.
pub fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub(crate) fn hex(data: &[u8]) -> String {
    data.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How sockjet's side of a connection ended when the peer closed first with `code` and
/// `reason`, and sockjet answered with the same.
pub fn closed_by_peer(code: CloseCode, reason: &str) -> ConnectionClosed {
    let frame = CloseFrame::new(code, reason);
    ConnectionClosed {
        rcvd: Some(frame.clone()),
        sent: Some(frame),
        rcvd_then_sent: Some(true),
    }
}

/// How a connection ended when sockjet closed first with `code` and `reason`, and the
/// peer answered with the same.
pub fn closed_by_sockjet(code: CloseCode, reason: &str) -> ConnectionClosed {
    ConnectionClosed {
        rcvd_then_sent: Some(false),
        ..closed_by_peer(code, reason)
    }
}

/// Connection options for sockjet in these tests: 4 MiB messages, and optionally
/// fragmented sending (`max_send_frame_size`).
pub fn connection_config(max_send_frame_size: Option<usize>) -> ConnectionConfig {
    let mut config = ConnectionConfig::default().max_message_size(Some(MAX_SIZE));
    config.protocol = config.protocol.max_send_frame_size(max_send_frame_size);
    config
}

/// The observation a peer prints for a message it received (see `describe` in the
/// peer scripts).
pub fn message_observation(message: &Message) -> Value {
    let data = message.as_bytes();
    let mut observation = json!({
        "event": "message",
        "type": if message.is_text() { "text" } else { "binary" },
        "len": data.len(),
        "sha1": sha1_hex(data),
    });
    if data.len() <= 256 {
        observation[if message.is_text() { "text" } else { "hex" }] = match message.as_text() {
            Some(text) => text.into(),
            None => hex(data).into(),
        };
    }
    observation
}

/// Every observation a scripted peer (client or server) must print, in order, after its
/// `listening` line if it is a server.
pub fn expected_peer_events() -> Vec<Value> {
    vec![
        json!({"event": "open", "path": "/main"}),
        message_observation(&Message::text(SOCKJET_TEXT)),
        message_observation(&Message::binary((0..=255u8).rev().collect::<Vec<_>>())),
        message_observation(&Message::binary(sockjet_big())),
        message_observation(&Message::text(large_text())),
        message_observation(&Message::text("ping me")),
        json!({"event": "pong", "payload": "peer-ping"}),
        json!({"event": "closed", "code": 4001, "reason": "bye"}),
        json!({"event": "open", "path": "/sockjet-closes"}),
        json!({"event": "closed", "code": 1001, "reason": GOING_AWAY_REASON}),
        json!({"event": "done"}),
    ]
}

pub(crate) async fn step<T>(what: &str, future: impl Future<Output = T>) -> Result<T, String> {
    timeout(STEP_TIMEOUT, future)
        .await
        .map_err(|_| format!("{what}: timed out after {STEP_TIMEOUT:?}"))
}

fn describe(message: &Message) -> String {
    match message {
        Message::Text(text) if text.len() <= 200 => format!("text {:?}", &**text),
        Message::Text(text) => format!("text of {} bytes", text.len()),
        Message::Binary(data) if data.len() <= 64 => format!("binary {}", hex(data)),
        Message::Binary(data) => format!("binary of {} bytes", data.len()),
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(index) => format!("first difference at byte {index}"),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

/// Receives one message and checks that it is `expected`.
pub(crate) async fn expect(
    ws: &mut Connection,
    what: &str,
    expected: Message,
) -> Result<(), String> {
    let received = step(what, ws.recv()).await?;
    match received {
        Ok(Some(message)) if message == expected => Ok(()),
        Ok(Some(message)) => Err(format!(
            "{what}: expected {}, received {} ({})",
            describe(&expected),
            describe(&message),
            first_difference(expected.as_bytes(), message.as_bytes())
        )),
        Ok(None) => Err(format!(
            "{what}: expected {}, the connection closed ({})",
            describe(&expected),
            ws.closed().await
        )),
        Err(error) => Err(format!(
            "{what}: expected {}, recv failed: {error}",
            describe(&expected)
        )),
    }
}

pub(crate) async fn send(
    ws: &Connection,
    what: &str,
    message: impl Into<Message>,
) -> Result<(), String> {
    step(what, ws.send(message))
        .await?
        .map_err(|error| format!("{what}: send failed: {error}"))
}

pub(crate) fn check_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    actual: T,
    expected: T,
) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
    }
}

/// What sockjet saw on `/main`.
#[derive(Debug)]
pub struct MainOutcome {
    /// Round-trip time of sockjet's `ping()`.
    pub rtt: Duration,
    /// How the connection ended.
    pub closed: ConnectionClosed,
}

/// Plays sockjet's side of `/main` (see the module docs) against the peer named `peer`.
///
/// # Errors
///
/// The first step that went wrong.
pub async fn play_main(mut ws: Connection, peer: &str) -> Result<MainOutcome, String> {
    let ws = &mut ws;
    expect(
        ws,
        "peer's text",
        Message::text(format!("héllo from {peer} ✓ 🦀")),
    )
    .await?;
    send(ws, "sending text", SOCKJET_TEXT).await?;
    expect(
        ws,
        "peer's binary",
        Message::binary((0..=255u8).collect::<Vec<_>>()),
    )
    .await?;
    send(ws, "sending binary", (0..=255u8).rev().collect::<Vec<_>>()).await?;
    expect(ws, "peer's 1 MiB binary", Message::binary(peer_big())).await?;
    send(ws, "sending 1 MiB binary", sockjet_big()).await?;
    expect(
        ws,
        "peer's fragmented text",
        Message::text("frag-one frag-twö frag-three 🦀"),
    )
    .await?;
    expect(
        ws,
        "peer's fragmented binary",
        Message::binary(vec![0u8, 1, 2, 3, 4]),
    )
    .await?;
    send(ws, "sending the large text", large_text()).await?;

    let rtt = step("sockjet ping", ws.ping())
        .await?
        .map_err(|error| format!("sockjet ping: {error}"))?;
    send(ws, "sending 'ping me'", "ping me").await?;
    // While sockjet waits here, the peer pings it; sockjet must answer.
    expect(ws, "peer's 'pong received'", Message::text("pong received")).await?;

    // The peer closes with 4001 "bye"; sockjet echoes it.
    let bye = CloseFrame::new(CloseCode::from(4001), "bye");
    let expected = ConnectionClosed {
        rcvd: Some(bye.clone()),
        sent: Some(bye),
        rcvd_then_sent: Some(true),
    };
    match step("recv after the peer's close", ws.recv()).await? {
        Ok(Some(message)) => {
            return Err(format!(
                "recv after the peer's close: expected an error, received {}",
                describe(&message)
            ));
        }
        Ok(None) => {
            return Err(format!(
                "recv after the peer's close with 4001: expected an error (4001 is not a normal closure), got Ok(None) ({})",
                ws.closed().await
            ));
        }
        Err(error) => {
            check_eq(
                "recv error kind after 4001",
                error.kind(),
                ErrorKind::Closed,
            )?;
            check_eq("recv error's close frames", error.closed(), Some(&expected))?;
        }
    }
    let closed = step("closed() after the peer's close", ws.closed()).await?;
    check_eq("closed() after the peer's close", &closed, &expected)?;
    Ok(MainOutcome { rtt, closed })
}

/// Plays sockjet's side of `/sockjet-closes` (see the module docs): returns how the
/// connection ended.
///
/// # Errors
///
/// The first step that went wrong.
pub async fn play_closer(mut ws: Connection, peer: &str) -> Result<ConnectionClosed, String> {
    expect(
        &mut ws,
        "peer's hello",
        Message::text(format!("hello again from {peer}")),
    )
    .await?;
    step(
        "close(1001)",
        ws.close(CloseCode::GOING_AWAY, GOING_AWAY_REASON),
    )
    .await?
    .map_err(|error| format!("close(1001): {error}"))?;
    let going_away = CloseFrame::new(CloseCode::GOING_AWAY, GOING_AWAY_REASON);
    let closed = step("closed() after close(1001)", ws.closed()).await?;
    check_eq(
        "closed() after close(1001)",
        &closed,
        &ConnectionClosed {
            rcvd: Some(going_away.clone()),
            sent: Some(going_away),
            rcvd_then_sent: Some(false),
        },
    )?;
    match step("recv after close(1001)", ws.recv()).await? {
        Ok(None) => Ok(closed),
        other => Err(format!(
            "recv after close(1001): expected Ok(None), got {other:?}"
        )),
    }
}

/// What a sockjet server handler reports to the test.
pub(crate) type Report = (String, Result<String, String>);

pub(crate) fn fail_with(peer: &PeerProcess, what: impl Display) -> ! {
    peer.fail(format!("{} ↔ sockjet: {what}", peer.name()))
}

/// Starts `server`, a peer that prints `{"event":"listening","port":N}` first, and
/// returns it with that port; fails the test with its output if no port comes.
pub(crate) async fn spawn_listening(server: &PeerCommand) -> (PeerProcess, u16) {
    let mut peer = PeerProcess::spawn(server);
    let port = peer
        .listening_port()
        .await
        .unwrap_or_else(|error| fail_with(&peer, error));
    (peer, port)
}

/// Runs sockjet's side, `run`, while `peer` runs (at most `limit`), then waits for the
/// peer to exit; fails the test with the peer's output if either goes wrong (an error of
/// `run` after `side: `, if given). Returns what `run` returned and the peer's events.
pub(crate) async fn beside_peer<T>(
    peer: &mut PeerProcess,
    limit: Duration,
    side: Option<&str>,
    run: impl Future<Output = Result<T, String>>,
) -> (T, Vec<Value>) {
    let output = match peer.while_running(limit, run).await {
        Ok(output) => output,
        Err(error) => match side {
            Some(side) => fail_with(peer, format_args!("{side}: {error}")),
            None => fail_with(peer, error),
        },
    };
    let events = peer
        .finish()
        .await
        .unwrap_or_else(|error| fail_with(peer, error));
    (output, events)
}

/// Waits for the reports of the scenario's two paths from `server`'s handlers (e.g.
/// "sockjet server"); returns their summaries, or the first error.
pub(crate) async fn path_reports(
    reports: &mut mpsc::UnboundedReceiver<Report>,
    server: &str,
) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    while done.len() < 2 {
        let Some((path, result)) = reports.recv().await else {
            return Err(format!("{server} stopped"));
        };
        match result {
            Ok(summary) => done.push(format!("{path}: {summary}")),
            Err(error) => return Err(format!("{server} on {path}: {error}")),
        }
    }
    Ok(done)
}

/// Test 1 and 2: a sockjet server, and `client` (run with `ws://127.0.0.1:PORT`) playing
/// the scenario against it. sockjet sends each message as one frame.
pub async fn sockjet_server_with(client: PeerCommand) {
    let started = std::time::Instant::now();
    let server = Server::builder()
        .connection(connection_config(None))
        .bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("ws://{}", server.local_addr());
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    let peer_name = client.name.clone();
    let serving = tokio::spawn(server.serve(move |ws: Connection| {
        let tx = tx.clone();
        let peer_name = peer_name.clone();
        async move {
            let path = ws.path().to_owned();
            let result = match path.as_str() {
                "/main" => play_main(ws, &peer_name)
                    .await
                    .map(|outcome| format!("ping RTT {:?}", outcome.rtt)),
                "/sockjet-closes" => play_closer(ws, &peer_name)
                    .await
                    .map(|closed| closed.to_string()),
                other => Err(format!("unexpected path {other:?}")),
            };
            let _ = tx.send((path, result));
        }
    }));

    let mut peer = PeerProcess::spawn(&client.arg(&url));
    let run = path_reports(&mut rx, "sockjet server");
    let (summaries, events) = beside_peer(&mut peer, TEST_TIMEOUT, None, run).await;
    serving.abort();
    check_events(&peer, &events, &expected_peer_events());
    println!(
        "{} ↔ sockjet server: ok in {:?} ({})",
        peer.name(),
        started.elapsed(),
        summaries.join("; ")
    );
}

/// Test 3 and 4: `server` (which prints `{"event":"listening","port":N}`), and a sockjet
/// client playing the scenario against it. sockjet fragments what it sends into frames of
/// at most 64 KiB, so the 1 MiB and the large text arrive in fragments, some split inside
/// a character.
pub async fn sockjet_client_with(server: PeerCommand) {
    let started = std::time::Instant::now();
    let (mut peer, port) = spawn_listening(&server).await;
    let name = peer.name().to_owned();
    let run = async {
        let config = connection_config(Some(64 * 1024));
        let connect = |path: &str| {
            ClientBuilder::new(format!("ws://127.0.0.1:{port}{path}"))
                .connection(config.clone())
                .connect()
        };
        let ws = step("connecting to /main", connect("/main"))
            .await?
            .map_err(|error| format!("connecting to /main: {error}"))?;
        let main = play_main(ws, &name).await?;
        let ws = step("connecting to /sockjet-closes", connect("/sockjet-closes"))
            .await?
            .map_err(|error| format!("connecting to /sockjet-closes: {error}"))?;
        let closed = play_closer(ws, &name).await?;
        Ok::<_, String>(format!(
            "/main: ping RTT {:?}; /sockjet-closes: {closed}",
            main.rtt
        ))
    };
    let (summary, events) = beside_peer(&mut peer, TEST_TIMEOUT, Some("sockjet client"), run).await;
    check_events(&peer, &events[1..], &expected_peer_events());
    println!(
        "{} ↔ sockjet client: ok in {:?} ({summary})",
        peer.name(),
        started.elapsed()
    );
}

/// Compares a peer's observations with the expected ones, one by one.
pub fn check_events(peer: &PeerProcess, events: &[Value], expected: &[Value]) {
    for (index, (actual, expected)) in events.iter().zip(expected).enumerate() {
        if actual != expected {
            fail_with(
                peer,
                format_args!(
                    "observation {index}: expected {expected}, the peer reported {actual}"
                ),
            );
        }
    }
    if events.len() != expected.len() {
        fail_with(
            peer,
            format_args!(
                "expected {} observations, the peer reported {}",
                expected.len(),
                events.len()
            ),
        );
    }
}
