//! `sockjet serve` access options end to end: `/healthz`, `--origin`, `--deny-no-origin`,
//! `--basic-auth` and `--rate-limit`, against the real binary on 127.0.0.1. Every wait is
//! bounded; the server is killed on drop.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
};

use common::{Serve, Sockjet, TIMEOUT};
use sockjet::{
    ClientBuilder, CloseCode, Connection, Message,
    proto::{
        ClientConfig, HandshakeError,
        http::{HeaderValue, StatusCode, header},
    },
};

/// Starts `sockjet serve 127.0.0.1:0 -q OPTIONS` and reads its URL.
fn serve(options: &[&str]) -> Serve {
    let served = Serve::start(&[&["127.0.0.1:0", "-q"], options].concat());
    assert!(served.url.starts_with("ws://"), "{}", served.url);
    served
}

/// Sends a raw request and reads the answer to EOF; returns the status and the text.
fn raw_http(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the whole answer");
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(addr: &str, config: ClientConfig) -> Result<Connection, sockjet::Error> {
    let attempt = ClientBuilder::new(format!("ws://{addr}/"))
        .handshake(config)
        .connect();
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .expect("connect in time")
}

fn status_of(result: Result<Connection, sockjet::Error>) -> StatusCode {
    match result {
        Ok(_) => StatusCode::SWITCHING_PROTOCOLS,
        Err(error) => match error.handshake_error() {
            Some(HandshakeError::UnexpectedStatus(status)) => *status,
            _ => panic!("{error}"),
        },
    }
}

fn basic(user_password: &str) -> ClientConfig {
    // base64("ann:secret") and base64("ann:wrong").
    let encoded = match user_password {
        "ann:secret" => "YW5uOnNlY3JldA==",
        "ann:wrong" => "YW5uOndyb25n",
        other => panic!("no encoding for {other}"),
    };
    ClientConfig::default().header(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
    )
}

#[test]
fn serve_answers_healthz_without_upgrade_or_credentials() {
    let served = serve(&["--basic-auth", "ann:secret", "--origin", "https://a.test"]);
    let (status, answer) = raw_http(
        served.host_port(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.test\r\n\r\n",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
}

#[test]
fn serve_checks_origins_and_basic_credentials() {
    let served = serve(&[
        "--origin",
        "https://app.test",
        "--origin",
        "https://*.example.test",
        "--basic-auth",
        "ann:secret",
    ]);
    runtime().block_on(async {
        let addr = served.host_port();
        let with_origin = |origin: &str| basic("ann:secret").origin(Some(origin.to_owned()));
        let ws = connect(addr, with_origin("https://chat.example.test"))
            .await
            .unwrap();
        ws.send("hi").await.unwrap();
        let mut ws = ws;
        let echoed = tokio::time::timeout(TIMEOUT, ws.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Some(Message::text("hi")));
        assert_eq!(
            status_of(connect(addr, with_origin("https://app.test")).await),
            StatusCode::SWITCHING_PROTOCOLS
        );
        // No Origin: allowed without --deny-no-origin.
        assert_eq!(
            status_of(connect(addr, basic("ann:secret")).await),
            StatusCode::SWITCHING_PROTOCOLS
        );
        assert_eq!(
            status_of(connect(addr, with_origin("https://example.test.evil")).await),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_of(connect(addr, basic("ann:wrong")).await),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_of(connect(addr, ClientConfig::default()).await),
            StatusCode::UNAUTHORIZED
        );
    });
    let (status, answer) = raw_http(
        served.host_port(),
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(status, 401);
    assert!(
        answer.contains("Www-Authenticate: Basic realm=\"sockjet\", charset=\"UTF-8\"\r\n"),
        "{answer}"
    );
}

#[test]
fn serve_can_require_an_origin() {
    let served = serve(&["--origin", "https://app.test", "--deny-no-origin"]);
    runtime().block_on(async {
        let addr = served.host_port();
        assert_eq!(
            status_of(connect(addr, ClientConfig::default()).await),
            StatusCode::FORBIDDEN
        );
        let config = ClientConfig::default().origin(Some("https://app.test".to_owned()));
        assert_eq!(
            status_of(connect(addr, config).await),
            StatusCode::SWITCHING_PROTOCOLS
        );
    });
}

#[test]
fn serve_closes_a_flood_with_1008() {
    let served = serve(&["--rate-limit", "5"]);
    runtime().block_on(async {
        let mut ws = connect(served.host_port(), ClientConfig::default())
            .await
            .unwrap();
        let sender = ws.sender();
        let flooding = tokio::spawn(async move {
            for _ in 0..300 {
                if sender.send("flood").await.is_err() {
                    break;
                }
            }
        });
        let error = loop {
            match tokio::time::timeout(TIMEOUT, ws.recv()).await.unwrap() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("closed normally"),
                Err(error) => break error,
            }
        };
        let received = error
            .closed()
            .and_then(|closed| closed.rcvd.clone())
            .unwrap();
        assert_eq!(received.code, CloseCode::POLICY_VIOLATION);
        assert_eq!(received.reason.as_str(), "rate limit exceeded");
        flooding.await.unwrap();
    });
}

#[test]
fn serve_refuses_bad_policy_options() {
    for options in [
        &["--rate-limit", "fast"][..],
        &["--rate-limit", "0"],
        &["--origin", "example.com"],
        &["--basic-auth", "nopassword"],
        &["--deny-no-origin"],
    ] {
        let finished = Sockjet::run(&[&["serve", "127.0.0.1:0"], options].concat());
        assert_eq!(finished.status.code(), Some(2), "{options:?}");
        let stderr = finished.stderr;
        assert!(stderr.contains("error:"), "{options:?}: {stderr}");
    }
}
