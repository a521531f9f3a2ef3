//! Autobahn|Testsuite testee: an echo server.
//!
//! `cargo run --release -p sockjet-examples --bin autobahn_server -- 127.0.0.1:9001`,
//! then `../shared/conformance/autobahn.py server ws://127.0.0.1:9001`.

use sockjet::{ConnectionConfig, Server};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    // Case 9.* sends messages of up to 16 MiB.
    let config = ConnectionConfig::default()
        .max_message_size(Some(64 << 20))
        .ping_interval(None);
    let server = Server::builder().connection(config).bind(addr).await?;
    println!("autobahn testee listening on ws://{}", server.local_addr());
    server
        .serve(|mut ws| async move {
            while let Ok(Some(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        })
        .await
}
