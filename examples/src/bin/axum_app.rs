//! An axum app serving HTTP and sockjet WebSockets on one port: an HTML chat page at `/`,
//! a health check at `/healthz`, and a chat room at `/ws` where every message goes to
//! everyone connected (an echo, with one client). Over HTTP/1.1 and HTTP/2 (RFC 8441).
//!
//! `cargo run -p sockjet-examples --bin axum_app -- 127.0.0.1:8080`, then open
//! <http://127.0.0.1:8080/> in two tabs, or `sockjet connect ws://127.0.0.1:8080/ws`.

use std::net::SocketAddr;

use axum::{
    Router,
    extract::State,
    response::{Html, Response},
    routing::{any, get},
};
use sockjet::{Connection, Message};
use sockjet_axum::WebSocketUpgrade;
use tokio::sync::broadcast;

/// Messages kept for a slow reader before it skips ahead.
const ROOM_BACKLOG: usize = 64;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let (room, _) = broadcast::channel::<Message>(ROOM_BACKLOG);
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws", any(chat))
        .with_state(room);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// `/ws`: joins the chat room. Invalid upgrade requests never get here: the extractor
/// answers them (400, 405, 426).
async fn chat(
    upgrade: WebSocketUpgrade,
    State(room): State<broadcast::Sender<Message>>,
) -> Response {
    upgrade
        .protocols(["chat"])
        .max_message_size(Some(64 * 1024))
        .on_upgrade(move |ws| member(ws, room))
}

/// One member of the room: what it sends goes to everyone, what anyone sends comes to it.
async fn member(ws: Connection, room: broadcast::Sender<Message>) {
    let peer = ws.peer_addr();
    println!(
        "{peer:?} joined ({} compressed: {})",
        ws.path(),
        ws.is_compressed()
    );
    let (mut incoming, outgoing) = ws.split();
    let mut heard = room.subscribe();
    let relay = tokio::spawn(async move {
        loop {
            match heard.recv().await {
                Ok(message) => {
                    if outgoing.send(message).await.is_err() {
                        break;
                    }
                }
                // A slow member misses messages rather than holding up the room.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    while let Ok(Some(message)) = incoming.recv().await {
        let _ = room.send(message);
    }
    relay.abort();
    println!("{peer:?} left");
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>sockjet chat</title>
<h1>sockjet chat</h1>
<form id="form"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<ul id="log"></ul>
<script>
  const log = document.getElementById("log");
  const show = (text) => log.appendChild(document.createElement("li")).textContent = text;
  const url = new URL("/ws", location.href);
  url.protocol = url.protocol.replace("http", "ws");
  const ws = new WebSocket(url, ["chat"]);
  ws.onopen = () => show("connected");
  ws.onmessage = (event) => show(event.data);
  ws.onclose = (event) => show(`closed (${event.code})`);
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    ws.send(input.value);
    input.value = "";
  };
</script>
"#;
