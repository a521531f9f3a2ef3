//! [`RedisPresence`]: who is in each topic, across every process sharing a Redis server.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use redis::{Client, aio::MultiplexedConnection};
use tokio::{sync::mpsc, time::timeout};

use super::{
    PresenceError, keys,
    writer::{self, Change, Reconnect, Shared},
};
use crate::{
    backend::HubId,
    redis_backend::InvalidRedisUrl,
    topic::{TopicError, validate_topic},
};

/// Time allowed for a whole [`RedisPresence::list`] (several round trips on a big
/// keyspace).
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys asked for per `SCAN` round trip.
const SCAN_COUNT: usize = 500;

/// Presence records shared by every process using the same Redis server and namespace.
///
/// Each process keeps, per topic where it has records, one Redis hash
/// `{namespace}presence:{topic}:{process id}` (member key → value) with a TTL, refreshed
/// in the background every third of the TTL. [`join`](Self::join) and
/// [`leave`](Self::leave) change this process's records at once and queue the change for
/// Redis: they never wait for it. [`list`](Self::list) reads every process's records.
///
/// A process that dies without cleaning up disappears from everyone's lists when its
/// keys expire, within the TTL. After a lost connection the records are written again
/// whole (Redis may have restarted empty). Dropping the last clone of a `RedisPresence`
/// stops its task, which deletes its keys if Redis is reachable.
///
/// Listing uses `SCAN`, which walks the whole keyspace of the database: fine for a Redis
/// server dedicated to a few applications, slow on one with millions of keys.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sockjet_hub::{PresenceError, RedisPresence};
/// let presence = RedisPresence::new("redis://127.0.0.1:6379")?;
/// presence.join("lobby", "user-42", "ada")?;
/// // Everyone in "lobby", on every process; only this one's while Redis is down.
/// let members = presence
///     .list("lobby")
///     .await
///     .unwrap_or_else(PresenceError::into_local);
/// # let _ = members; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisPresence {
    handle: Arc<Handle>,
}

/// Owned by the clones of a `RedisPresence`: when the last goes, the queue closes and
/// the writer deletes the keys and stops.
struct Handle {
    shared: Arc<Shared>,
    changes: mpsc::Sender<Change>,
}

impl fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("RedisPresence")
            .field("id", &shared.process)
            .field("namespace", &shared.namespace)
            .field("ttl", &shared.ttl)
            .finish_non_exhaustive()
    }
}

/// Options of a [`RedisPresence`].
///
/// ```
/// use std::time::Duration;
/// let builder = sockjet_hub::RedisPresence::builder("redis://127.0.0.1:6379")?
///     .namespace("chat:")
///     .ttl(Duration::from_secs(10));
/// # let _ = builder;
/// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
/// ```
pub struct RedisPresenceBuilder {
    client: Client,
    address: String,
    namespace: String,
    ttl: Duration,
    queue: usize,
    reconnect_min: Duration,
    reconnect_max: Duration,
}

impl fmt::Debug for RedisPresenceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPresenceBuilder")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisPresenceBuilder {
    /// The prefix of the Redis keys (`sockjet:room:` by default, as
    /// [`RedisBackend`](crate::RedisBackend)'s channels): processes see each other's
    /// records only within the same namespace.
    ///
    /// ```
    /// let _ = sockjet_hub::RedisPresence::builder("redis://127.0.0.1")?.namespace("game:");
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// How long this process's records outlive it if it dies without cleaning up (30 s by
    /// default, at least 30 ms); they are refreshed every third of it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = sockjet_hub::RedisPresence::builder("redis://127.0.0.1")?.ttl(Duration::from_secs(5));
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Changes waiting to be written to Redis, at most (4096 by default). Past it, a
    /// change is not queued and Redis is rewritten from this process's records instead.
    ///
    /// ```
    /// let _ = sockjet_hub::RedisPresence::builder("redis://127.0.0.1")?.queue(1024);
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn queue(mut self, changes: usize) -> Self {
        self.queue = changes.max(1);
        self
    }

    /// The delay before reconnecting to Redis: `min` after a loss, doubling at each failed
    /// attempt up to `max` (by default 100 ms to 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = sockjet_hub::RedisPresence::builder("redis://127.0.0.1")?
    ///     .reconnect_delay(Duration::from_millis(50), Duration::from_secs(1));
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// Starts the presence's background task (it connects, and keeps trying while Redis
    /// is unreachable).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), sockjet_hub::InvalidRedisUrl> {
    /// let presence = sockjet_hub::RedisPresence::builder("redis://127.0.0.1")?.build();
    /// # let _ = presence; Ok(()) }
    /// ```
    pub fn build(self) -> RedisPresence {
        let process = HubId::random().to_string();
        debug_assert_eq!(process.len(), keys::PROCESS_ID_LEN);
        let shared = Arc::new(Shared::new(self.namespace, process, self.ttl));
        let (changes, received) = mpsc::channel(self.queue);
        let reconnect = Reconnect {
            address: self.address,
            min: self.reconnect_min,
            max: self.reconnect_max,
        };
        tokio::spawn(writer::run(
            self.client,
            shared.clone(),
            received,
            reconnect,
        ));
        RedisPresence {
            handle: Arc::new(Handle { shared, changes }),
        }
    }
}

impl RedisPresence {
    /// A presence on the Redis server at `url` (`redis://HOST:PORT[/DB]`), with the
    /// default options. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// Fails if `url` is not a Redis URL.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), sockjet_hub::InvalidRedisUrl> {
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1:6379")?;
    /// # let _ = presence; Ok(()) }
    /// ```
    pub fn new(url: &str) -> Result<Self, InvalidRedisUrl> {
        Ok(Self::builder(url)?.build())
    }

