//! # sockjet-axum: sockjet WebSockets in hyper and axum apps
//!
//! WebSocket and HTTP on one port, in an app that already serves HTTP with hyper 1.x or
//! axum 0.8, the way Python `websockets` pairs with aiohttp. sockjet checks the request
//! that the HTTP server parsed (RFC 6455 §4.2.1), negotiates permessage-deflate, builds the
//! response, and runs a [`sockjet::Connection`] on the stream the HTTP server upgrades.
//!
//! - [`WebSocketUpgrade`] (feature `axum`, on by default): an axum extractor, used like
//!   axum's own `WebSocketUpgrade`.
//! - [`hyper::upgrade`] and [`hyper::is_upgrade_request`]: for a plain hyper service.
//!
//! Both accept the HTTP/1.1 `Upgrade` handshake and WebSockets over HTTP/2 (RFC 8441
//! extended CONNECT: `axum::serve` enables it; a hyper server needs
//! `http2().enable_connect_protocol()`).
//!
//! ```no_run
//! use axum::{Router, routing::{any, get}};
//! use sockjet_axum::WebSocketUpgrade;
//!
//! # async fn serve() -> std::io::Result<()> {
//! let app = Router::new()
//!     .route("/healthz", get(|| async { "ok" }))
//!     .route(
//!         "/ws",
//!         any(|upgrade: WebSocketUpgrade| async move {
//!             upgrade.on_upgrade(|mut ws| async move {
//!                 while let Ok(Some(message)) = ws.recv().await {
//!                     let _ = ws.send(message).await;
//!                 }
//!             })
//!         }),
//!     );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

#[cfg(feature = "axum")]
mod axum;
pub mod hyper;

#[cfg(feature = "axum")]
pub use crate::axum::{WebSocketUpgrade, WebSocketUpgradeRejection};
