//! Chat rooms at `/chat/{room}`: nicknames, join and leave notices, the last messages of
//! each room for newcomers, typed JSON validated with serde (a bad message gets an
//! `error` reply, not a disconnect), and a per-connection rate limit.
//!
//! Client to server: `{"type":"join","nick":"ada"}` first, then
//! `{"type":"say","text":"hello"}`. Server to client: `welcome` (the room, your nick, the
//! history and who is here), `joined` / `left` (with the members), `message`, `error`.
//!
//! Rooms go through a [`Hub`]: in one process by default, or shared by several server
//! processes through Redis ([`Chat::with_redis`]), where each process also records the
//! other processes' messages in its history and their members in its member lists.
//! There, who is in a room comes from presence records in Redis
//! ([`sockjet_hub::RedisPresence`]): a newcomer's `welcome` lists the members of every
//! server, and each server reconciles its lists periodically, announcing as `left` the
//! members of a server that died.

mod cluster;
mod roster;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use sockjet::{Connection, Message, Sender};
use sockjet_hub::{Hub, RedisBackend, RedisPresence};

pub use self::cluster::RedisOptions;
use self::{cluster::remote_nicks, roster::Roster};
use crate::json_error;

/// The Redis namespace of the chat's channels and presence keys.
const REDIS_NAMESPACE: &str = "sockjet:demo:";

/// Messages kept per room for newcomers.
pub const HISTORY: usize = 50;
/// Longest nickname, in characters.
const MAX_NICK: usize = 24;
/// Longest message, in characters.
const MAX_TEXT: usize = 2000;
/// Messages a connection may send per second on average, and in a burst.
const RATE_PER_SECOND: f64 = 5.0;
const RATE_BURST: f64 = 10.0;

/// What a client may send.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Take a nickname and enter the room.
    Join {
        /// 1 to 24 characters, no control characters.
        nick: String,
    },
    /// Say something to the room.
    Say {
        /// 1 to 2000 characters.
        text: String,
    },
}

/// A line of the room's history, as sent to clients.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatLine {
    /// Who said it.
    pub nick: String,
    /// What was said.
    pub text: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
}

/// Parses and checks a client message; the error is what to tell the client.
pub fn parse(text: &str) -> Result<ClientMessage, String> {
    let message: ClientMessage =
        serde_json::from_str(text).map_err(|error| format!("bad message: {error}"))?;
    match &message {
        ClientMessage::Join { nick } => {
            let count = nick.trim().chars().count();
            if count == 0 || count > MAX_NICK || nick.chars().any(char::is_control) {
                return Err(format!("a nickname has 1 to {MAX_NICK} characters"));
            }
        }
        ClientMessage::Say { text } => {
            let count = text.chars().count();
            if text.trim().is_empty() || count > MAX_TEXT {
                return Err(format!("a message has 1 to {MAX_TEXT} characters"));
            }
        }
    }
    Ok(message)
}

/// One room: its members on this server, those other servers told about, and its recent
/// history.
#[derive(Debug, Default)]
struct Room {
    members: Vec<(Sender, String)>,
    remote: Roster,
    history: VecDeque<ChatLine>,
}

impl Room {
    fn nicks(&self) -> Vec<&str> {
        self.local_nicks().chain(self.remote.iter()).collect()
    }

    fn local_nicks(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(_, nick)| nick.as_str())
    }

    fn remember(&mut self, line: ChatLine) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }
}

type RoomsInner = Mutex<HashMap<String, Room>>;
type Rooms = Arc<RoomsInner>;

/// The hub topic of `room`.
fn topic_of(room: &str) -> String {
    format!("chat/{room}")
}

/// A `joined` or `left` event, with the room's members.
fn members_event(kind: &str, nick: &str, members: &[&str]) -> String {
    serde_json::json!({ "type": kind, "nick": nick, "members": members }).to_string()
}

/// Every room of this server.
#[derive(Clone, Debug)]
pub struct Chat {
    rooms: Rooms,
    hub: Hub,
    /// Who is in each room on every server, when rooms are shared through Redis.
    presence: Option<RedisPresence>,
}

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

impl Chat {
    /// Rooms in this process only.
    pub fn new() -> Self {
        let rooms = Rooms::default();
        let hub = Hub::builder().on_remote_message(observer(&rooms)).build();
        Self {
            rooms,
            hub,
            presence: None,
        }
    }

