//! A plain hyper 1.x server with WebSocket and HTTP on one port: `/healthz` answers over
//! HTTP, any WebSocket request is upgraded with `sockjet_axum::hyper` and echoed.
//!
//! `cargo run -p sockjet-examples --bin hyper_server -- 127.0.0.1:8081`, then
//! `sockjet connect ws://127.0.0.1:8081/`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use sockjet::ServerBuilder;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let builder = ServerBuilder::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let builder = builder.clone();
        let service = service_fn(move |request| handle(request, builder.clone()));
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                // Keeps the connection for the upgrade instead of closing it.
                .with_upgrades();
            if let Err(error) = served.await {
                eprintln!("HTTP connection failed: {error}");
            }
        });
    }
}

async fn handle(
    mut request: Request<Incoming>,
    builder: ServerBuilder,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !sockjet_axum::hyper::is_upgrade_request(&request) {
        let (status, body) = match request.uri().path() {
            "/healthz" => (StatusCode::OK, "ok"),
            _ => (StatusCode::NOT_FOUND, "not found"),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        return Ok(response);
    }
    // A bad handshake gets its 400/405/426 refusal; a good one a 101, and the connection
    // once hyper has sent it.
    Ok(match sockjet_axum::hyper::upgrade(&mut request, &builder) {
        Ok((response, upgrading)) => {
            tokio::spawn(async move {
                let mut ws = match upgrading.await {
                    Ok(ws) => ws,
                    Err(error) => return eprintln!("upgrade failed: {error}"),
                };
                while let Ok(Some(message)) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
            response
        }
        Err(refusal) => refusal,
    })
}
