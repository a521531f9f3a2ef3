//! 5. Headless Chromium ↔ sockjet server (peers/browser.html).
//!
//! The page talks to a sockjet server on three paths: `/echo` (sockjet echoes, and pings
//! the browser once), `/server-closes` (sockjet sends one message and closes with 1001)
//! and `/report` (the page sends its JSON results). The test checks both sides.
//!
//! Chromium always offers permessage-deflate. With sockjet's default configuration both
//! sides must report it negotiated (`WebSocket.extensions` in the page, `is_compressed()`
//! in sockjet); with `compression(None)`, neither.

use std::time::Duration;

use serde_json::Value;
use sockjet::{
    CloseCode, Connection, ConnectionClosed, Message, Server,
    proto::{DeflateConfig, http::header::SEC_WEBSOCKET_EXTENSIONS},
    tls::ServerTls,
};
use sockjet_interop::{
    chromium::{Profile, echoed_messages, expected_report, page_url},
    process::PeerProcess,
    scenario::{GOING_AWAY_REASON, closed_by_peer, closed_by_sockjet, connection_config},
    tls::TestPki,
};
use tokio::{sync::mpsc, time::timeout};

/// Chromium's start on a busy 2-core machine is the slow part.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection's compression: `is_compressed()` and the `Sec-WebSocket-Extensions` that
/// sockjet answered.
type Compression = (bool, String);

fn compression(ws: &Connection) -> Compression {
    let header = ws
        .response()
        .headers()
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    (ws.is_compressed(), header)
}

