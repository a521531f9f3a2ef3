//! An axum app serving HTTP and sockjet WebSockets on one port, over loopback: HTTP
//! routes, upgrades through the `WebSocketUpgrade` extractor (HTTP/1.1 and HTTP/2
//! extended CONNECT), negotiation, options and rejections.

mod common;

use std::net::SocketAddr;

use axum::{
    Router,
    response::Response,
    routing::{any, get},
};
use common::{RawResponse, check_echo, exchange, h2_websocket, upgrade_request, within};
use sockjet::{ClientBuilder, CloseCode, Connection, ErrorKind, proto::ClientConfig};
use sockjet_axum::WebSocketUpgrade;
use tokio::sync::mpsc;

/// What the server side of a connection saw.
#[derive(Debug)]
struct Seen {
    path: String,
    query: Option<String>,
    subprotocol: Option<String>,
    compressed: bool,
    peer: Option<SocketAddr>,
}

/// Echoes every message, after reporting what it saw.
async fn echo(ws: Connection, seen: mpsc::UnboundedSender<Seen>) {
    let _ = seen.send(Seen {
        path: ws.path().to_owned(),
        query: ws.request().uri().query().map(str::to_owned),
        subprotocol: ws.subprotocol().map(str::to_owned),
        compressed: ws.is_compressed(),
        peer: ws.peer_addr(),
    });
    common::echo(ws).await;
}

