//! Harness of sockjet's interop tests (`cargo test -p sockjet-interop`).
//!
//! The tests in `tests/` run sockjet against other WebSocket implementations: Python
//! `websockets` and Node.js `ws` (as client and as server) and headless Chromium. The
//! peers are small scripted programs in `peers/` that print one JSON line per observation;
//! this crate finds them ([`deps`]), runs them ([`process`]) and plays sockjet's side of
//! the same script: [`scenario`] without compression, [`deflate`] with permessage-deflate
//! (RFC 7692) in several configurations of both sides, [`axum`] with sockjet behind an
//! axum app, [`wss_client`] runs sockjet's client over `wss://` against a peer's TLS
//! server, and [`tls`] runs `sockjet serve` over `wss://`, each with a test CA.
//! [`echo_client`] runs Python and Node.js clients against any sockjet echo server (the
//! io_uring engine's among them), and [`chromium`] prepares the browser peer.
//!
//! Their dependencies are installed by `scripts/install-test-deps.sh`; a test whose
//! dependency is missing fails and says so.

pub mod axum;
pub mod cdp;
pub mod chromium;
pub mod deflate;
pub mod deps;
pub mod echo_client;
pub mod process;
pub mod scenario;
pub mod tls;
pub mod wss_client;
