//! # sockjet: WebSocket server and client on tokio
//!
//! A thin driver over the sans-I/O [`sockjet_proto`] core: the core owns every protocol
//! rule (handshake, framing, reassembly, UTF-8, limits, closing handshake); this crate
//! moves bytes between it and a socket, fast.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Server: echo every message.
//!     let server = sockjet::Server::bind("127.0.0.1:0").await?;
//!     let url = format!("ws://{}", server.local_addr());
//!     tokio::spawn(server.serve(|mut ws| async move {
//!         while let Ok(Some(message)) = ws.recv().await {
//!             let _ = ws.send(message).await;
//!         }
//!     }));
//!
//!     // Client.
//!     let mut ws = sockjet::connect(&url).await?;
//!     ws.send("hello").await?;
//!     assert_eq!(ws.recv().await?.unwrap().as_text(), Some("hello"));
//!     ws.close(sockjet::CloseCode::NORMAL_CLOSURE, "").await?;
//!     Ok(())
//! }
//! ```

pub mod auth;
mod broadcast;
mod client;
mod config;
mod connection;
mod driver;
mod error;
pub mod hooks;
mod http_answer;
mod listener;
pub mod origin;
mod rate_limit;
pub mod router;
mod server;
mod server_options;
mod serving;
mod shutdown;
mod socket;
mod subprotocol;
#[cfg(feature = "tls")]
pub mod tls;
mod tracker;
mod upgraded;
mod weak_sender;

pub use sockjet_proto as proto;
pub use sockjet_proto::{
    Bytes, CloseCode, CloseFrame, ConnectionClosed, Message, Request, Response, State, Utf8Bytes,
};

pub use broadcast::{Broadcast, BroadcastReport, SlowReceiver, broadcast};
pub use client::{Backoff, ClientBuilder, Proxy, ProxyKind, Reconnecting, connect, parse_url};
pub use config::ConnectionConfig;
pub use connection::{Connection, ConnectionId, Sender, Transport};
pub use error::{Error, ErrorKind};
pub use listener::ListenAddr;
pub use rate_limit::{RateLimit, RateLimitAction};
pub use router::Router;
pub use server::{Server, ServerBuilder, serve};
pub use shutdown::{ShutdownHandle, Signal, shutdown_signal};
pub use upgraded::{PendingUpgrade, Upgrade};
pub use weak_sender::WeakSender;