    /// Options, before [`build`](RedisPresenceBuilder::build).
    ///
    /// # Errors
    ///
    /// Fails if `url` is not a Redis URL.
    ///
    /// ```
    /// assert!(sockjet_hub::RedisPresence::builder("http://example.org").is_err());
    /// ```
    pub fn builder(url: &str) -> Result<RedisPresenceBuilder, InvalidRedisUrl> {
        let client = Client::open(url).map_err(|error| InvalidRedisUrl(error.to_string()))?;
        let address = client.get_connection_info().addr().to_string();
        Ok(RedisPresenceBuilder {
            client,
            address,
            namespace: "sockjet:room:".to_owned(),
            ttl: Duration::from_secs(30),
            queue: 4096,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        })
    }

    /// This process's random id: the last part of its Redis keys.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), sockjet_hub::InvalidRedisUrl> {
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1")?;
    /// println!("presence {}", presence.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.handle.shared.process
    }

    /// Records `key` in `topic` with `value` (replacing its value if it is there).
    /// Redis is updated in the background.
    ///
    /// # Errors
    ///
    /// `topic` is not a valid topic name ([`validate_topic`](crate::validate_topic)).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1")?;
    /// presence.join("lobby", "conn-1", r#"{"nick":"ada"}"#)?;
    /// # Ok(()) }
    /// ```
    pub fn join(&self, topic: &str, key: &str, value: &str) -> Result<(), TopicError> {
        validate_topic(topic)?;
        self.handle.shared.local.insert(topic, key, value);
        self.send(Change::Set {
            topic: topic.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        });
        Ok(())
    }

    /// Removes `key` from `topic`; false if it was not there. Redis is updated in the
    /// background.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1")?;
    /// presence.join("lobby", "conn-1", "ada")?;
    /// assert!(presence.leave("lobby", "conn-1"));
    /// # Ok(()) }
    /// ```
    pub fn leave(&self, topic: &str, key: &str) -> bool {
        if !self.handle.shared.local.remove(topic, key) {
            return false;
        }
        self.send(Change::Remove {
            topic: topic.to_owned(),
            key: key.to_owned(),
        });
        true
    }

    /// This process's records in `topic`, sorted by key, without asking Redis.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1")?;
    /// presence.join("lobby", "conn-1", "ada")?;
    /// assert_eq!(presence.local("lobby"), [("conn-1".to_owned(), "ada".to_owned())]);
    /// # Ok(()) }
    /// ```
    pub fn local(&self, topic: &str) -> Vec<(String, String)> {
        self.handle.shared.local.get(topic)
    }

    /// Whether the background task is connected to Redis now.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), sockjet_hub::InvalidRedisUrl> {
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1")?;
    /// println!("connected: {}", presence.is_connected());
    /// # Ok(()) }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.handle.shared.connection().is_some()
    }

    /// Every process's records in `topic`, sorted by key then value: this process's as
    /// they are now, the others' as Redis has them. A key recorded by two processes is
    /// listed twice.
    ///
    /// # Errors
    ///
    /// [`PresenceError::Unavailable`] when Redis cannot be read (it carries this
    /// process's records, to fall back on), [`PresenceError::InvalidTopic`] for a bad
    /// topic name.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockjet_hub::PresenceError;
    /// let presence = sockjet_hub::RedisPresence::new("redis://127.0.0.1")?;
    /// match presence.list("lobby").await {
    ///     Ok(everyone) => println!("{} here", everyone.len()),
    ///     Err(PresenceError::Unavailable { local, reason }) => {
    ///         println!("{} here at least ({reason})", local.len())
    ///     }
    ///     Err(error) => return Err(error.into()),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, topic: &str) -> Result<Vec<(String, String)>, PresenceError> {
        validate_topic(topic).map_err(PresenceError::InvalidTopic)?;
        let shared = &self.handle.shared;
        let connection = shared.connection().clone();
        let unavailable = |reason: String| PresenceError::Unavailable {
            local: shared.local.get(topic),
            reason,
        };
        let Some(connection) = connection else {
            return Err(unavailable("not connected to Redis".to_owned()));
        };
        let read = timeout(LIST_TIMEOUT, read_others(connection, shared, topic)).await;
        let mut entries = match read {
            Ok(Ok(entries)) => entries,
            Ok(Err(error)) => {
                shared.check_connection();
                return Err(unavailable(error.to_string()));
            }
            Err(_) => {
                shared.check_connection();
                return Err(unavailable("Redis did not answer in time".to_owned()));
            }
        };
        // This process's records come from its own map, which Redis may lag behind.
        entries.extend(shared.local.get(topic));
        entries.sort_unstable();
        Ok(entries)
    }

    /// Queues `change` for Redis, or has Redis rewritten if the queue is full.
    fn send(&self, change: Change) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.handle.changes.try_send(change) {
            self.handle.shared.request_resync();
        }
    }
}

/// The records of `topic` that the other processes have in Redis.
async fn read_others(
    mut connection: MultiplexedConnection,
    shared: &Shared,
    topic: &str,
) -> redis::RedisResult<Vec<(String, String)>> {
    let pattern = keys::pattern(&shared.namespace, topic);
    let mut others = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut connection)
            .await?;
        others.extend(found.into_iter().filter_map(|key| {
            let key = String::from_utf8(key).ok()?;
            let process = keys::process_of(&key, &shared.namespace, topic)?;
            (process != shared.process).then_some(key)
        }));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = redis::pipe();
    for key in &others {
        pipeline.hgetall(key);
    }
    // A key that expired since the SCAN reads as an empty hash.
    let hashes: Vec<HashMap<String, String>> = pipeline.query_async(&mut connection).await?;
    Ok(hashes.into_iter().flatten().collect())
}
