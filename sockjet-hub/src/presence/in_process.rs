//! [`InProcessPresence`]: presence records of this process only.

use std::sync::Arc;

use super::local::LocalEntries;
use crate::topic::{TopicError, validate_topic};

/// Presence records kept in this process only: the same calls as
/// [`RedisPresence`](crate::RedisPresence), for an application that runs without Redis.
/// Clones share the records.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let presence = sockjet_hub::InProcessPresence::new();
/// presence.join("lobby", "conn-1", "ada").unwrap();
/// let everyone = presence.list("lobby").await.unwrap();
/// assert_eq!(everyone, [("conn-1".to_owned(), "ada".to_owned())]);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct InProcessPresence {
    entries: Arc<LocalEntries>,
}

impl InProcessPresence {
    /// No records yet.
    ///
    /// ```
    /// let presence = sockjet_hub::InProcessPresence::new();
    /// assert!(presence.local("lobby").is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `key` in `topic` with `value` (replacing its value if it is there).
    ///
    /// # Errors
    ///
    /// `topic` is not a valid topic name ([`validate_topic`](crate::validate_topic)).
    ///
    /// ```
    /// let presence = sockjet_hub::InProcessPresence::new();
    /// assert!(presence.join("", "conn-1", "ada").is_err());
    /// ```
    pub fn join(&self, topic: &str, key: &str, value: &str) -> Result<(), TopicError> {
        validate_topic(topic)?;
        self.entries.insert(topic, key, value);
        Ok(())
    }

    /// Removes `key` from `topic`; false if it was not there.
    ///
    /// ```
    /// let presence = sockjet_hub::InProcessPresence::new();
    /// presence.join("lobby", "conn-1", "ada").unwrap();
    /// assert!(presence.leave("lobby", "conn-1"));
    /// assert!(!presence.leave("lobby", "conn-1"));
    /// ```
    pub fn leave(&self, topic: &str, key: &str) -> bool {
        self.entries.remove(topic, key)
    }

    /// The records in `topic`, sorted by key.
    ///
    /// ```
    /// let presence = sockjet_hub::InProcessPresence::new();
    /// presence.join("lobby", "b", "bob").unwrap();
    /// presence.join("lobby", "a", "ada").unwrap();
    /// assert_eq!(presence.local("lobby")[0].1, "ada");
    /// ```
    pub fn local(&self, topic: &str) -> Vec<(String, String)> {
        self.entries.get(topic)
    }

    /// The records in `topic`, sorted by key: the same as [`local`](Self::local), never
    /// an error except for an invalid topic name (async for the same calls as
    /// [`RedisPresence::list`](crate::RedisPresence::list)).
    ///
    /// # Errors
    ///
    /// [`PresenceError::InvalidTopic`](crate::PresenceError::InvalidTopic).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let presence = sockjet_hub::InProcessPresence::new();
    /// assert!(presence.list("lobby").await.unwrap().is_empty());
    /// # }
    /// ```
    pub async fn list(&self, topic: &str) -> Result<Vec<(String, String)>, super::PresenceError> {
        validate_topic(topic).map_err(super::PresenceError::InvalidTopic)?;
        Ok(self.entries.get(topic))
    }
}
