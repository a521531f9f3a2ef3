//! tokio-websockets echo server: `tokio_websockets_echo ADDR` (no `--compression`: its README
//! says WebSocket compression is unsupported).
//!
//! As its benchmarked `examples/echo_server.rs`: `ServerBuilder` with outgoing frames never
//! split (`frame_size(usize::MAX)`; the default splits at 4 MiB), the connection task run
//! `tokio::task::unconstrained`, and `send` per reply. The stream answers pings and the
//! peer's Close itself.

use futures_util::{SinkExt, StreamExt};
use sockjet_bench_peers::{MAX_MESSAGE_SIZE, accept, bind, parse_args};
use tokio::net::TcpStream;
use tokio_websockets::{Config, Error, Limits, ServerBuilder};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args("tokio-websockets", false);
    let listener = bind(args.addr).await;
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(tokio::task::unconstrained(async move {
            let _ = handle(stream).await;
        }));
    }
}

async fn handle(stream: TcpStream) -> Result<(), Error> {
    let (_request, mut ws) = ServerBuilder::new()
        .config(Config::default().frame_size(usize::MAX))
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE_SIZE)))
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
