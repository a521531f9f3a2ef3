//! Presence: who is in each topic, as records (topic, member key, value) that each
//! process keeps for its own members, readable by every process.
//!
//! [`RedisPresence`] shares the records of every process through Redis, with a TTL so
//! that the records of a process that died disappear; [`InProcessPresence`] keeps them
//! in this process only. [`Presence`] is either, for code that works with or without
//! Redis.

mod in_process;
mod keys;
mod local;
mod redis_presence;
mod writer;

use std::fmt;

pub use in_process::InProcessPresence;
pub use redis_presence::{RedisPresence, RedisPresenceBuilder};

use crate::topic::TopicError;

/// Presence records in this process only, or shared through Redis.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sockjet_hub::{Presence, PresenceError};
/// // With Redis: `Presence::from(RedisPresence::new(url)?)`.
/// let presence = Presence::in_process();
/// presence.join("lobby", "conn-1", "ada").unwrap();
/// let everyone = presence
///     .list("lobby")
///     .await
///     .unwrap_or_else(PresenceError::into_local);
/// assert_eq!(everyone.len(), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum Presence {
    /// Records of this process only.
    InProcess(InProcessPresence),
    /// Records of every process, through Redis.
    Redis(RedisPresence),
}

impl Default for Presence {
    fn default() -> Self {
        Self::in_process()
    }
}

impl From<InProcessPresence> for Presence {
    fn from(presence: InProcessPresence) -> Self {
        Self::InProcess(presence)
    }
}

impl From<RedisPresence> for Presence {
    fn from(presence: RedisPresence) -> Self {
        Self::Redis(presence)
    }
}

impl Presence {
    /// Records of this process only.
    ///
    /// ```
    /// assert!(sockjet_hub::Presence::in_process().local("lobby").is_empty());
    /// ```
    pub fn in_process() -> Self {
        Self::InProcess(InProcessPresence::new())
    }

    /// Records `key` in `topic` with `value`: [`InProcessPresence::join`],
    /// [`RedisPresence::join`].
    ///
    /// # Errors
    ///
    /// `topic` is not a valid topic name.
    ///
    /// ```
    /// let presence = sockjet_hub::Presence::in_process();
    /// presence.join("lobby", "conn-1", "ada").unwrap();
    /// ```
    pub fn join(&self, topic: &str, key: &str, value: &str) -> Result<(), TopicError> {
        match self {
            Self::InProcess(presence) => presence.join(topic, key, value),
            Self::Redis(presence) => presence.join(topic, key, value),
        }
    }

    /// Removes `key` from `topic`; false if it was not there.
    ///
    /// ```
    /// assert!(!sockjet_hub::Presence::in_process().leave("lobby", "conn-1"));
    /// ```
    pub fn leave(&self, topic: &str, key: &str) -> bool {
        match self {
            Self::InProcess(presence) => presence.leave(topic, key),
            Self::Redis(presence) => presence.leave(topic, key),
        }
    }

    /// This process's records in `topic`, sorted by key.
    ///
    /// ```
    /// assert!(sockjet_hub::Presence::in_process().local("lobby").is_empty());
    /// ```
    pub fn local(&self, topic: &str) -> Vec<(String, String)> {
        match self {
            Self::InProcess(presence) => presence.local(topic),
            Self::Redis(presence) => presence.local(topic),
        }
    }

    /// Every process's records in `topic`: [`InProcessPresence::list`],
    /// [`RedisPresence::list`].
    ///
    /// # Errors
    ///
    /// See [`PresenceError`]: with [`PresenceError::into_local`], fall back on this
    /// process's records.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let presence = sockjet_hub::Presence::in_process();
    /// assert!(presence.list("lobby").await.unwrap().is_empty());
    /// # }
    /// ```
    pub async fn list(&self, topic: &str) -> Result<Vec<(String, String)>, PresenceError> {
        match self {
            Self::InProcess(presence) => presence.list(topic).await,
            Self::Redis(presence) => presence.list(topic).await,
        }
    }
}

/// Why a presence list is not every process's.
///
/// ```
/// use sockjet_hub::PresenceError;
/// let error = PresenceError::Unavailable {
///     local: vec![("conn-1".into(), "ada".into())],
///     reason: "not connected to Redis".into(),
/// };
/// assert_eq!(error.into_local().len(), 1);
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum PresenceError {
    /// The topic name is not valid ([`validate_topic`](crate::validate_topic)).
    InvalidTopic(TopicError),
    /// Redis could not be read: only this process's records are known.
    Unavailable {
        /// This process's records in the topic, sorted by key.
        local: Vec<(String, String)>,
        /// What went wrong.
        reason: String,
    },
}

impl PresenceError {
    /// The records known despite the error: this process's when Redis is unavailable,
    /// none for an invalid topic.
    ///
    /// ```
    /// use sockjet_hub::{PresenceError, TopicError};
    /// assert!(PresenceError::InvalidTopic(TopicError::Empty).into_local().is_empty());
    /// ```
    pub fn into_local(self) -> Vec<(String, String)> {
        match self {
            Self::InvalidTopic(_) => Vec::new(),
            Self::Unavailable { local, .. } => local,
        }
    }
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTopic(error) => error.fmt(f),
            Self::Unavailable { reason, .. } => {
                write!(f, "presence of other processes unavailable: {reason}")
            }
        }
    }
}

impl std::error::Error for PresenceError {}
