//! `Router` over real sockets: parameters reach the handler, unknown paths get 404 before
//! any upgrade, handlers of different types live side by side.

mod policy_common;

use std::net::SocketAddr;

use policy_common::*;
use sockjet::{
    Connection, Router, Server, ServerBuilder, hooks::respond, proto::http::StatusCode,
    router::PathParams,
};

async fn serve_router(builder: ServerBuilder, router: Router) -> SocketAddr {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve_router(router));
    addr
}

async fn room_handler(ws: Connection) {
    let room = ws.path_param("room").unwrap_or("?").to_owned();
    let _ = ws.send(format!("room {room}")).await;
}

fn chat_router() -> Router {
    Router::new()
        .route("/chat/{room}", room_handler)
        .route("/chat/{room}/users/{user}", |ws: Connection| async move {
            let params = ws.request().extensions().get::<PathParams>().unwrap();
            let all: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = ws.send(all.join(",")).await;
        })
        .route("/page/{n}", |ws: Connection| async move {
            let params = ws.request().extensions().get::<PathParams>().unwrap();
            let n = params.parse::<u32>("n").unwrap();
            let text = match n {
                Ok(n) => format!("page {}", n + 1),
                Err(_) => "not a number".to_owned(),
            };
            let _ = ws.send(text).await;
        })
        .route("/files/{*path}", |ws: Connection| async move {
            let path = ws.path_param("path").unwrap().to_owned();
            let _ = ws.send(path).await;
        })
        .route("/", |mut ws: Connection| async move {
            while let Ok(Some(message)) = ws.recv().await {
                let _ = ws.send(message).await;
            }
        })
}

async fn first_reply(addr: SocketAddr, target: &str) -> String {
    let mut ws = connect_with(addr, target, &[]).await.unwrap();
    first_text(&mut ws).await
}

#[tokio::test]
async fn path_parameters_reach_the_handler() {
    let addr = serve_router(Server::builder(), chat_router()).await;
    assert_eq!(first_reply(addr, "/chat/lobby").await, "room lobby");
    assert_eq!(first_reply(addr, "/chat/lobby?x=1").await, "room lobby");
    assert_eq!(first_reply(addr, "/chat/caf%C3%A9").await, "room café");
    assert_eq!(
        first_reply(addr, "/chat/lobby/users/ann").await,
        "room=lobby,user=ann"
    );
    assert_eq!(first_reply(addr, "/page/41").await, "page 42");
    assert_eq!(first_reply(addr, "/page/x").await, "not a number");
    assert_eq!(first_reply(addr, "/files/a/b/c.txt").await, "a/b/c.txt");
    let mut ws = connect_with(addr, "/", &[]).await.unwrap();
    ws.send("echo").await.unwrap();
    assert_eq!(first_text(&mut ws).await, "echo");
}

#[tokio::test]
async fn unknown_paths_get_404_before_the_upgrade() {
    let addr = serve_router(Server::builder(), chat_router()).await;
    for target in [
        "/nope",
        "/chat",
        "/chat/",
        "/chat/a/b",
        "/files/",
        "/chat/lobby/users",
    ] {
        let raw = raw_exchange(addr, &upgrade_request(target, "")).await;
        assert_eq!(raw.status, 404, "{target}");
        assert_eq!(raw.body, b"not found\n");
        assert_eq!(
            refused_status(connect_with(addr, target, &[]).await),
            StatusCode::NOT_FOUND
        );
    }
    // A parameter that is not UTF-8 once decoded.
    let raw = raw_exchange(addr, &upgrade_request("/chat/%FF", "")).await;
    assert_eq!(raw.status, 400);
    // Known paths without upgrade headers get the handshake's error, not 404.
    let raw = raw_exchange(addr, b"GET /chat/lobby HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(raw.status, 400);
}

#[tokio::test]
async fn builder_hooks_run_before_the_router() {
    let builder = Server::builder().process_request(|request, _peer| match request.uri().path() {
        "/healthz" => Some(respond(StatusCode::OK, "ok\n")),
        _ if request.headers().contains_key("x-key") => None,
        _ => Some(respond(StatusCode::UNAUTHORIZED, "key?\n")),
    });
    let addr = serve_router(builder, chat_router()).await;
    let raw = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(raw.status, 200);
    // Without a key, an unknown path tells nothing about which paths exist.
    let raw = raw_exchange(addr, &upgrade_request("/nope", "")).await;
    assert_eq!(raw.status, 401);
    let raw = raw_exchange(addr, &upgrade_request("/nope", "X-Key: 1\r\n")).await;
    assert_eq!(raw.status, 404);
    let mut ws = connect_with(addr, "/chat/vip", &[("x-key", "1")])
        .await
        .unwrap();
    assert_eq!(first_text(&mut ws).await, "room vip");
}

#[tokio::test]
async fn the_first_matching_route_wins() {
    let router = Router::new()
        .route("/chat/admin", |ws: Connection| async move {
            let _ = ws.send("admin").await;
        })
        .route("/chat/{room}", room_handler);
    let addr = serve_router(Server::builder(), router).await;
    assert_eq!(first_reply(addr, "/chat/admin").await, "admin");
    assert_eq!(first_reply(addr, "/chat/other").await, "room other");
}
