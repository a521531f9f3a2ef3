//! The origin allow-list over real sockets: allowed origins open, others get 403 before
//! the upgrade; a missing `Origin` is allowed or refused as configured.

mod policy_common;

use std::net::SocketAddr;

use policy_common::*;
use sockjet::{
    ClientBuilder, Server,
    origin::OriginPolicy,
    proto::{ClientConfig, http::StatusCode},
};

async fn origin_server(policy: OriginPolicy) -> SocketAddr {
    start(Server::builder().request_hook(policy), |ws| async move {
        let _ = ws.send("welcome").await;
    })
    .await
}

/// Connects with `origin` (as a browser does, through `ClientConfig::origin`).
async fn status_with_origin(addr: SocketAddr, origin: Option<&str>) -> StatusCode {
    let config = ClientConfig::default().origin(origin.map(str::to_owned));
    let result = within(
        ClientBuilder::new(format!("ws://{addr}/"))
            .handshake(config)
            .connect(),
    )
    .await;
    match result {
        Ok(mut ws) => {
            assert_eq!(first_text(&mut ws).await, "welcome");
            StatusCode::SWITCHING_PROTOCOLS
        }
        Err(_) => refused_status(result),
    }
}

fn policy() -> OriginPolicy {
    OriginPolicy::new()
        .allow("https://example.com")
        .allow("http://localhost:8000")
        .allow("https://*.example.org")
}

#[tokio::test]
async fn exact_origins_are_allowed() {
    let addr = origin_server(policy()).await;
    for origin in [
        "https://example.com",
        "HTTPS://EXAMPLE.COM",
        "https://example.com:443",
        "http://localhost:8000",
    ] {
        assert_eq!(
            status_with_origin(addr, Some(origin)).await,
            StatusCode::SWITCHING_PROTOCOLS,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn patterns_allow_subdomains() {
    let addr = origin_server(policy()).await;
    for origin in ["https://chat.example.org", "https://a.b.example.org"] {
        assert_eq!(
            status_with_origin(addr, Some(origin)).await,
            StatusCode::SWITCHING_PROTOCOLS,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn other_and_lookalike_origins_get_403() {
    let addr = origin_server(policy()).await;
    for origin in [
        "https://evil.com.example.org.attacker",
        "https://evilexample.org",
        "https://example.org",
        "https://example.com.attacker",
        "http://example.com",
        "https://example.com:8443",
        "http://localhost:8001",
        "https://chat.example.org:444",
        "null",
        "not an origin",
    ] {
        assert_eq!(
            status_with_origin(addr, Some(origin)).await,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
    }
    let raw = raw_exchange(
        addr,
        &upgrade_request("/", "Origin: https://attacker.test\r\n"),
    )
    .await;
    assert_eq!(raw.status, 403);
    assert_eq!(raw.body, b"origin not allowed\n");
    let twice = "Origin: https://example.com\r\nOrigin: https://example.com\r\n";
    assert_eq!(
        raw_exchange(addr, &upgrade_request("/", twice))
            .await
            .status,
        403
    );
    let binary = b"Origin: https://ex\xffample.com\r\n";
    let mut request = upgrade_request("/", "");
    let end = request.len() - 2;
    request.splice(end..end, binary.iter().copied());
    assert_eq!(raw_exchange(addr, &request).await.status, 403);
}

#[tokio::test]
async fn a_missing_origin_is_allowed_by_default() {
    let addr = origin_server(policy()).await;
    assert_eq!(
        status_with_origin(addr, None).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn a_missing_origin_can_be_refused() {
    let addr = origin_server(policy().allow_missing(false)).await;
    assert_eq!(status_with_origin(addr, None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status_with_origin(addr, Some("https://example.com")).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
}
