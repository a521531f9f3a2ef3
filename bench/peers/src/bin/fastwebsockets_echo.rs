//! fastwebsockets echo server: `fastwebsockets_echo ADDR` (no `--compression`: fastwebsockets
//! has no permessage-deflate).
//!
//! As its benchmarked `examples/echo_server.rs`: hyper 1 HTTP/1.1 connection with
//! `fastwebsockets::upgrade::upgrade`, the connection task run `tokio::task::unconstrained`,
//! and a `FragmentCollector` so fragmented messages are echoed whole. Auto-pong and auto-close
//! (both on by default) answer pings and the peer's Close.

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sockjet_bench_peers::{MAX_MESSAGE_SIZE, accept, bind, parse_args};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args("fastwebsockets", false);
    let listener = bind(args.addr).await;
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(server_upgrade))
                .with_upgrades()
                .await;
        });
    }
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        let _ = handle_client(fut).await;
    }));
    Ok(response)
}

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_max_message_size(MAX_MESSAGE_SIZE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
