//! sockjet ↔ Python `websockets` (peers/python_*.py); see `sockjet_interop::scenario`.

use sockjet_interop::{
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