    /// Rooms shared with every server connected to the same Redis (`redis://host:port`).
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The URL is not a Redis URL.
    pub fn with_redis(url: &str) -> Result<Self, String> {
        Self::with_redis_options(url, RedisOptions::default())
    }

    /// As [`with_redis`](Self::with_redis), with the presence TTL and reconciliation
    /// interval of `options`.
    ///
    /// # Errors
    ///
    /// The URL is not a Redis URL.
    pub fn with_redis_options(url: &str, options: RedisOptions) -> Result<Self, String> {
        let backend = RedisBackend::new(url).map_err(|error| error.to_string())?;
        let presence = RedisPresence::builder(url)
            .map_err(|error| error.to_string())?
            .namespace(REDIS_NAMESPACE)
            .ttl(options.ttl)
            .build();
        let rooms = Rooms::default();
        let hub = Hub::builder()
            .backend(backend.namespace(REDIS_NAMESPACE))
            .on_remote_message(observer(&rooms))
            .build();
        cluster::spawn_reconciler(&rooms, presence.clone(), options.reconcile_every);
        Ok(Self {
            rooms,
            hub,
            presence: Some(presence),
        })
    }

    /// Runs one connection in `room`.
    pub async fn chat(&self, room: &str, mut ws: Connection) {
        let topic = topic_of(room);
        if sockjet_hub::validate_topic(&topic).is_err() {
            let _ = ws
                .send(json_error("a room name has at most 250 bytes"))
                .await;
            return;
        }
        let mut nick: Option<String> = None;
        let mut bucket = TokenBucket::new(RATE_PER_SECOND, RATE_BURST);
        while let Ok(Some(message)) = ws.recv().await {
            if !bucket.take() {
                let _ = ws
                    .send(json_error("slow down: at most 5 messages a second"))
                    .await;
                continue;
            }
            let parsed = match message.as_text() {
                Some(text) => parse(text),
                None => Err("binary messages are not part of this chat".to_owned()),
            };
            match (parsed, &nick) {
                (Err(error), _) => {
                    let _ = ws.send(json_error(&error)).await;
                }
                (Ok(ClientMessage::Join { nick: wanted }), None) => {
                    nick = Some(self.join(room, &topic, wanted.trim(), ws.sender()).await);
                }
                (Ok(ClientMessage::Join { .. }), Some(_)) => {
                    let _ = ws.send(json_error("already joined")).await;
                }
                (Ok(ClientMessage::Say { .. }), None) => {
                    let _ = ws.send(json_error("join first")).await;
                }
                (Ok(ClientMessage::Say { text }), Some(nick)) => {
                    self.say(room, &topic, nick, text);
                }
            }
        }
        if nick.is_some() {
            self.leave(room, &topic, &ws.sender());
        }
    }

    /// Adds a member (with a unique nickname: `ada`, `ada-2`, ...), sends it the welcome
    /// and tells the room. Returns the nickname given.
    async fn join(&self, room: &str, topic: &str, wanted: &str, sender: Sender) -> String {
        // The members on other servers, as presence has them (None: no Redis, or it is
        // down, and the notices heard so far will do).
        let listed = match &self.presence {
            Some(presence) => remote_nicks(presence, topic).await.ok(),
            None => None,
        };
        let (nick, joined) = {
            let mut rooms = self.rooms.lock().expect("rooms lock");
            let state = rooms.entry(room.to_owned()).or_default();
            if let Some(listed) = &listed {
                if state.members.is_empty() {
                    // This server heard no notices of the room while it had nobody in it.
                    state.remote.replace(listed.clone());
                }
            }
            let mut taken: Vec<&str> = state.local_nicks().collect();
            match &listed {
                Some(listed) => taken.extend(listed.iter().map(String::as_str)),
                None => taken.extend(state.remote.iter()),
            }
            let mut nick = wanted.to_owned();
            let mut suffix = 2;
            while taken.contains(&nick.as_str()) {
                nick = format!("{wanted}-{suffix}");
                suffix += 1;
            }
            taken.insert(state.members.len(), &nick);
            let welcome = serde_json::json!({
                "type": "welcome", "room": room, "nick": nick,
                "history": state.history, "members": taken,
            });
            sockjet::broadcast([&sender], welcome.to_string());
            state.members.push((sender.clone(), nick.clone()));
            if let Some(presence) = &self.presence {
                let _ = presence.join(topic, &sender.id().to_string(), &nick);
            }
            (nick.clone(), members_event("joined", &nick, &state.nicks()))
        };
        let _ = self.hub.join(topic, &sender);
        let _ = self.hub.publish(topic, joined);
        nick
    }