/// What a handler saw, for the test.
#[derive(Debug)]
enum Seen {
    /// `/echo`: the compression, the messages (type, length), the ping RTT, how `recv`
    /// ended, how it closed.
    Echo {
        compression: Compression,
        messages: Vec<(&'static str, usize)>,
        rtt: Option<Result<Duration, String>>,
        end: Result<(), String>,
        closed: ConnectionClosed,
    },
    /// `/server-closes`: the compression, the result of `send` and `close`, and how it
    /// closed.
    ServerCloses {
        compression: Compression,
        result: Result<(), String>,
        closed: ConnectionClosed,
    },
    /// `/report`: the page's results.
    Report(Result<Value, String>),
}

async fn echo(mut ws: Connection) -> Seen {
    let compression = compression(&ws);
    let mut messages = Vec::new();
    let mut rtt = None;
    let end = loop {
        match ws.recv().await {
            Ok(Some(message)) => {
                messages.push((
                    if message.is_text() { "text" } else { "binary" },
                    message.len(),
                ));
                if rtt.is_none() {
                    // The browser must answer sockjet's ping.
                    rtt = Some(
                        timeout(Duration::from_secs(10), ws.ping())
                            .await
                            .map_err(|_| "timed out".to_owned())
                            .and_then(|result| result.map_err(|error| error.to_string())),
                    );
                }
                if let Err(error) = ws.send(message).await {
                    break Err(format!("echo send: {error}"));
                }
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(format!("recv: {error}")),
        }
    };
    let closed = ws.closed().await;
    Seen::Echo {
        compression,
        messages,
        rtt,
        end,
        closed,
    }
}

async fn server_closes(ws: Connection) -> Seen {
    let compression = compression(&ws);
    let result = async {
        ws.send("bye from sockjet")
            .await
            .map_err(|error| format!("send: {error}"))?;
        ws.close(CloseCode::GOING_AWAY, GOING_AWAY_REASON)
            .await
            .map_err(|error| format!("close: {error}"))
    }
    .await;
    Seen::ServerCloses {
        compression,
        result,
        closed: ws.closed().await,
    }
}

async fn report(mut ws: Connection) -> Seen {
    let report = match ws.recv().await {
        Ok(Some(Message::Text(text))) => {
            serde_json::from_str(&text).map_err(|error| format!("not JSON ({error}): {}", &*text))
        }
        other => Err(format!("expected the JSON report, got {other:?}")),
    };
    while let Ok(Some(_)) = ws.recv().await {}
    Seen::Report(report)
}

/// sockjet's default configuration: Chromium's offer of permessage-deflate is accepted.
#[tokio::test]
async fn chromium_with_sockjet_server() {
    chromium_with(Some(DeflateConfig::default()), false).await;
}

/// The same over `wss://`: sockjet's TLS with a certificate from a test CA, which
/// Chromium accepts by its public key (`--ignore-certificate-errors-spki-list`).
#[tokio::test]
async fn chromium_with_sockjet_server_over_wss() {
    chromium_with(Some(DeflateConfig::default()), true).await;
}

/// sockjet's compression off: Chromium's offer is declined.
#[tokio::test]
async fn chromium_with_sockjet_server_without_compression() {
    chromium_with(None, false).await;
}

/// Runs the page against a sockjet server with `deflate` as its compression, over TLS if
/// `tls`.
async fn chromium_with(deflate: Option<DeflateConfig>, tls: bool) {
    let started = std::time::Instant::now();
    let compressed = deflate.is_some();
    let pki = tls.then(|| TestPki::new("chromium"));
    let mut builder = Server::builder().connection(connection_config(None).compression(deflate));
    if let Some(pki) = &pki {
        builder =
            builder.tls(ServerTls::from_pem_files(&pki.cert, &pki.key).expect("test PEM files"));
    }
    let server = builder.bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let port = server.local_addr().port();
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let serving = tokio::spawn(server.serve(move |ws: Connection| {
        let tx = tx.clone();
        async move {
            let seen = match ws.path() {
                "/echo" => echo(ws).await,
                "/server-closes" => server_closes(ws).await,
                "/report" => report(ws).await,
                other => Seen::Report(Err(format!("unexpected path {other:?}"))),
            };
            let _ = tx.send(seen);
        }
    }));

    let profile = Profile::new(env!("CARGO_TARGET_TMPDIR"));
    let spki = pki
        .iter()
        .map(|pki| format!("--ignore-certificate-errors-spki-list={}", pki.spki_sha256));
    let browser = profile.command(spki.collect(), page_url(port, tls));
    let mut chromium = PeerProcess::spawn(&browser);

    // The three handlers report in any order; the report comes last from the page.
    let collect = async {
        let (mut echo, mut closes, mut report) = (None, None, None);
        while echo.is_none() || closes.is_none() || report.is_none() {
            match rx.recv().await {
                None => return Err("the server stopped".to_owned()),
                Some(seen @ Seen::Echo { .. }) => echo = Some(seen),
                Some(seen @ Seen::ServerCloses { .. }) => closes = Some(seen),
                Some(Seen::Report(result)) => report = Some(result?),
            }
        }
        Ok((echo.unwrap(), closes.unwrap(), report.unwrap()))
    };
    let (echo, closes, report) = chromium
        .while_running(BROWSER_TIMEOUT, collect)
        .await
        .unwrap_or_else(|error| chromium.fail(format!("chromium ↔ sockjet server: {error}")));
    drop(chromium); // kills the browser and its children
    serving.abort();

    // What sockjet answered to Chromium's offer, and what each side made of it.
    let Seen::Echo {
        compression: (echo_compressed, echo_extensions),
        ..
    } = &echo
    else {
        unreachable!()
    };
    let Seen::ServerCloses {
        compression: (closes_compressed, closes_extensions),
        ..
    } = &closes
    else {
        unreachable!()
    };
    assert_eq!(
        (*echo_compressed, *closes_compressed),
        (compressed, compressed),
        "sockjet's is_compressed() on /echo and /server-closes (Sec-WebSocket-Extensions {echo_extensions:?}, {closes_extensions:?})"
    );
    if compressed {
        assert!(
            echo_extensions.starts_with("permessage-deflate"),
            "sockjet's Sec-WebSocket-Extensions to Chromium: {echo_extensions:?}"
        );
    } else {
        assert_eq!(echo_extensions, "", "sockjet's Sec-WebSocket-Extensions");
    }
    assert_eq!(
        closes_extensions, echo_extensions,
        "sockjet's Sec-WebSocket-Extensions on /server-closes and /echo"
    );

    // What the page saw; its `WebSocket.extensions` is what sockjet answered.
    let expected = expected_report(echo_extensions);
    assert_eq!(
        report, expected,
        "the page's report (left) differs from the expected one (right)"
    );

    // What sockjet saw.
    let Seen::Echo {
        messages,
        rtt,
        end,
        closed,
        ..
    } = echo
    else {
        unreachable!()
    };
    assert_eq!(
        messages,
        echoed_messages(),
        "messages sockjet received on /echo"
    );
    let rtt = rtt
        .expect("sockjet pinged")
        .unwrap_or_else(|error| panic!("sockjet's ping to chromium: {error}"));
    assert_eq!(end, Ok(()), "recv on /echo after the browser's close(1000)");
    assert_eq!(
        closed,
        closed_by_peer(CloseCode::NORMAL_CLOSURE, "done"),
        "how /echo closed"
    );
    let Seen::ServerCloses { result, closed, .. } = closes else {
        unreachable!()
    };
    assert_eq!(result, Ok(()), "send and close(1001) on /server-closes");
    assert_eq!(
        closed,
        closed_by_sockjet(CloseCode::GOING_AWAY, GOING_AWAY_REASON),
        "how /server-closes closed (chromium echoes code and reason)"
    );
    println!(
        "chromium ↔ sockjet server: ok in {:?} (Sec-WebSocket-Extensions {}; ping RTT {rtt:?}; /server-closes: {closed})",
        started.elapsed(),
        report["echo"]["extensions"],
    );
}
