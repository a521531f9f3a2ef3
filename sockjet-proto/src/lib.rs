//! # sockjet-proto: a sans-I/O WebSocket protocol core
//!
//! Bytes in, events and bytes out: no sockets, no async runtime, no clock. Every driver
//! (`sockjet` on tokio, a blocking one, your own event loop) feeds network bytes in and
//! writes what the core produces out.
//!
//! ```text
//!            network                                   application
//!   receive_data() / receive_eof() ──►  Protocol  ──► next_event()
//!   outgoing() / eof_to_send()     ◄──            ◄── send_text() / send_binary() / send_close()
//! ```
//!
//! ## Call order
//!
//! 1. After bytes arrive, call [`Protocol::receive_data`] (or read straight into
//!    [`Protocol::receive_buffer`]), or [`Protocol::receive_eof`] at end of stream.
//! 2. Call [`Protocol::next_event`] until it returns `None`. Frames are parsed lazily
//!    here, so a driver that stops calling it applies backpressure.
//! 3. Write [`Protocol::outgoing`] to the network (it implements [`bytes::Buf`], with
//!    vectored chunks), then half-close if [`Protocol::eof_to_send`] says so.
//! 4. If [`Protocol::close_expected`] is true, arm a close timeout: the peer should end
//!    the TCP connection soon.
//!
//! The opening handshake is handled by [`ServerProtocol`] and [`ClientProtocol`], which
//! hand over to a [`Protocol`] once it succeeds.
//!
//! ```
//! use sockjet_proto::{Config, Event, Message, Protocol, Side};
//! use bytes::Buf;
//!
//! let mut server = Protocol::new(Side::Server, Config::default());
//! // A masked text frame "Hi" from a client.
//! server.receive_data(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
//! match server.next_event() {
//!     Some(Event::Message(Message::Text(text))) => assert_eq!(&*text, "Hi"),
//!     other => panic!("{other:?}"),
//! }
//! server.send_text("Hello").unwrap();
//! let out = server.outgoing();
//! assert_eq!(out.chunk(), b"\x81\x05Hello");
//! ```

#![deny(unsafe_code)]

mod client;
mod close;
mod config;
mod error;
pub mod extension;
pub mod frame;
pub mod handshake;
mod low_water;
mod message;
mod outgoing;
mod prepared;
mod protocol;
mod server;
pub mod utf8;

pub use bytes::{self, Bytes, BytesMut};
pub use http;

pub use client::ClientProtocol;
pub use close::{CloseCode, CloseFrame, ConnectionClosed};
pub use config::{ClientConfig, Config, DEFAULT_MAX_SIZE, ServerConfig};
pub use error::{ApiMisuse, HandshakeError, ProtocolError};
pub use extension::permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
pub use frame::mask::{MaskKeys, OsRandomMaskKeys};
pub use handshake::{Request, Response};
pub use low_water::receive_low_water;
pub use message::{Message, Utf8Bytes};
pub use outgoing::{Outgoing, Piece};
pub use prepared::PreparedMessage;
pub use protocol::{Event, Protocol, Side, State};
pub use server::ServerProtocol;
