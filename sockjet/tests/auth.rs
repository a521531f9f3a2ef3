//! HTTP Basic and bearer authentication over real sockets: the right credentials open the
//! connection with the identity delivered to the handler; wrong, missing or malformed ones
//! get 401 with a `WWW-Authenticate` challenge, never a panic.

mod policy_common;

use std::net::SocketAddr;

use policy_common::*;
use sockjet::{
    Server, ServerBuilder,
    auth::{BasicAuth, BearerAuth},
    proto::http::StatusCode,
};

const BASIC_CHALLENGE: &str = r#"Basic realm="chat", charset="UTF-8""#;

/// Serves `builder`; each connection is sent its identity ("-" without one).
async fn identity_server(builder: ServerBuilder) -> SocketAddr {
    start(
        builder,
        describing(|ws| ws.identity().unwrap_or("-").to_owned()),
    )
    .await
}

fn basic(user_password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

async fn assert_basic_refused(addr: SocketAddr, authorization: Option<&[u8]>) {
    let mut extra = Vec::new();
    if let Some(value) = authorization {
        extra.extend_from_slice(b"Authorization: ");
        extra.extend_from_slice(value);
        extra.extend_from_slice(b"\r\n");
    }
    let mut request = upgrade_request("/", "");
    // Insert the header before the blank line that ends the head.
    let end = request.len() - 2;
    request.splice(end..end, extra);
    let raw = raw_exchange(addr, &request).await;
    assert_eq!(
        raw.status,
        401,
        "{:?}",
        authorization.map(String::from_utf8_lossy)
    );
    assert_eq!(raw.header("www-authenticate"), Some(BASIC_CHALLENGE));
}

#[tokio::test]
async fn basic_auth_with_right_credentials_delivers_the_identity() {
    let auth = BasicAuth::credentials("chat", [("alice", "wonderland"), ("bob", "p:ss")]);
    let addr = identity_server(Server::builder().request_hook(auth)).await;
    for (credentials, user) in [("alice:wonderland", "alice"), ("bob:p:ss", "bob")] {
        let authorization = basic(credentials);
        let mut ws = connect_with(addr, "/", &[("authorization", &authorization)])
            .await
            .unwrap();
        assert_eq!(first_text(&mut ws).await, user);
    }
}

#[tokio::test]
async fn basic_auth_refuses_wrong_missing_and_malformed_credentials() {
    let auth = BasicAuth::credentials("chat", [("alice", "wonderland")]);
    let addr = identity_server(Server::builder().request_hook(auth)).await;
    let wrong = [
        "alice:wonderlan",
        "alice:wonderland!",
        "alice:",
        "bob:wonderland",
        ":",
    ];
    for credentials in wrong {
        let authorization = basic(credentials);
        let refused = connect_with(addr, "/", &[("authorization", &authorization)]).await;
        assert_eq!(
            refused_status(refused),
            StatusCode::UNAUTHORIZED,
            "{credentials}"
        );
        assert_basic_refused(addr, Some(authorization.as_bytes())).await;
    }
    assert_basic_refused(addr, None).await;
    let malformed: [&[u8]; 8] = [
        b"Basic",
        b"Basic !!!not base64!!!",
        b"Basic YWxpY2U=",     // "alice": no colon
        b"Basic /w==",         // 0xFF: not UTF-8
        b"Basic YWxpY2U6/w==", // "alice:" then 0xFF
        b"Bearer YWxpY2U6d29uZGVybGFuZA==",
        b"Basic YWxpY2U6d29uZGVybGFuZA==\xff",
        b"Digest username=\"alice\"",
    ];
    for value in malformed {
        assert_basic_refused(addr, Some(value)).await;
    }
    // Two Authorization headers, even if one is right.
    let right = basic("alice:wonderland");
    let twice = format!("{right}\r\nAuthorization: {right}");
    assert_basic_refused(addr, Some(twice.as_bytes())).await;
    // The server is still fine.
    let mut ws = connect_with(addr, "/", &[("authorization", &right)])
        .await
        .unwrap();
    assert_eq!(first_text(&mut ws).await, "alice");
}

#[tokio::test]
async fn basic_auth_with_an_async_check() {
    let auth = BasicAuth::check("chat", |user, password| async move {
        tokio::task::yield_now().await;
        user == "carol" && password == "secret"
    });
    let addr = identity_server(Server::builder().request_hook(auth)).await;
    let mut ws = connect_with(addr, "/", &[("authorization", &basic("carol:secret"))])
        .await
        .unwrap();
    assert_eq!(first_text(&mut ws).await, "carol");
    let refused = connect_with(addr, "/", &[("authorization", &basic("carol:guess"))]).await;
    assert_eq!(refused_status(refused), StatusCode::UNAUTHORIZED);
    assert_basic_refused(addr, Some(b"Basic %%%")).await;
}

fn bearer() -> BearerAuth {
    BearerAuth::new(|token| async move {
        match token.as_str() {
            "t0k3n" => Some("alice".to_owned()),
            "sp ce+plus" => Some("bob".to_owned()),
            _ => None,
        }
    })
    .query_parameter("token")
}

#[tokio::test]
async fn bearer_token_in_the_header() {
    let addr = identity_server(Server::builder().request_hook(bearer())).await;
    let mut ws = connect_with(addr, "/", &[("authorization", "Bearer t0k3n")])
        .await
        .unwrap();
    assert_eq!(first_text(&mut ws).await, "alice");
    let raw = raw_exchange(
        addr,
        &upgrade_request("/", "Authorization: Bearer nope\r\n"),
    )
    .await;
    assert_eq!(raw.status, 401);
    assert_eq!(
        raw.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    // The header wins over the query string.
    let raw = raw_exchange(
        addr,
        &upgrade_request("/?token=t0k3n", "Authorization: Bearer nope\r\n"),
    )
    .await;
    assert_eq!(raw.status, 401);
    for malformed in ["Bearer", "Bearer ", "Basic dDpw", "t0k3n"] {
        let header = format!("Authorization: {malformed}\r\n");
        let raw = raw_exchange(addr, &upgrade_request("/", &header)).await;
        assert_eq!(raw.status, 401, "{malformed}");
    }
}

#[tokio::test]
async fn bearer_token_in_the_query_string() {
    let addr = identity_server(Server::builder().request_hook(bearer())).await;
    let mut ws = connect_with(addr, "/chat?room=1&token=t0k3n", &[])
        .await
        .unwrap();
    assert_eq!(first_text(&mut ws).await, "alice");
    // Form-encoded: `+` is a space and `%2B` a plus.
    let mut ws = connect_with(addr, "/?token=sp+ce%2Bplus", &[])
        .await
        .unwrap();
    assert_eq!(first_text(&mut ws).await, "bob");
    let raw = raw_exchange(addr, &upgrade_request("/?token=wrong", "")).await;
    assert_eq!(raw.status, 401);
    assert_eq!(
        raw.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    // No token at all: a bare challenge (RFC 6750 §3.1).
    for target in ["/", "/?token=", "/?other=t0k3n", "/?token=%FF"] {
        let raw = raw_exchange(addr, &upgrade_request(target, "")).await;
        assert_eq!(raw.status, 401, "{target}");
        assert_eq!(raw.header("www-authenticate"), Some("Bearer"), "{target}");
    }
}

#[tokio::test]
async fn bearer_without_a_query_parameter_ignores_the_query_string() {
    let auth =
        BearerAuth::new(|token| async move { (token == "t").then(|| "x".to_owned()) }).realm("api");
    let addr = identity_server(Server::builder().request_hook(auth)).await;
    let raw = raw_exchange(addr, &upgrade_request("/?token=t", "")).await;
    assert_eq!(raw.status, 401);
    assert_eq!(
        raw.header("www-authenticate"),
        Some(r#"Bearer realm="api""#)
    );
    assert!(
        connect_with(addr, "/", &[("authorization", "bearer t")])
            .await
            .is_ok()
    );
}
