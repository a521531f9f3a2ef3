//! sockjet ↔ Node.js `ws` (peers/node_*.js); see `sockjet_interop::scenario` and
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

/// 2. sockjet server ↔ Node.js `ws` client.
#[tokio::test]
async fn sockjet_server_with_node_client() {
    sockjet_server_with(PeerCommand::node("node client", "node_client.js")).await;
}

/// 4. sockjet client ↔ Node.js `ws` server.
#[tokio::test]
async fn sockjet_client_with_node_server() {
    sockjet_client_with(PeerCommand::node("node server", "node_server.js")).await;
}

// ----- permessage-deflate -----

/// `node_deflate.js client` or `server`.
fn node(role: &str) -> PeerCommand {
    PeerCommand::node(&format!("node {role}"), "node_deflate.js").arg(role)
}

/// `perMessageDeflate: true`, and every message compressed (`threshold: 0`).
fn ws_default() -> serde_json::Value {
    json!({"threshold": 0})
}

/// No context takeover both ways and 10-bit windows, asked for (client) or imposed
/// (server) by `ws`.
fn ws_restricted() -> serde_json::Value {
    json!({
        "serverNoContextTakeover": true,
        "clientNoContextTakeover": true,
        "serverMaxWindowBits": 10,
        "clientMaxWindowBits": 10,
        "threshold": 0,
    })
}

/// Both defaults: `ws` offers `client_max_window_bits`, sockjet answers with its 12-bit
/// window.
#[tokio::test]
async fn deflate_sockjet_server_with_node_client() {
    deflate_server_with(
        node("client"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: ws_default(),
            expected: Some(Negotiated::windows(12, 15)),
        },
    )
    .await;
}

/// Both defaults: the `ws` server accepts sockjet's offer without parameters.
#[tokio::test]
async fn deflate_sockjet_client_with_node_server() {
    deflate_client_with(
        node("server"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: ws_default(),
            expected: Some(Negotiated::windows(15, 15)),
        },
    )
    .await;
}

/// The `ws` client asks for no context takeover and 10-bit windows.
#[tokio::test]
async fn deflate_restricted_by_node_sockjet_server_with_node_client() {
    deflate_server_with(
        node("client"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: ws_restricted(),
            expected: Some(Negotiated::windows(10, 10).no_context_takeover()),
        },
    )
    .await;
}

/// The `ws` server imposes no context takeover and 10-bit windows.
#[tokio::test]
async fn deflate_restricted_by_node_sockjet_client_with_node_server() {
    deflate_client_with(
        node("server"),
        DeflateCase {
            sockjet: Some(DeflateConfig::default()),
            peer_options: ws_restricted(),
            expected: Some(Negotiated::windows(10, 10).no_context_takeover()),
        },
    )
    .await;
}

/// sockjet's server imposes no context takeover and small windows on `ws`' default offer,
/// and compresses every message.
#[tokio::test]
async fn deflate_restricted_sockjet_server_with_node_client() {
    deflate_server_with(
        node("client"),
        DeflateCase {
            sockjet: Some(sockjet_restricted()),
            peer_options: ws_default(),
            expected: Some(Negotiated::windows(10, 9).no_context_takeover()),
        },
    )
    .await;
}

/// sockjet's client asks for no context takeover and small windows.
#[tokio::test]
async fn deflate_restricted_sockjet_client_with_node_server() {
    deflate_client_with(
        node("server"),
        DeflateCase {
            sockjet: Some(sockjet_restricted()),
            peer_options: ws_default(),
            expected: Some(Negotiated::windows(10, 9).no_context_takeover()),
        },
    )
    .await;
}

/// sockjet's compression off; the `ws` client offers it: nothing is negotiated.
#[tokio::test]
async fn deflate_off_sockjet_server_with_node_client() {
    deflate_server_with(
        node("client"),
        DeflateCase {
            sockjet: None,
            peer_options: ws_default(),
            expected: None,
        },
    )
    .await;
}

/// sockjet's compression off (it offers none) with a `ws` server that supports it.
#[tokio::test]
async fn deflate_off_sockjet_client_with_node_server() {
    deflate_client_with(
        node("server"),
        DeflateCase {
            sockjet: None,
            peer_options: ws_default(),
            expected: None,
        },
    )
    .await;
}
