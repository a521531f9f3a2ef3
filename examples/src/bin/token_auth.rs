//! Token authentication, as in the guide's authentication chapter: the client passes its
//! token in the query string (browsers cannot set headers on a WebSocket request) or in an
//! `Authorization: Bearer` header; unknown tokens get 401 before any upgrade, and the
//! handler knows who is connected.
//!
//! `cargo run -p sockjet-examples --bin token_auth`, then
//! `sockjet connect 'ws://127.0.0.1:8765/?token=alice-token'`
//! (or `websocat 'ws://127.0.0.1:8765/?token=alice-token'`); a wrong token is refused.

use std::{collections::HashMap, sync::Arc};

use sockjet::{ConnectionConfig, RateLimit, Server, auth::BearerAuth, origin::OriginPolicy};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".to_owned());
    // In a real service: a database or a signed-token check.
    let tokens: Arc<HashMap<&str, &str>> = Arc::new(HashMap::from([
        ("alice-token", "alice"),
        ("bob-token", "bob"),
    ]));
    let auth = BearerAuth::new(move |token| {
        let user = tokens.get(token.as_str()).map(|user| (*user).to_owned());
        async move { user }
    })
    .query_parameter("token");
    // Pages of other sites may not connect with a visitor's browser; tools may (no Origin).
    let origins = OriginPolicy::new()
        .allow("http://localhost:8000")
        .allow("https://*.example.com");
    // An abuser sending more than 20 messages per second is closed with 1008.
    let config = ConnectionConfig::default().rate_limit(Some(RateLimit::messages_per_second(20)));
    let server = Server::builder()
        .connection(config)
        .request_hook(origins)
        .request_hook(auth)
        .bind(addr)
        .await?;
    println!(
        "listening on ws://{}/?token=alice-token",
        server.local_addr()
    );
    server
        .serve(|mut ws| async move {
            let user = ws.identity().unwrap_or("?").to_owned();
            if ws.send(format!("hello {user}")).await.is_err() {
                return;
            }
            while let Ok(Some(message)) = ws.recv().await {
                let reply = format!("{user}: {}", message.as_text().unwrap_or("<binary>"));
                if ws.send(reply).await.is_err() {
                    break;
                }
            }
        })
        .await
}