    fn say(&self, room: &str, topic: &str, nick: &str, text: String) {
        let line = ChatLine {
            nick: nick.to_owned(),
            text,
            at: now_millis(),
        };
        let event = serde_json::json!({ "type": "message", "nick": line.nick, "text": line.text, "at": line.at });
        self.rooms
            .lock()
            .expect("rooms lock")
            .entry(room.to_owned())
            .or_default()
            .remember(line);
        let _ = self.hub.publish(topic, event.to_string());
    }

    fn leave(&self, room: &str, topic: &str, sender: &Sender) {
        let id = sender.id();
        self.hub.leave(topic, id);
        if let Some(presence) = &self.presence {
            presence.leave(topic, &id.to_string());
        }
        let left = {
            let mut rooms = self.rooms.lock().expect("rooms lock");
            let Some(state) = rooms.get_mut(room) else {
                return;
            };
            let Some(index) = state.members.iter().position(|(s, _)| s.id() == id) else {
                return;
            };
            let (_, nick) = state.members.remove(index);
            members_event("left", &nick, &state.nicks())
        };
        let _ = self.hub.publish(topic, left);
    }

    /// Nicknames in `room`: on this server, and on other servers (from their notices,
    /// corrected by the periodic reconciliation with presence when shared through Redis).
    pub fn members(&self, room: &str) -> Vec<String> {
        let rooms = self.rooms.lock().expect("rooms lock");
        rooms.get(room).map_or_else(Vec::new, |state| {
            state.nicks().into_iter().map(str::to_owned).collect()
        })
    }
}

/// Keeps `rooms` up to date with what other servers publish: their messages go into the
/// history, their joins and leaves into the member lists.
fn observer(rooms: &Rooms) -> impl Fn(&str, &Message) + Send + Sync + 'static {
    let rooms = rooms.clone();
    move |topic, message| {
        let Some(room) = topic.strip_prefix("chat/") else {
            return;
        };
        let Some(event) = message
            .as_text()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        else {
            return;
        };
        let nick = event["nick"].as_str().unwrap_or_default().to_owned();
        let mut rooms = rooms.lock().expect("rooms lock");
        let state = rooms.entry(room.to_owned()).or_default();
        match event["type"].as_str() {
            Some("message") => state.remember(ChatLine {
                nick,
                text: event["text"].as_str().unwrap_or_default().to_owned(),
                at: event["at"].as_u64().unwrap_or_default(),
            }),
            Some("joined") => state.remote.add(nick),
            Some("left") => state.remote.remove(&nick),
            _ => {}
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Allows `rate` events a second on average and `burst` at once.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            updated: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now
            .duration_since(self.updated)
            .min(Duration::from_secs(60));
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_typed_and_checked() {
        assert_eq!(
            parse(r#"{"type":"join","nick":"ada"}"#),
            Ok(ClientMessage::Join { nick: "ada".into() })
        );
        assert_eq!(
            parse(r#"{"type":"say","text":"hi"}"#),
            Ok(ClientMessage::Say { text: "hi".into() })
        );
        for bad in [
            "not json",
            r#"{"type":"shout","text":"hi"}"#,
            r#"{"type":"say","text":"hi","admin":true}"#,
            r#"{"type":"say"}"#,
            r#"{"type":"say","text":"   "}"#,
            r#"{"type":"join","nick":""}"#,
            r#"{"type":"join","nick":"a\u0007b"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = format!(r#"{{"type":"say","text":"{}"}}"#, "x".repeat(MAX_TEXT + 1));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(5.0, 10.0);
        assert_eq!((0..20).filter(|_| bucket.take()).count(), 10);
        bucket.updated -= Duration::from_secs(1);
        assert_eq!((0..20).filter(|_| bucket.take()).count(), 5);
    }
}