/// Serves the app on a loopback port; returns its address and what the WebSocket
/// handlers saw.
async fn app() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (seen, seen_rx) = mpsc::unbounded_channel();
    let (plain, small) = (seen.clone(), seen.clone());
    let app = Router::new()
        .route("/", get(|| async { axum::response::Html("<h1>chat</h1>") }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/ws",
            any(move |upgrade: WebSocketUpgrade| async move {
                let seen = seen.clone();
                upgrade
                    .protocols(["v2", "v1"])
                    .on_upgrade(move |ws| echo(ws, seen))
            }),
        )
        .route(
            "/plain",
            any(move |upgrade: WebSocketUpgrade| async move {
                upgrade
                    .compression(None)
                    .on_upgrade(move |ws| echo(ws, plain))
            }),
        )
        .route(
            "/small",
            any(move |upgrade: WebSocketUpgrade| async move {
                upgrade
                    .max_message_size(Some(1024))
                    .on_upgrade(move |ws| echo(ws, small))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    (addr, seen_rx)
}

async fn get_request(addr: SocketAddr, path: &str) -> RawResponse {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn http_and_websocket_share_the_port() {
    let (addr, mut seen) = app().await;
    let health = get_request(addr, "/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, "ok");
    let page = get_request(addr, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>chat</h1>"));

    let mut ws = within(sockjet::connect(&format!("ws://{addr}/ws?room=1")))
        .await
        .unwrap();
    check_echo(&mut ws).await;
    let seen = within(seen.recv()).await.unwrap();
    assert_eq!(seen.path, "/ws");
    assert_eq!(seen.query.as_deref(), Some("room=1"));
    // `into_make_service_with_connect_info` gives the peer address.
    let peer = seen.peer.expect("peer address from ConnectInfo");
    assert!(peer.ip().is_loopback());
    assert_ne!(peer.port(), addr.port());
    within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), None);
    // Still serving HTTP afterwards.
    assert_eq!(get_request(addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_through_axum() {
    let (addr, mut seen) = app().await;
    let mut ws = within(sockjet::connect(&format!("ws://{addr}/ws")))
        .await
        .unwrap();
    assert!(ws.is_compressed());
    assert!(within(seen.recv()).await.unwrap().compressed);
    let text = "a compressible sentence ".repeat(200);
    within(ws.send(text.as_str())).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some(text.as_str())
    );

    let ws = within(sockjet::connect(&format!("ws://{addr}/plain")))
        .await
        .unwrap();
    assert!(!ws.is_compressed());
    assert!(!within(seen.recv()).await.unwrap().compressed);
}

#[tokio::test]
async fn subprotocol_is_chosen_by_server_preference() {
    let (addr, mut seen) = app().await;
    let connect = |offered: &'static [&'static str]| {
        ClientBuilder::new(format!("ws://{addr}/ws"))
            .handshake(ClientConfig::default().subprotocols(offered.iter().copied()))
            .connect()
    };
    let ws = within(connect(&["v1", "v2"])).await.unwrap();
    assert_eq!(ws.subprotocol(), Some("v2"));
    assert_eq!(
        within(seen.recv()).await.unwrap().subprotocol.as_deref(),
        Some("v2")
    );
    let ws = within(connect(&["v1", "other"])).await.unwrap();
    assert_eq!(ws.subprotocol(), Some("v1"));
    within(seen.recv()).await.unwrap();
    // None in common: no header in the response (RFC 6455 §4.2.2).
    let ws = within(connect(&["other"])).await.unwrap();
    assert_eq!(ws.subprotocol(), None);
    assert_eq!(within(seen.recv()).await.unwrap().subprotocol, None);
}

#[tokio::test]
async fn max_message_size_reaches_the_connection() {
    let (addr, _seen) = app().await;
    let mut ws = within(sockjet::connect(&format!("ws://{addr}/small")))
        .await
        .unwrap();
    within(ws.send("fits")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some("fits")
    );
    within(ws.send(vec![0u8; 2048])).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Closed);
    let closed = error.closed().unwrap();
    assert_eq!(
        closed.rcvd.as_ref().unwrap().code,
        CloseCode::MESSAGE_TOO_BIG
    );
}

#[tokio::test]
async fn plain_get_to_the_websocket_route_is_rejected() {
    let (addr, _seen) = app().await;
    let response = get_request(addr, "/ws").await;
    assert_eq!(response.status, 400);
    assert!(response.body.contains("Upgrade"), "{}", response.body);
}

#[tokio::test]
async fn bad_handshakes_get_400_405_and_426() {
    let (addr, _seen) = app().await;
    let bad_key = upgrade_request("GET", "/ws", "Sec-WebSocket-Version: 13\r\n")
        .replace("dGhlIHNhbXBsZSBub25jZQ==", "dG9vIHNob3J0");
    let response = exchange(addr, &bad_key).await;
    assert_eq!(response.status, 400);
    assert!(response.body.contains("Sec-WebSocket-Key"), "{response:?}");

    for version in ["Sec-WebSocket-Version: 8\r\n", ""] {
        let response = exchange(addr, &upgrade_request("GET", "/ws", version)).await;
        assert_eq!(response.status, 426, "{version:?}");
        assert_eq!(response.header("sec-websocket-version"), Some("13"));
        assert_eq!(response.header("upgrade"), Some("websocket"));
    }

    let post = upgrade_request("POST", "/ws", "Sec-WebSocket-Version: 13\r\n");
    let response = exchange(addr, &post).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET"));
}

#[tokio::test]
async fn websocket_over_http2_extended_connect() {
    let (addr, mut seen) = app().await;
    let (head, ws) = h2_websocket(addr, "/ws?h2=1", &[("sec-websocket-protocol", "v1")]).await;
    assert_eq!(head.status, 200);
    // RFC 8441 §5: no Sec-WebSocket-Accept, and the chosen subprotocol as usual.
    assert!(!head.headers.contains_key("sec-websocket-accept"));
    assert_eq!(head.headers["sec-websocket-protocol"], "v1");
    let mut ws = ws.unwrap();
    check_echo(&mut ws).await;
    let seen = within(seen.recv()).await.unwrap();
    assert_eq!(seen.path, "/ws");
    assert_eq!(seen.query.as_deref(), Some("h2=1"));
    assert_eq!(seen.subprotocol.as_deref(), Some("v1"));
    let (closed, _) =
        within(async { tokio::join!(ws.close(CloseCode::NORMAL_CLOSURE, "bye"), ws.closed()) })
            .await;
    closed.unwrap();
}

#[tokio::test]
async fn http2_connect_with_a_bad_version_gets_426() {
    let (addr, _seen) = app().await;
    let (head, ws) = h2_websocket(addr, "/ws", &[("sec-websocket-version", "8")]).await;
    assert!(ws.is_none());
    assert_eq!(head.status, 426);
    assert_eq!(head.headers["sec-websocket-version"], "13");
}

/// The WebSocket response of a `Response`-returning handler is what axum sends.
#[tokio::test]
async fn handler_may_inspect_before_upgrading() {
    async fn guarded(upgrade: WebSocketUpgrade) -> Response {
        if upgrade.request().uri().query() != Some("token=ok") {
            return axum::response::IntoResponse::into_response((
                http::StatusCode::UNAUTHORIZED,
                "no token",
            ));
        }
        upgrade.on_upgrade(|ws| async move {
            let _ = ws.send("welcome").await;
        })
    }
    let app = Router::new().route("/ws", any(guarded));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let error = within(sockjet::connect(&format!("ws://{addr}/ws")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    let mut ws = within(sockjet::connect(&format!("ws://{addr}/ws?token=ok")))
        .await
        .unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some("welcome")
    );
}
