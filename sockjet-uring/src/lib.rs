//! # sockjet-uring: a WebSocket server engine on io_uring
//!
//! The same sans-I/O core as `sockjet` ([`sockjet_proto`]), driven by Linux io_uring
//! instead of tokio: one ring per worker thread, receives posted once per connection
//! (multishot, into buffers the kernel picks from a shared pool only when data arrives),
//! and every send, accept, shutdown and close of a pass through the ring submitted with one
//! system call. With epoll, each message costs a `recv` and a `send` of its own; here a
//! whole batch of connections costs one `io_uring_enter`.
//!
//! The application is a [`Handler`] with callbacks (like uWebSockets'), one per worker
//! thread, rather than an async task per connection: for servers whose work per message
//! is short. The tokio engine (`sockjet`) remains the general one (TLS, async handlers,
//! routing, policies); `sockjet serve --echo` uses this one where the kernel allows.
//!
//! ```no_run
//! use sockjet_uring::{Handler, Message, Options, Server, Socket};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
//!         let _ = socket.send(message);
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let server = Server::bind("127.0.0.1:8765", Options::default())?;
//! println!("listening on ws://{}", server.local_addr()?);
//! server.run(|| Echo)?; // until ShutdownHandle::shutdown
//! # Ok(())
//! # }
//! ```

mod handler;
mod options;

pub use handler::{Handler, Socket, SocketId};
pub use options::Options;
pub use sockjet_proto::{
    CloseCode, Config, ConnectionClosed, Message, PreparedMessage, Request, Response, ServerConfig,
    State, http,
};

#[cfg(target_os = "linux")]
mod batching;
#[cfg(target_os = "linux")]
mod buffers;
#[cfg(target_os = "linux")]
mod conn;
#[cfg(target_os = "linux")]
mod low_water;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod worker;

#[cfg(target_os = "linux")]
pub use server::{Server, ShutdownHandle, probe};
