//! sockudo-ws echo server: `sockudo_echo ADDR [--compression]`.
//!
//! Plain: `server::WebSocketServer::<Http1>::accept_raw` (the library's HTTP/1.1 accept, keeping the
//! concrete `TcpStream` type). `--compression`: that accept does not negotiate extensions, so
//! the handshake is done with the library's own `handshake` and `deflate` helpers (as its
//! `autobahn/server.rs` does), with `DeflateConfig::default()` (context takeover, 15 window
//! bits, level 6), and frames then go through `CompressedWebSocketStream`. The echo loop is
//! the one its README gives for a Tokio unified stream: `feed` each reply, and `next()`
//! flushes queued replies once the parsed input batch is exhausted.

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sockudo_ws::deflate::{DeflateConfig, negotiate_server_deflate};
use sockudo_ws::handshake::{build_response, generate_accept_key, parse_request};
// `WebSocketServer` is re-exported at the crate root only with `http2`/`http3`.
use sockjet_bench_peers::{MAX_MESSAGE_SIZE, accept, bind, parse_args};
use sockudo_ws::server::WebSocketServer;
use sockudo_ws::{CompressedWebSocketStream, Config, Http1, Message, Role, WebSocketStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest HTTP upgrade request read before giving up.
const MAX_REQUEST: usize = 16 * 1024;

fn main() {
    let args = parse_args("sockudo-ws", true);
    // The README: the first clock read calibrates quanta (up to 200 ms); do it before the
    // runtime exists, not on the first connection.
    sockudo_ws::init_clock();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = bind(args.addr).await;
        let config = Config::builder()
            .max_message_size(MAX_MESSAGE_SIZE)
            .max_frame_size(MAX_MESSAGE_SIZE)
            .build();
        let server = WebSocketServer::<Http1>::new(config.clone());
        loop {
            let stream = accept(&listener).await;
            if args.compression {
                tokio::spawn(serve_compressed(stream, config.clone()));
            } else {
                let server = server.clone();
                tokio::spawn(async move {
                    if let Ok((ws, _)) = server.accept_raw(stream).await {
                        let _ = echo(ws).await;
                    }
                });
            }
        }
    });
}

/// Echoes data messages until Close, an error or EOF. Pings are answered, and a peer's
/// Close is answered, by the stream itself.
async fn echo<W>(mut ws: W) -> sockudo_ws::Result<()>
where
    W: Stream<Item = sockudo_ws::Result<Message>>
        + Sink<Message, Error = sockudo_ws::Error>
        + Unpin,
{
    while let Some(message) = ws.next().await {
        match message? {
            message @ (Message::Text(_) | Message::Binary(_)) => ws.feed(message).await?,
            Message::Close(_) => return Ok(()),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    Ok(())
}

/// Handshake negotiating permessage-deflate, then the echo loop on the negotiated stream.
async fn serve_compressed(mut stream: TcpStream, config: Config) {
    let mut buf = Vec::with_capacity(4096);
    let (response, deflate, leftover) = loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match parse_request(&buf) {
            Ok(Some((request, consumed))) => {
                let negotiated = request
                    .extensions
                    .and_then(|offers| negotiate_server_deflate(offers, &DeflateConfig::default()));
                let extensions = negotiated.as_ref().map(|n| n.to_response_header());
                let response = build_response(
                    &generate_accept_key(request.key),
                    None,
                    extensions.as_deref(),
                );
                let leftover =
                    (consumed < buf.len()).then(|| Bytes::copy_from_slice(&buf[consumed..]));
                break (response, negotiated.map(|n| n.config), leftover);
            }
            Ok(None) if buf.len() < MAX_REQUEST => {}
            _ => {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                return;
            }
        }
    };
    if stream.write_all(&response).await.is_err() {
        return;
    }
    let _ = match deflate {
        Some(deflate) => {
            echo(CompressedWebSocketStream::server_with_leftover(
                stream, config, deflate, leftover,
            ))
            .await
        }
        None => {
            echo(WebSocketStream::from_raw_with_leftover(
                stream,
                Role::Server,
                config,
                leftover,
            ))
            .await
        }
    };
}
