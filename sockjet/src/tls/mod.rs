//! TLS (`wss://`) with [rustls](https://docs.rs/rustls), behind the `tls` feature (on by
//! default).
//!
//! rustls runs with its *ring* crypto provider, chosen explicitly for every configuration
//! sockjet builds: nothing depends on a process-wide default provider being installed, so
//! there is no "no process-level CryptoProvider available" panic at run time. TLS stays
//! out of the protocol core; a TLS stream is one more transport under a connection.

mod server;

pub use rustls;
pub use server::ServerTls;
