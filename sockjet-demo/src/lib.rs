//! # sockjet-demo: the guide's three applications
//!
//! One server, one port: plain HTTP `GET`s get the web pages, WebSocket upgrades on the
//! same paths get the applications.
//!
//! | path | page | application |
//! |---|---|---|
//! | `/` | index | |
//! | `/chat/{room}` | chat room | [`chat`]: nicknames, history, join/leave notices |
//! | `/live` | live chart | [`live`]: four sensors, 25 samples a second |
//! | `/game` | board | [`game`]: coins, 20 Hz authoritative ticks |
//! | `/healthz` | `ok` | |
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let server = sockjet_demo::Demo::start().bind("127.0.0.1:8000").await?;
//!     println!("open http://{}/", server.local_addr());
//!     server.serve().await
//! }
//! ```

pub mod chat;
pub mod game;
pub mod live;

use std::io;

use sockjet::{
    ConnectionConfig, RateLimit, Router, Server, ServerBuilder,
    hooks::{respond, respond_with},
    proto::http::{Method, StatusCode, header},
};

use crate::{chat::Chat, game::Game, live::Live};

const INDEX: &str = include_str!("pages/index.html");
const CHAT: &str = include_str!("pages/chat.html");
const LIVE: &str = include_str!("pages/live.html");
const GAME: &str = include_str!("pages/game.html");

/// Largest message a demo client may send: the applications' messages are small JSON.
const MAX_MESSAGE: usize = 64 * 1024;

/// The three applications, running.
#[derive(Clone, Debug)]
pub struct Demo {
    chat: Chat,
    live: Live,
    game: Game,
}

impl Demo {
    /// Starts the live stream's sampling and the game's tick loop on the current tokio
    /// runtime.
    ///
    /// ```no_run
    /// # async fn f() { let _demo = sockjet_demo::Demo::start(); }
    /// ```
    pub fn start() -> Self {
        Self {
            chat: Chat::new(),
            live: Live::start(),
            game: Game::start(),
        }
    }

    /// As [`start`](Self::start), with the chat rooms shared with every demo server
    /// connected to the same Redis (`redis://host:port`): a message said on one server
    /// reaches the room's members on all of them.
    ///
    /// # Errors
    ///
    /// The URL is not a Redis URL. (Redis being down is not an error: rooms work locally
    /// and join the others once it is back.)
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), String> {
    /// let demo = sockjet_demo::Demo::start_with_redis("redis://127.0.0.1:6379")?;
    /// # Ok(()) }
    /// ```
    pub fn start_with_redis(url: &str) -> Result<Self, String> {
        Self::start_with_redis_options(url, chat::RedisOptions::default())
    }

    /// As [`start_with_redis`](Self::start_with_redis), with the chat's presence TTL and
    /// reconciliation interval of `options`.
    ///
    /// # Errors
    ///
    /// The URL is not a Redis URL.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), String> {
    /// use std::time::Duration;
    /// let options = sockjet_demo::chat::RedisOptions::default().ttl(Duration::from_secs(10));
    /// let demo = sockjet_demo::Demo::start_with_redis_options("redis://127.0.0.1:6379", options)?;
    /// # Ok(()) }
    /// ```
    pub fn start_with_redis_options(
        url: &str,
        options: chat::RedisOptions,
    ) -> Result<Self, String> {
        Ok(Self {
            chat: Chat::with_redis_options(url, options)?,
            live: Live::start(),
            game: Game::start(),
        })
    }

    /// The chat rooms.
    pub fn chat(&self) -> &Chat {
        &self.chat
    }

    /// The live stream.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The router of the applications' WebSocket paths.
    pub fn router(&self) -> Router {
        let (chat, live, game) = (self.chat.clone(), self.live.clone(), self.game.clone());
        Router::new()
            .route("/chat/{room}", move |ws| {
                let chat = chat.clone();
                async move {
                    let room = ws.path_param("room").unwrap_or("lobby").to_owned();
                    chat.chat(&room, ws).await;
                }
            })
            .route("/live", move |ws| {
                let live = live.clone();
                async move { live.watch(ws).await }
            })
            .route("/game", move |ws| {
                let game = game.clone();
                async move { game.play(ws).await }
            })
    }

    /// The demo's limits on top of `config`: small messages, and a rate limit that closes
    /// flooders with 1008 (the chat's own, gentler limit answers with an error first).
    pub fn connection_config(config: ConnectionConfig) -> ConnectionConfig {
        config
            .max_message_size(Some(MAX_MESSAGE))
            .rate_limit(Some(RateLimit::messages_per_second(50).burst(100)))
    }

    /// Adds the pages to `builder`: a request hook answers plain `GET`s of the demo's paths
    /// with their page (and `/healthz` with `ok`), and lets WebSocket upgrades through to
    /// the [`router`](Self::router).
    pub fn pages(builder: ServerBuilder) -> ServerBuilder {
        builder.process_request(|request, _peer| {
            let is_upgrade = request.headers().contains_key(header::UPGRADE);
            if is_upgrade || request.method() != Method::GET {
                return None;
            }
            let path = request.uri().path();
            let page = match path {
                "/healthz" => return Some(respond(StatusCode::OK, "ok\n")),
                "/" => INDEX,
                "/live" => LIVE,
                "/game" => GAME,
                _ if path.starts_with("/chat/") && path.len() > "/chat/".len() => CHAT,
                _ => return Some(respond(StatusCode::NOT_FOUND, "not found\n")),
            };
            Some(respond_with(
                StatusCode::OK,
                "text/html; charset=utf-8",
                page,
            ))
        })
    }

    /// Binds a server with the demo's [pages](Self::pages) and
    /// [limits](Self::connection_config).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn bind(self, addr: &str) -> io::Result<DemoServer> {
        let builder = Server::builder().connection(Self::connection_config(Default::default()));
        let server = Self::pages(builder).bind(addr).await?;
        Ok(DemoServer { demo: self, server })
    }
}

/// A bound demo server.
#[derive(Debug)]
pub struct DemoServer {
    demo: Demo,
    server: Server,
}

impl DemoServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// The applications.
    pub fn demo(&self) -> &Demo {
        &self.demo
    }

    /// Serves until the listener fails or the server is shut down.
    ///
    /// # Errors
    ///
    /// Accepting failed in a way that cannot be retried.
    pub async fn serve(self) -> io::Result<()> {
        let router = self.demo.router();
        self.server.serve_router(router).await
    }

    /// The server, for its shutdown handle.
    pub fn server(&self) -> &Server {
        &self.server
    }
}

/// A JSON `{"type":"error","error":...}` reply.
pub(crate) fn json_error(error: &str) -> String {
    serde_json::json!({ "type": "error", "error": error }).to_string()
}
