//! What the chat does when its rooms are shared by several servers through Redis: its
//! options, the members of other servers as presence lists them, and the periodic
//! reconciliation that catches the members of a server that died.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use sockjet_hub::{PresenceError, RedisPresence};
use tokio::time::{MissedTickBehavior, interval};

use super::{Rooms, RoomsInner, members_event, roster::RosterChange, topic_of};

/// Options of a chat shared through Redis ([`Chat::with_redis_options`](super::Chat::with_redis_options)).
///
/// ```
/// use std::time::Duration;
/// let options = sockjet_demo::chat::RedisOptions::default()
///     .ttl(Duration::from_secs(10))
///     .reconcile_every(Duration::from_secs(2));
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RedisOptions {
    pub(super) ttl: Duration,
    pub(super) reconcile_every: Duration,
}

impl Default for RedisOptions {
    /// A TTL of 30 s, a reconciliation every 5 s.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(5),
        }
    }
}

impl RedisOptions {
    /// How long the members of a server that died stay in the other servers' lists, at
    /// most (plus two reconciliations).
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = sockjet_demo::chat::RedisOptions::default().ttl(Duration::from_secs(10));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How often each server compares its member lists with presence, for the rooms
    /// that have members on it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = sockjet_demo::chat::RedisOptions::default().reconcile_every(Duration::from_secs(1));
    /// ```
    pub fn reconcile_every(mut self, every: Duration) -> Self {
        self.reconcile_every = every.max(Duration::from_millis(10));
        self
    }
}

/// The nicknames in `topic` on the other servers.
///
/// # Errors
///
/// Presence could not be read from Redis.
pub(super) async fn remote_nicks(
    presence: &RedisPresence,
    topic: &str,
) -> Result<Vec<String>, PresenceError> {
    let mut listed = presence.list(topic).await?;
    // The list has this server's records too, once each.
    for own in presence.local(topic) {
        if let Some(index) = listed.iter().position(|entry| *entry == own) {
            listed.swap_remove(index);
        }
    }
    Ok(listed.into_iter().map(|(_, nick)| nick).collect())
}

/// Every `every`, reconciles the rooms with members on this server with presence, and
/// tells those members who left or joined elsewhere unannounced. Ends with the chat.
pub(super) fn spawn_reconciler(rooms: &Rooms, presence: RedisPresence, every: Duration) {
    let rooms = Arc::downgrade(rooms);
    tokio::spawn(async move {
        let mut tick = interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(names) = rooms_with_members(&rooms) else {
                return;
            };
            for room in names {
                // Redis unavailable: keep what the notices said until it is back.
                let Ok(listed) = remote_nicks(&presence, &topic_of(&room)).await else {
                    continue;
                };
                let Some(rooms) = rooms.upgrade() else {
                    return;
                };
                reconcile_room(&rooms, &room, &listed);
            }
        }
    });
}

fn rooms_with_members(rooms: &Weak<RoomsInner>) -> Option<Vec<String>> {
    let rooms = rooms.upgrade()?;
    let rooms = rooms.lock().expect("rooms lock");
    Some(
        rooms
            .iter()
            .filter(|(_, state)| !state.members.is_empty())
            .map(|(name, _)| name.clone())
            .collect(),
    )
}

fn reconcile_room(rooms: &Rooms, room: &str, listed: &[String]) {
    let mut rooms = rooms.lock().expect("rooms lock");
    let Some(state) = rooms.get_mut(room) else {
        return;
    };
    if state.members.is_empty() {
        return;
    }
    for change in state.remote.reconcile(listed) {
        let event = match change {
            RosterChange::Joined(nick) => members_event("joined", &nick, &state.nicks()),
            RosterChange::Left(nick) => members_event("left", &nick, &state.nicks()),
        };
        sockjet::broadcast(state.members.iter().map(|(sender, _)| sender), event);
    }
}
