//! Request options of the client: headers, Origin, subprotocols, user agent, and the
//! credentials of the URL as Basic authentication.

mod client_support;

use client_support::{header, reported_request, request_reporting_server, within};
use sockjet::{ClientBuilder, ErrorKind};

#[tokio::test]
async fn builder_options_reach_the_server() {
    let addr = request_reporting_server().await;
    let report = reported_request(
        ClientBuilder::new(format!("ws://{addr}/options"))
            .header("X-Api-Key", "k1")
            .header("x-api-key", "k2")
            .origin("https://app.example")
            .user_agent("tester/1.0")
            .subprotocols(["v2.chat", "v1.chat"]),
    )
    .await;
    assert!(
        report.contains("\nx-api-key: k1\nx-api-key: k2"),
        "{report}"
    );
    assert_eq!(header(&report, "origin"), Some("https://app.example"));
    assert_eq!(header(&report, "user-agent"), Some("tester/1.0"));
    assert_eq!(
        header(&report, "sec-websocket-protocol"),
        Some("v2.chat, v1.chat")
    );
}

#[tokio::test]
async fn url_credentials_become_basic_authorization() {
    let addr = request_reporting_server().await;
    // "José" and "p@ss:w/rd", percent-encoded in the URL.
    let url = format!("ws://Jos%C3%A9:p%40ss%3Aw%2Frd@{addr}/private");
    let report = reported_request(ClientBuilder::new(url)).await;
    // RFC 7617: base64 of the UTF-8 "José:p@ss:w/rd".
    assert_eq!(
        header(&report, "authorization"),
        Some("Basic Sm9zw6k6cEBzczp3L3Jk")
    );
    // Neither the Host header nor the request target carries them.
    assert_eq!(header(&report, "host"), Some(addr.to_string().as_str()));
    assert!(report.starts_with("/private\n"), "{report}");
}

#[tokio::test]
async fn invalid_options_are_errors_not_panics() {
    for builder in [
        ClientBuilder::new("ws://127.0.0.1:9/").header("bad header", "x"),
        ClientBuilder::new("ws://127.0.0.1:9/").header("x-ok", "line\nbreak"),
        ClientBuilder::new("ws://127.0.0.1:9/").origin("https://a\r\nb"),
        ClientBuilder::new("ws://127.0.0.1:9/").user_agent("a\0b"),
        ClientBuilder::new("ws://127.0.0.1:9/").subprotocols(["has space"]),
        ClientBuilder::new("ws://127.0.0.1:9/").subprotocols([""]),
    ] {
        let error = within(builder.connect()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Misuse, "{error}");
    }
}
