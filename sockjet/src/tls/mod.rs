//! TLS (`wss://`) with [rustls], behind the `tls` cargo feature (on by default).
//!
//! Every rustls configuration built here uses the *ring* crypto provider, chosen
//! explicitly: sockjet never relies on a process-wide default provider, so it cannot hit
//! rustls' "no process-level CryptoProvider" panic when another crate enables a second
//! provider. ALPN offers `http/1.1`, the protocol of the WebSocket opening handshake
//! (RFC 6455 §4.1). TLS stays out of the protocol core; a TLS stream is one more
//! transport under a connection.
//!
//! - [`ServerTls`]: the certificates of a `wss://` server (`ServerBuilder::tls`).
//! - [`ClientTls`]: the trust anchors of a `wss://` client (`ClientBuilder::tls`).

mod client;
mod server;

pub use client::ClientTls;
pub use rustls;
pub use server::ServerTls;
