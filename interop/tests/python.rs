//! sockjet ↔ Python `websockets` (peers/python_*.py); see `sockjet_interop::scenario` and
//! `sockjet_interop::deflate`.

use serde_json::json;
use sockjet::proto::DeflateConfig;
use sockjet_interop::{
    deflate::{
        DeflateCase, Negotiated, deflate_client_with, deflate_server_with, sockjet_restricted,
    },
    process::PeerCommand,
    scenario::{sockjet_client_with, sockjet_server_with},
};

/// 1. sockjet server ↔ Python `websockets` client.
#[tokio::test]
async fn sockjet_server_with_python_client() {
    sockjet_server_with(PeerCommand::python("python client", "python_client.py")).await;
}

/// 3. sockjet client ↔ Python `websockets` server.
#[tokio::test]
async fn sockjet_client_with_python_server() {
    sockjet_client_with(PeerCommand::python("python server", "python_server.py")).await;
}

// ----- permessage-deflate -----

/// `python_deflate.py client` or `server`.
fn python(role: &str) -> PeerCommand {
    PeerCommand::python(&format!("python {role}"), "python_deflate.py").arg(role)
}

/// websockets' default: `compression="deflate"`.
fn websockets_default() -> serde_json::Value {
    json!({"compression": "deflate"})
}

/// Both defaults: websockets offers `client_max_window_bits`, sockjet answers with its
/// 12-bit window.
#[tokio::test]
async fn deflate_sockjet_server_with_python_client() {
    deflate_server_with(
        python("client"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: websockets_default(),
            expected: Some(Negotiated::windows(12, 15)),
        },
    )
    .await;
}

/// Both defaults: websockets' server answers 12-bit windows both ways.
#[tokio::test]
async fn deflate_sockjet_client_with_python_server() {
    deflate_client_with(
        python("server"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: websockets_default(),
            expected: Some(Negotiated::windows(12, 12)),
        },
    )
    .await;
}

/// The websockets client asks for no context takeover both ways.
#[tokio::test]
async fn deflate_no_context_takeover_sockjet_server_with_python_client() {
    deflate_server_with(
        python("client"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: json!({"factory": {
                "client_no_context_takeover": true,
                "server_no_context_takeover": true,
            }}),
            expected: Some(Negotiated::windows(12, 15).no_context_takeover()),
        },
    )
    .await;
}

/// The websockets server imposes no context takeover both ways.
#[tokio::test]
async fn deflate_no_context_takeover_sockjet_client_with_python_server() {
    deflate_client_with(
        python("server"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: json!({"factory": {
                "server_no_context_takeover": true,
                "client_no_context_takeover": true,
            }}),
            expected: Some(Negotiated::windows(15, 15).no_context_takeover()),
        },
    )
    .await;
}

/// The websockets client asks for a 10-bit server window and offers a 9-bit one.
#[tokio::test]
async fn deflate_small_windows_sockjet_server_with_python_client() {
    deflate_server_with(
        python("client"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: json!({"factory": {
                "server_max_window_bits": 10,
                "client_max_window_bits": 9,
            }}),
            expected: Some(Negotiated::windows(10, 9)),
        },
    )
    .await;
}

/// The websockets server uses a 10-bit window and limits sockjet's to 9 bits.
#[tokio::test]
async fn deflate_small_windows_sockjet_client_with_python_server() {
    deflate_client_with(
        python("server"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: json!({"factory": {
                "server_max_window_bits": 10,
                "client_max_window_bits": 9,
            }}),
            expected: Some(Negotiated::windows(10, 9)),
        },
    )
    .await;
}

/// The websockets client asks for the smallest window, 8 bits, which zlib cannot
/// compress with: sockjet compresses with 9 bits and distances that fit 8.
#[tokio::test]
async fn deflate_8_bit_window_sockjet_server_with_python_client() {
    deflate_server_with(
        python("client"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: json!({"factory": {"server_max_window_bits": 8}}),
            expected: Some(Negotiated::windows(8, 15)),
        },
    )
    .await;
}

/// The websockets server limits sockjet's window to 8 bits.
#[tokio::test]
async fn deflate_8_bit_window_sockjet_client_with_python_server() {
    deflate_client_with(
        python("server"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: json!({"factory": {"client_max_window_bits": 8}}),
            expected: Some(Negotiated::windows(15, 8)),
        },
    )
    .await;
}

/// sockjet's server imposes no context takeover and small windows on websockets' default
/// offer, and compresses every message.
#[tokio::test]
async fn deflate_restricted_sockjet_server_with_python_client() {
    deflate_server_with(
        python("client"),
        DeflateCase {
            sockjet: Some(sockjet_restricted()),
            peer_options: websockets_default(),
            expected: Some(Negotiated::windows(10, 9).no_context_takeover()),
        },
    )
    .await;
}

/// sockjet's client asks for no context takeover and small windows.
#[tokio::test]
async fn deflate_restricted_sockjet_client_with_python_server() {
    deflate_client_with(
        python("server"),
        DeflateCase {
            sockjet: Some(sockjet_restricted()),
            peer_options: websockets_default(),
            expected: Some(Negotiated::windows(10, 9).no_context_takeover()),
        },
    )
    .await;
}

/// sockjet's compression off; websockets' client offers it: nothing is negotiated.
#[tokio::test]
async fn deflate_off_sockjet_server_with_python_client() {
    deflate_server_with(
        python("client"),
        DeflateCase {
            sockjet: None,
            peer_options: websockets_default(),
            expected: None,
        },
    )
    .await;
}

/// sockjet's compression off (it offers none) with websockets' server, which supports it.
#[tokio::test]
async fn deflate_off_sockjet_client_with_python_server() {
    deflate_client_with(
        python("server"),
        DeflateCase {
            sockjet: None,
            peer_options: websockets_default(),
            expected: None,
        },
    )
    .await;
}

// ----- behind axum -----

/// Python `websockets` client ↔ sockjet behind an axum app (sockjet-axum's extractor).
#[tokio::test]
async fn axum_app_with_python_client() {
    sockjet_interop::axum::axum_server_with(PeerCommand::python(
        "python client",
        "python_client.py",
    ))
    .await;
}

// ----- TLS -----

/// sockjet's client ↔ Python `websockets` server over `wss://`, with a test CA.
#[tokio::test]
async fn sockjet_wss_client_with_python_tls_server() {
    let certificates = sockjet_interop::wss_client::TestCertificates::new();
    let server = PeerCommand::python("python TLS server", "python_tls_server.py")
        .arg(certificates.cert_file())
        .arg(certificates.key_file());
    sockjet_interop::wss_client::sockjet_wss_client_with(server, &certificates).await;
}

/// `sockjet serve --tls-cert --tls-key` ↔ Python `websockets` over `wss://`, trusting a CA
/// made for the test; then SIGTERM closes the open connection with 1001.
#[tokio::test]
async fn sockjet_serve_over_wss_with_python_client() {
    sockjet_interop::tls::sockjet_serve_wss_with(PeerCommand::python(
        "python wss client",
        "python_wss_client.py",
    ))
    .await;
}
