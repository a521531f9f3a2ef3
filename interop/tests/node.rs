//! sockjet ↔ Node.js `ws` (peers/node_*.js); see `sockjet_interop::scenario`.

use sockjet_interop::{
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
