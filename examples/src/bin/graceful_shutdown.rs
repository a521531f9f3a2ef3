//! Graceful shutdown: a server that streams a counter to each client, and on Ctrl-C or
//! SIGTERM closes every connection with 1001 (going away) after the messages already
//! sent, waits for the closing handshakes (5 s at most here), and exits.
//!
//! ```text
//! cargo run -p sockjet-examples --bin graceful_shutdown -- 127.0.0.1:8765
//! ```
//!
//! A `ShutdownHandle` starts the same shutdown from inside the program; this one also
//! stops by itself after 60 s.

use std::time::Duration;

use sockjet::{Connection, Server};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".to_owned());
    let server = Server::builder()
        .shutdown_timeout(Duration::from_secs(5))
        .bind(addr)
        .await?;
    println!("listening on ws://{}", server.local_addr());

    // Stop from inside the program too: any task can hold a clone of the handle.
    let handle = server.shutdown_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        handle.shutdown();
    });

    server
        .serve_with_shutdown(count, async {
            let signal = sockjet::shutdown_signal().await;
            println!("{signal}: closing connections");
        })
        .await?;
    println!("every connection closed");
    Ok(())
}

/// Sends 0, 1, 2, ... ten times a second until the connection closes. On shutdown the
/// server closes it with 1001: `send` then fails and the handler returns.
async fn count(ws: Connection) {
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    for n in 0u64.. {
        ticks.tick().await;
        if ws.send(n.to_string()).await.is_err() {
            break;
        }
    }
}
