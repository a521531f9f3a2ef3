//! Request and response hooks over real sockets: plain HTTP answers on the WebSocket port
//! (health checks, pages, refusals), extensions reaching the handler, headers added to the
//! response.

mod policy_common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use policy_common::*;
use sockjet::{
    Server,
    hooks::{respond, respond_with},
    proto::http::{HeaderValue, StatusCode, header},
};

fn with_healthz() -> sockjet::ServerBuilder {
    Server::builder().process_request(|request, _peer| {
        (request.uri().path() == "/healthz").then(|| respond(StatusCode::OK, "ok\n"))
    })
}

#[tokio::test]
async fn health_check_answers_a_plain_get_with_200() {
    let addr = start(with_healthz(), |ws| async move { drop(ws) }).await;
    // What a load balancer sends: no upgrade headers at all.
    let response = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"ok\n");
    assert_eq!(response.header("content-length"), Some("3"));
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // HTTP/1.0 probes too.
    let response = raw_exchange(addr, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(response.status, 200);
    // Other plain requests still get the handshake's error.
    let response = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(response.status, 400);
    // And WebSocket clients still connect.
    let mut ws = within(sockjet::connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    assert!(within(ws.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_large_answer_is_written_completely_then_the_connection_closes() {
    let page: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let body = page.clone();
    let builder = Server::builder().process_request(move |_request, _peer| {
        Some(respond_with(StatusCode::OK, "text/html", body.clone()))
    });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    // A request with a body the server never reads: the answer must still arrive whole.
    let response = raw_exchange(
        addr,
        b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("300000"));
    assert_eq!(response.body.len(), page.len());
    assert!(response.body == page, "the body arrived altered");
}

#[tokio::test]
async fn head_gets_the_length_without_the_body() {
    let addr = start(with_healthz(), |ws| async move { drop(ws) }).await;
    let response = raw_exchange(addr, b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("3"));
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn a_hook_refuses_with_403_and_the_handler_never_runs() {
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let builder = Server::builder().process_request(|request, _peer| {
        let secret = request.uri().path().starts_with("/admin");
        secret.then(|| respond(StatusCode::FORBIDDEN, "forbidden\n"))
    });
    let addr = start(builder, move |ws| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { drop(ws) }
    })
    .await;
    let refused = connect_with(addr, "/admin/panel", &[]).await;
    assert_eq!(refused_status(refused), StatusCode::FORBIDDEN);
    let raw = raw_exchange(addr, &upgrade_request("/admin", "")).await;
    assert_eq!(raw.status, 403);
    assert_eq!(raw.body, b"forbidden\n");
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    // Other paths open.
    let ws = connect_with(addr, "/public", &[]).await.unwrap();
    drop(ws);
}

#[tokio::test]
async fn a_response_hook_adds_a_header_the_client_sees() {
    let builder = Server::builder().process_response(|request, response| {
        let value = format!("path={}", request.uri().path());
        response
            .headers_mut()
            .insert(header::SET_COOKIE, HeaderValue::from_str(&value).unwrap());
    });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    let ws = connect_with(addr, "/room", &[]).await.unwrap();
    assert_eq!(ws.response().status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(ws.response().headers()[header::SET_COOKIE], "path=/room");
    // It sees error responses too.
    let raw = raw_exchange(addr, b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(raw.status, 400);
    assert_eq!(raw.header("set-cookie"), Some("path=/x"));
}

#[tokio::test]
async fn hooks_run_in_order_and_the_first_answer_wins() {
    let later_runs = Arc::new(AtomicUsize::new(0));
    let counter = later_runs.clone();
    let builder = Server::builder()
        .process_request(|request, _peer| {
            (request.uri().path() == "/first").then(|| respond(StatusCode::IM_A_TEAPOT, "first\n"))
        })
        .process_request(move |_request, _peer| {
            counter.fetch_add(1, Ordering::SeqCst);
            Some(respond(StatusCode::NOT_FOUND, "second\n"))
        });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    let raw = raw_exchange(addr, &upgrade_request("/first", "")).await;
    assert_eq!((raw.status, raw.body.as_slice()), (418, &b"first\n"[..]));
    assert_eq!(later_runs.load(Ordering::SeqCst), 0);
    let raw = raw_exchange(addr, &upgrade_request("/other", "")).await;
    assert_eq!((raw.status, raw.body.as_slice()), (404, &b"second\n"[..]));
    assert_eq!(later_runs.load(Ordering::SeqCst), 1);
}

#[derive(Clone)]
struct Tag(String);

#[tokio::test]
async fn extensions_and_peer_address_reach_the_handler() {
    let builder = Server::builder()
        .process_request(|request, peer| {
            let peer = peer.expect("TCP has a peer address");
            assert!(peer.ip().is_loopback());
            request
                .extensions_mut()
                .insert(Tag(format!("sync:{}", peer.ip())));
            None
        })
        .process_request_async(|mut request, _peer| async move {
            tokio::task::yield_now().await;
            let tag = request.extensions().get::<Tag>().unwrap().0.clone();
            request.extensions_mut().insert(Tag(format!("{tag}+async")));
            Ok(request)
        });
    let addr = start(
        builder,
        describing(|ws| ws.request().extensions().get::<Tag>().unwrap().0.clone()),
    )
    .await;
    let mut ws = connect_with(addr, "/", &[]).await.unwrap();
    assert_eq!(first_text(&mut ws).await, "sync:127.0.0.1+async");
}

#[tokio::test]
async fn an_async_hook_can_answer() {
    let builder = Server::builder().process_request_async(|request, _peer| async move {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        match request.uri().query() {
            Some("key=1") => Ok(request),
            _ => Err(respond(StatusCode::UNAUTHORIZED, "key?\n")),
        }
    });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    assert_eq!(
        refused_status(connect_with(addr, "/?key=2", &[]).await),
        StatusCode::UNAUTHORIZED
    );
    assert!(connect_with(addr, "/?key=1", &[]).await.is_ok());
}

#[tokio::test]
async fn a_panicking_hook_answers_500_and_the_server_goes_on() {
    let builder = Server::builder()
        .process_request(|request, _peer| {
            assert!(request.uri().path() != "/boom", "hook bug");
            None
        })
        .process_request_async(|request, _peer| async move {
            assert!(request.uri().path() != "/async-boom", "async hook bug");
            Ok(request)
        });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    for path in ["/boom", "/async-boom"] {
        let raw = raw_exchange(addr, &upgrade_request(path, "")).await;
        assert_eq!(raw.status, 500, "{path}");
    }
    assert!(connect_with(addr, "/fine", &[]).await.is_ok());
}

#[tokio::test]
async fn a_response_hook_cannot_upgrade_a_plain_request() {
    let builder = Server::builder().process_response(|_request, response| {
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    let raw = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(raw.status, 500);
}

#[tokio::test]
async fn a_request_hook_cannot_answer_101() {
    let builder = Server::builder().process_request(|_request, _peer| {
        let mut response = respond(StatusCode::OK, "");
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        Some(response)
    });
    let addr = start(builder, |ws| async move { drop(ws) }).await;
    let raw = raw_exchange(addr, &upgrade_request("/", "")).await;
    assert_eq!(raw.status, 500);
}

/// The `Server` header of the handshake options is on the 101 and on a hook's plain HTTP
/// answer: the default one, one set with `handshake(..)`, or none.
#[tokio::test]
async fn the_server_header_is_on_the_101_and_on_hook_answers() {
    let default = format!("sockjet/{}", env!("CARGO_PKG_VERSION"));
    let cases = [
        (None, Some(default.as_str())),
        (Some(Some("example/7")), Some("example/7")),
        (Some(None), None),
    ];
    for (configured, expected) in cases {
        let mut builder = with_healthz();
        if let Some(value) = configured {
            builder = builder.handshake(
                sockjet::proto::ServerConfig::default().server_header(value.map(str::to_owned)),
            );
        }
        let addr = start(builder, |ws| async move { drop(ws) }).await;
        let ws = within(sockjet::connect(&format!("ws://{addr}/")))
            .await
            .unwrap();
        let sent = ws.response().headers().get(header::SERVER);
        assert_eq!(sent.map(|value| value.to_str().unwrap()), expected);
        let answer = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("server"), expected, "{configured:?}");
    }
}
