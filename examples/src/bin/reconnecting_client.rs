//! A client that stays connected: it reconnects with exponential backoff when the
//! server goes away (restart, crash, network trouble), like Python `websockets`'
//! `async for websocket in connect(url)`.
//!
//! `reconnecting_client [url]` (default `ws://127.0.0.1:8765`): prints every message
//! received; stop the server, start it again, and watch it come back. The program ends
//! when the server closes normally (1000) or with an application code (4000-4999), or
//! refuses the handshake with a 4xx status.

use std::time::Duration;

use sockjet::{Backoff, ClientBuilder};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8765".to_owned());
    let mut connections = ClientBuilder::new(url.as_str())
        .reconnecting()
        .backoff(Backoff::default().max_delay(Duration::from_secs(30)))
        .on_retry(|why, delay| eprintln!("{why}; reconnecting in {:.1} s", delay.as_secs_f64()));

    while let Some(mut ws) = connections.next().await? {
        println!("connected to {url}");
        ws.send("hello again").await?;
        loop {
            match ws.recv().await {
                Ok(Some(message)) => println!("< {message:?}"),
                Ok(None) => break,
                Err(error) => {
                    eprintln!("connection lost: {error}");
                    break;
                }
            }
        }
    }
    println!("the server closed for good");
    Ok(())
}
