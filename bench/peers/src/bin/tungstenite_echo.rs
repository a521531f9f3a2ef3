//! tokio-tungstenite echo server: `tungstenite_echo ADDR` (no `--compression`: tungstenite
//! has no permessage-deflate).
//!
//! As its own `examples/echo-server.rs`: split the stream, keep text/binary messages and
//! `forward` them into the sink. `forward` feeds replies while input is ready and flushes
//! once the read side would block, i.e. replies are batched per read. Tungstenite answers
//! pings and the peer's Close itself.

use futures_util::{StreamExt, TryStreamExt, future};
use sockjet_bench_peers::{MAX_MESSAGE_SIZE, accept, bind, parse_args};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args("tokio-tungstenite", false);
    let listener = bind(args.addr).await;
    // Defaults cap frames at 16 MiB and messages at 64 MiB; raise the frame cap too.
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            let (write, read) = ws.split();
            let _ = read
                .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
                .forward(write)
                .await;
        });
    }
}
