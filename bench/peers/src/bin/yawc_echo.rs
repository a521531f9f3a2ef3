//! yawc echo server: `yawc_echo ADDR [--compression]`.
//!
//! As its README's server recommendation (hyper 1 upgrade) and its benchmark's "yawc tuned"
//! server: 128 KiB read buffer, 64 KiB write backpressure boundary, UTF-8 validation of text
//! on (yawc's default is off; every other peer validates), and replies batched: `feed` up to
//! 32 immediately ready messages, then `flush`. No outgoing auto-fragmentation (yawc's
//! default). `--compression`: permessage-deflate with `DeflateOptions::default()` (context
//! takeover both ways, default level) except `compression_threshold: 1`, see
//! [`deflate_options`]. yawc answers pings and the peer's Close itself.

use futures_util::{FutureExt, SinkExt};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sockjet_bench_peers::{MAX_MESSAGE_SIZE, accept, bind, parse_args};
use yawc::{DeflateOptions, OpCode, Options, UpgradeFut, WebSocket, WebSocketError};

/// Most replies fed before a flush (yawc's benchmark server uses 32).
const BATCH: usize = 32;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args("yawc", true);
    let listener = bind(args.addr).await;
    let options = Options {
        compression: args.compression.then(deflate_options),
        ..Options::default()
            .with_utf8()
            .with_limits(MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE)
            .with_read_buffer_capacity(128 * 1024)
            .with_backpressure_boundary(64 * 1024)
    };
    loop {
        let stream = accept(&listener).await;
        let options = options.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| upgrade(req, options.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// yawc's default deflate options, except that empty messages are sent uncompressed.
///
/// yawc 0.5.0's compressor loops until a flush emits the `00 00 ff ff` sync marker. With a
/// zlib-semantics flate2 backend, a sync flush with no new input right after the previous
/// message's flush emits nothing, so compressing an empty message spins forever at 100% CPU.
/// yawc's own backend (miniz_oxide) always emits the marker, but here flate2 is built with
/// `zlib-rs` (sockudo-ws enables it, and Cargo unifies features across the package), which
/// takes precedence; yawc's own `zlib` feature selects that backend too. A threshold of 1
/// byte (default 0) skips compression for exactly the empty messages; RFC 7692 lets any
/// message go uncompressed.
fn deflate_options() -> DeflateOptions {
    DeflateOptions {
        compression_threshold: 1,
        ..DeflateOptions::default()
    }
}

async fn upgrade(
    mut req: Request<Incoming>,
    options: Options,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = WebSocket::upgrade_with_options(&mut req, options)?;
    tokio::spawn(async move {
        let _ = echo(fut).await;
    });
    Ok(response)
}

async fn echo(fut: UpgradeFut) -> Result<(), WebSocketError> {
    let Ok(mut ws) = fut.await else {
        return Ok(());
    };
    loop {
        let mut frame = ws.next_frame().await?;
        for fed in 1..=BATCH {
            match frame.opcode() {
                OpCode::Text | OpCode::Binary => ws.feed(frame).await?,
                OpCode::Close => return ws.close().await,
                _ => {}
            }
            if fed == BATCH {
                break;
            }
            match ws.next_frame().now_or_never() {
                Some(next) => frame = next?,
                None => break,
            }
        }
        ws.flush().await?;
    }
}
