//! A plain hyper 1.x server upgrading with `sockjet_axum::hyper`, over loopback: HTTP/1.1
//! upgrades (sockjet client), HTTP/2 extended CONNECT, routing with
//! `is_upgrade_request`, and refusals.

mod common;

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use common::{check_echo, exchange, h2_websocket, upgrade_request, within};
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, header::SEC_WEBSOCKET_PROTOCOL, server::conn,
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sockjet::{ClientBuilder, CloseCode, proto::ClientConfig};
use sockjet_axum::hyper::{is_upgrade_request, upgrade, upgrade_with};
use tokio::{net::TcpListener, sync::mpsc};

/// What the server side of a connection saw.
#[derive(Debug)]
struct Seen {
    path: String,
    subprotocol: Option<String>,
    compressed: bool,
    peer: Option<SocketAddr>,
}

/// The hyper service: plain HTTP unless the request asks for a WebSocket; WebSockets
/// report what they saw, then echo.
async fn handle(
    mut request: Request<Incoming>,
    seen: mpsc::UnboundedSender<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !is_upgrade_request(&request) {
        return Ok(Response::new(Full::new(Bytes::from("plain HTTP"))));
    }
    let builder = sockjet::Server::builder();
    let answer = upgrade_with(&mut request, &builder, |upgrade| {
        let offered = upgrade.request().headers().get(SEC_WEBSOCKET_PROTOCOL);
        if offered.is_some_and(|offered| offered.as_bytes().starts_with(b"chat")) {
            upgrade
                .response_mut()
                .headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, "chat".parse().unwrap());
        }
    });
    Ok(match answer {
        Ok((response, upgrading)) => {
            tokio::spawn(async move {
                let Ok(ws) = upgrading.await else { return };
                let _ = seen.send(Seen {
                    path: ws.path().to_owned(),
                    subprotocol: ws.subprotocol().map(str::to_owned),
                    compressed: ws.is_compressed(),
                    peer: ws.peer_addr(),
                });
                common::echo(ws).await;
            });
            response
        }
        Err(refusal) => refusal,
    })
}

/// Serves `handle` with hyper's HTTP/1.1 server (`http2` false) or its HTTP/2 server with
/// extended CONNECT enabled.
async fn hyper_server(http2: bool) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let service = service_fn(move |request| handle(request, seen.clone()));
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                if http2 {
                    let _ = conn::http2::Builder::new(TokioExecutor::new())
                        .enable_connect_protocol()
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    (addr, seen_rx)
}

#[tokio::test]
async fn hyper_http1_server_upgrades_for_a_sockjet_client() {
    let (addr, mut seen) = hyper_server(false).await;
    let plain = exchange(
        addr,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((plain.status, plain.body.as_str()), (200, "plain HTTP"));

    let mut ws = within(
        ClientBuilder::new(format!("ws://{addr}/chat"))
            .handshake(ClientConfig::default().subprotocols(["chat"]))
            .connect(),
    )
    .await
    .unwrap();
    check_echo(&mut ws).await;
    assert_eq!(ws.subprotocol(), Some("chat"));
    assert!(ws.is_compressed());
    let seen = within(seen.recv()).await.unwrap();
    assert_eq!(seen.path, "/chat");
    assert_eq!(seen.subprotocol.as_deref(), Some("chat"));
    assert!(seen.compressed);
    // Nobody set the peer address: it comes from the TCP stream that sockjet took back
    // from hyper (the fast path), so it is there.
    assert!(seen.peer.unwrap().ip().is_loopback());
    let (closed, received) =
        within(async { tokio::join!(ws.close(CloseCode::NORMAL_CLOSURE, "bye"), ws.closed()) })
            .await;
    closed.unwrap();
    assert_eq!(received.sent.unwrap().code, CloseCode::NORMAL_CLOSURE);
}

#[tokio::test]
async fn hyper_http1_server_refuses_bad_handshakes() {
    let (addr, _seen) = hyper_server(false).await;
    let response = exchange(
        addr,
        &upgrade_request("GET", "/ws", "Sec-WebSocket-Version: 7\r\n"),
    )
    .await;
    assert_eq!(response.status, 426);
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
    let bad_key = upgrade_request("GET", "/ws", "Sec-WebSocket-Version: 13\r\n")
        .replace("dGhlIHNhbXBsZSBub25jZQ==", "!!");
    assert_eq!(exchange(addr, &bad_key).await.status, 400);
}

#[tokio::test]
async fn hyper_http2_server_accepts_extended_connect() {
    let (addr, mut seen) = hyper_server(true).await;
    let (head, ws) = h2_websocket(addr, "/h2", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    let mut ws = ws.expect("accepted");
    check_echo(&mut ws).await;
    let seen = within(seen.recv()).await.unwrap();
    assert_eq!(seen.path, "/h2");
    // An HTTP/2 stream is not a TCP stream: no peer address unless the server sets one.
    assert_eq!(seen.peer, None);
}

#[tokio::test]
async fn requests_not_from_a_hyper_server_cannot_be_upgraded() {
    let mut request = Request::get("/ws")
        .header("host", "localhost")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    assert!(is_upgrade_request(&request));
    let refusal = upgrade(&mut request, &sockjet::Server::builder()).unwrap_err();
    assert_eq!(refusal.status(), StatusCode::UPGRADE_REQUIRED);
}
