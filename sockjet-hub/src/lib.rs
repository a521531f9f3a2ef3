//! # sockjet-hub: rooms for sockjet WebSocket servers, in one process or many
//!
//! A [`Hub`] groups connections into named topics (rooms): [`join`](Hub::join),
//! [`leave`](Hub::leave), [`publish`](Hub::publish), [`members`](Hub::members). A member
//! leaves by itself when its connection ends. Every delivery is a
//! [`sockjet::Broadcast`]: the frame is built once per message and queued to each member
//! without waiting, so one slow member never holds up the publisher or the others (it
//! misses messages, counted, or is closed: [`HubBuilder::slow_receiver`]).
//!
//! By default a hub serves one process ([`InProcess`]). With a [`RedisBackend`], the hubs
//! of several processes share their topics through Redis pub/sub: a message published on
//! process A reaches the topic's members on process B. Redis may come and go: the backend
//! reconnects (and says so in the logs), and local delivery never waits for it.
//!
//! ```no_run
//! use sockjet_hub::{Hub, RedisBackend};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Without Redis: `let hub = Hub::new();`
//!     let hub = Hub::builder()
//!         .backend(RedisBackend::new("redis://127.0.0.1:6379")?)
//!         .build();
//!     let server = sockjet::Server::bind("127.0.0.1:8765").await?;
//!     server
//!         .serve(move |mut ws| {
//!             let hub = hub.clone();
//!             async move {
//!                 // ws://127.0.0.1:8765/room/NAME joins room NAME.
//!                 let Some(room) = ws.path().strip_prefix("/room/").map(str::to_owned) else {
//!                     return;
//!                 };
//!                 let me = ws.sender();
//!                 if hub.join(&room, &me).is_err() {
//!                     return;
//!                 }
//!                 while let Ok(Some(message)) = ws.recv().await {
//!                     let _ = hub.publish(&room, message);
//!                 }
//!                 hub.leave_all(me.id());
//!             }
//!         })
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! Who is in a topic, across processes: [`Presence`] ([`RedisPresence`] keeps each
//! process's records in Redis with a TTL, [`InProcessPresence`] in this process only).
//!
//! The crate also has a binary, `sockjet-hub-relay`, that serves exactly this (see its
//! `--help`).

mod backend;
mod envelope;
mod hub;
mod members;
mod presence;
mod redis_backend;
mod registry;
mod topic;

pub use backend::{
    Backend, BackendStats, HubId, InProcess, RemoteDelivery, RemoteFailure, RemoteInbox,
};
pub use hub::{Hub, HubBuilder, HubStats, PublishReport};
pub use presence::{
    InProcessPresence, Presence, PresenceError, RedisPresence, RedisPresenceBuilder,
};
pub use redis_backend::{InvalidRedisUrl, RedisBackend};
pub use topic::{MAX_TOPIC_LEN, TopicError, validate_topic};
