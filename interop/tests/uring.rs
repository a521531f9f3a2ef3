//! Third-party clients against sockjet's io_uring engine (`sockjet-uring`, the engine
//! `sockjet serve` runs by default on Linux): Python `websockets` and Node.js `ws` echo
//! clients (`sockjet_interop::echo_client`), and headless Chromium on the same page as
//! `browser.rs` (peers/browser.html), each with and without permessage-deflate.
//!
//! Skipped, with a message, where the kernel refuses io_uring.
#![cfg(target_os = "linux")]

use std::{
    collections::HashMap,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;
use sockjet::proto::DeflateConfig;
use sockjet_interop::{
    chromium::{Profile, echoed_messages, expected_report, page_url},
    echo_client,
    process::{PeerCommand, PeerProcess},
    scenario::{GOING_AWAY_REASON, MIB, closed_by_peer, closed_by_sockjet, connection_config},
};
use sockjet_uring::{
    CloseCode, ConnectionClosed, Handler, Message, Options, Request, Server, ServerConfig,
    ShutdownHandle, Socket, SocketId,
};

/// Messages received on a connection: type and length.
type Received = Vec<(&'static str, usize)>;

/// What the handler saw of one connection, for the test.
#[derive(Debug)]
enum Seen {
    /// `/echo`: the messages (type, length), and how it closed.
    Echo {
        messages: Received,
        closed: ConnectionClosed,
    },
    /// `/server-closes`: how it closed.
    ServerCloses(ConnectionClosed),
    /// `/report`: the page's results.
    Report(Result<Value, String>),
}

/// The routes of browser.html, on one worker: `/echo` echoes, `/server-closes` sends one
/// message and closes with 1001 at once, `/report` takes the page's JSON.
struct Routes {
    paths: HashMap<SocketId, (String, Received)>,
    seen: mpsc::Sender<Seen>,
}

impl Handler for Routes {
    fn open(&mut self, socket: &mut Socket<'_>, request: &Request) {
        let path = request.uri().path().to_owned();
        if path == "/server-closes" {
            let _ = socket.send_text("bye from sockjet");
            socket.close(CloseCode::GOING_AWAY, GOING_AWAY_REASON);
        }
        self.paths.insert(socket.id(), (path, Vec::new()));
    }

    fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
        let Some((path, messages)) = self.paths.get_mut(&socket.id()) else {
            return;
        };
        match path.as_str() {
            "/echo" => {
                let kind = if message.is_text() { "text" } else { "binary" };
                messages.push((kind, message.len()));
                if let Err(error) = socket.send(message) {
                    let _ = self.seen.send(Seen::Report(Err(format!("echo: {error}"))));
                }
            }
            "/report" => {
                let report = match &message {
                    Message::Text(text) => serde_json::from_str(text)
                        .map_err(|error| format!("not JSON ({error}): {}", &**text)),
                    other => Err(format!("expected the JSON report, got {other:?}")),
                };
                let _ = self.seen.send(Seen::Report(report));
            }
            other => {
                let error = format!("a message on unexpected path {other:?}");
                let _ = self.seen.send(Seen::Report(Err(error)));
            }
        }
    }

    fn closed(&mut self, id: SocketId, closed: &ConnectionClosed) {
        let Some((path, messages)) = self.paths.remove(&id) else {
            return;
        };
        let seen = match path.as_str() {
            "/echo" => Seen::Echo {
                messages,
                closed: closed.clone(),
            },
            "/server-closes" => Seen::ServerCloses(closed.clone()),
            _ => return,
        };
        let _ = self.seen.send(seen);
    }
}

/// A uring server on 127.0.0.1 with two workers, shut down when dropped.
struct Running {
    port: u16,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    seen: mpsc::Receiver<Seen>,
}

impl Running {
    /// Starts one with `deflate` as its compression and 4 MiB messages, or `None` if
    /// this kernel has no usable io_uring.
    fn start(deflate: Option<DeflateConfig>) -> Option<Self> {
        if let Err(error) = sockjet_uring::probe() {
            eprintln!("skipped: no io_uring here ({error})");
            return None;
        }
        let options = Options {
            threads: 2,
            config: ServerConfig::default()
                .protocol(connection_config(None).compression(deflate).protocol),
            ..Options::default()
        };
        let server = Server::bind("127.0.0.1:0", options).expect("bind 127.0.0.1:0");
        let port = server.local_addr().expect("local address").port();
        let shutdown = server.shutdown_handle();
        let (tx, seen) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            server.run(move || Routes {
                paths: HashMap::new(),
                seen: tx.clone(),
            })
        });
        Some(Self {
            port,
            shutdown,
            thread: Some(thread),
            seen,
        })
    }

    /// The next connection the handler saw, within `limit`.
    fn next_seen(&self, limit: Duration) -> Result<Seen, String> {
        self.seen
            .recv_timeout(limit)
            .map_err(|error| format!("the server saw nothing more within {limit:?}: {error}"))
    }

    /// Shuts down and checks that the server stopped cleanly.
    fn stop(mut self) {
        self.shutdown.shutdown();
        let result = self.thread.take().expect("running").join();
        assert!(
            matches!(result, Ok(Ok(()))),
            "the uring server stopped with {result:?}"
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

/// Runs `client` (for `url`) against a uring server, and checks both sides.
async fn echo_client_with(client: fn(&str, bool) -> PeerCommand, compression: bool) {
    let started = Instant::now();
    let deflate = compression.then(DeflateConfig::default);
    let Some(server) = Running::start(deflate) else {
        return;
    };
    let command = client(&format!("ws://127.0.0.1:{}/echo", server.port), compression);
    let extensions = echo_client::run(&command, compression).await;
    let seen = server
        .next_seen(Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("{}: {error}", command.name));
    let Seen::Echo { messages, closed } = seen else {
        panic!("{}: the server saw {seen:?}", command.name);
    };
    // 8 messages, then 100 pipelined ones.
    assert_eq!(messages.len(), 108, "messages the server received");
    assert_eq!(
        messages[3],
        ("binary", MIB),
        "the server received the 1 MiB message whole"
    );
    assert_eq!(
        closed,
        closed_by_peer(CloseCode::NORMAL_CLOSURE, "done"),
        "how the connection closed, as the server saw it"
    );
    server.stop();
    println!(
        "{} ↔ sockjet-uring: ok in {:?} (Sec-WebSocket-Extensions {extensions:?})",
        command.name,
        started.elapsed()
    );
}

#[tokio::test]
async fn python_client_with_uring_server() {
    echo_client_with(echo_client::python, false).await;
}

#[tokio::test]
async fn python_client_with_uring_server_compressed() {
    echo_client_with(echo_client::python, true).await;
}

#[tokio::test]
async fn node_client_with_uring_server() {
    echo_client_with(echo_client::node, false).await;
}

#[tokio::test]
async fn node_client_with_uring_server_compressed() {
    echo_client_with(echo_client::node, true).await;
}

/// Chromium offers permessage-deflate: accepted with sockjet's default configuration.
#[tokio::test]
async fn chromium_with_uring_server() {
    chromium_with(Some(DeflateConfig::default())).await;
}

/// Compression off on the server: Chromium's offer is declined.
#[tokio::test]
async fn chromium_with_uring_server_without_compression() {
    chromium_with(None).await;
}

/// Chromium's start on a busy 2-core machine is the slow part.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

async fn chromium_with(deflate: Option<DeflateConfig>) {
    let started = Instant::now();
    let compressed = deflate.is_some();
    let Some(server) = Running::start(deflate) else {
        return;
    };
    let profile = Profile::new(env!("CARGO_TARGET_TMPDIR"));
    let browser = profile.command(Vec::new(), page_url(server.port, false));
    let mut chromium = PeerProcess::spawn(&browser);

    // The server reports each connection as it closes; the page's report comes last.
    let collect = async {
        let (mut echo, mut closes, mut report) = (None, None, None);
        let deadline = Instant::now() + BROWSER_TIMEOUT;
        while echo.is_none() || closes.is_none() || report.is_none() {
            match server.seen.try_recv() {
                Ok(Seen::Echo { messages, closed }) => echo = Some((messages, closed)),
                Ok(Seen::ServerCloses(closed)) => closes = Some(closed),
                Ok(Seen::Report(result)) => report = Some(result?),
                Err(mpsc::TryRecvError::Disconnected) => return Err("the server stopped".into()),
                Err(mpsc::TryRecvError::Empty) if Instant::now() > deadline => {
                    return Err("timed out".to_owned());
                }
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Ok::<_, String>((echo.unwrap(), closes.unwrap(), report.unwrap()))
    };
    let ((messages, echo_closed), closes_closed, report) = chromium
        .while_running(BROWSER_TIMEOUT, collect)
        .await
        .unwrap_or_else(|error| chromium.fail(format!("chromium ↔ sockjet-uring: {error}")));
    drop(chromium);
    server.stop();

    // The page's `WebSocket.extensions` is what the server answered.
    let extensions = report["echo"]["extensions"].clone();
    assert_eq!(
        extensions
            .as_str()
            .is_some_and(|value| value.starts_with("permessage-deflate")),
        compressed,
        "the extensions Chromium saw negotiated: {extensions}"
    );
    let expected = expected_report(extensions.as_str().unwrap_or_default());
    assert_eq!(
        report, expected,
        "the page's report (left) differs from the expected one (right)"
    );

    assert_eq!(
        messages,
        echoed_messages(),
        "messages the server received on /echo"
    );
    assert_eq!(
        echo_closed,
        closed_by_peer(CloseCode::NORMAL_CLOSURE, "done"),
        "how /echo closed"
    );
    assert_eq!(
        closes_closed,
        closed_by_sockjet(CloseCode::GOING_AWAY, GOING_AWAY_REASON),
        "how /server-closes closed (chromium echoes code and reason)"
    );
    println!(
        "chromium ↔ sockjet-uring: ok in {:?} (extensions {extensions})",
        started.elapsed()
    );
}
