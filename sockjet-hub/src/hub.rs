//! [`Hub`]: topics (rooms) of connections, and publishing to them.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use sockjet::{Broadcast, BroadcastReport, ConnectionId, Message, SlowReceiver, WeakSender};

use crate::{
    backend::{Backend, BackendStats, HubId, InProcess, RemoteDelivery, RemoteInbox},
    members::Topic,
    registry::Registry,
    topic::{TopicError, validate_topic},
};

/// Topics (rooms) of WebSocket connections: join, leave, publish.
///
/// A hub is a cheap handle: clones share the same topics. Every delivery goes through
/// [`sockjet::Broadcast`]: the frame is built once per message, and a member whose
/// outgoing queue is full misses the message (it is counted in its
/// [`Sender::dropped_messages`](sockjet::Sender::dropped_messages)) or is closed, as the hub's [`SlowReceiver`] policy says;
/// it never slows the publisher or the other members.
///
/// A member leaves its topics by itself when its connection ends. The hub holds a
/// [`WeakSender`] of it, which does not keep the connection open: once the handler has
/// dropped its [`Connection`](sockjet::Connection) and [`Sender`](sockjet::Sender)s, the
/// connection closes and leaves every topic, whether or not the handler called
/// [`leave_all`](Self::leave_all).
///
/// With a backend such as [`RedisBackend`](crate::RedisBackend), messages published on
/// one process also reach the members of the same topic on every other process whose hub
/// uses the same backend configuration.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let hub = sockjet_hub::Hub::new();
/// let server = sockjet::Server::bind("127.0.0.1:8765").await?;
/// server
///     .serve(move |mut ws| {
///         let hub = hub.clone();
///         async move {
///             let me = ws.sender();
///             hub.join("lobby", &me).expect("a valid topic name");
///             while let Ok(Some(message)) = ws.recv().await {
///                 let _ = hub.publish_except("lobby", message, me.id());
///             }
///             hub.leave_all(me.id());
///         }
///     })
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// What a [`Hub::publish`] did.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let report = sockjet_hub::Hub::new().publish("nobody-here", "hi").unwrap();
/// assert_eq!(report.local.queued, 0);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct PublishReport {
    /// The delivery to this process's members.
    pub local: BroadcastReport,
    /// The delivery to other processes.
    pub remote: RemoteDelivery,
}

/// Counters of a hub.
///
/// ```
/// let stats = sockjet_hub::Hub::new().stats();
/// assert_eq!(stats.topics, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct HubStats {
    /// Topics with at least one local member.
    pub topics: usize,
    /// Connections that are a member of at least one topic.
    pub connections: usize,
    /// Messages published on this hub.
    pub published: u64,
    /// Messages from other processes delivered to local members.
    pub remote_delivered: u64,
    /// This hub's own messages coming back from the backend, skipped.
    pub own_echoes: u64,
    /// The backend's counters.
    pub backend: BackendStats,
}

/// Options of a [`Hub`].
///
/// ```
/// use sockjet::{CloseCode, SlowReceiver};
/// let hub = sockjet_hub::Hub::builder()
///     .slow_receiver(SlowReceiver::Close(CloseCode::TRY_AGAIN_LATER))
///     .build();
/// # let _ = hub;
/// ```
pub struct HubBuilder {
    slow_receiver: SlowReceiver,
    backend: Box<dyn Backend>,
    on_remote: Option<RemoteObserver>,
}

/// Called with each message that comes from another process, before its local delivery.
type RemoteObserver = Box<dyn Fn(&str, &Message) + Send + Sync>;

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("slow_receiver", &self.slow_receiver)
            .finish_non_exhaustive()
    }
}

impl HubBuilder {
    /// What to do with a member whose outgoing queue is full: by default
    /// [`SlowReceiver::Drop`] (it misses the message, counted). This replaces the
    /// connections' own [`slow_receiver`](sockjet::ConnectionConfig::slow_receiver) option
    /// for the hub's messages.
    ///
    /// ```
    /// let _ = sockjet_hub::Hub::builder().slow_receiver(sockjet::SlowReceiver::Drop);
    /// ```
    pub fn slow_receiver(mut self, policy: SlowReceiver) -> Self {
        self.slow_receiver = policy;
        self
    }

    /// How the hub reaches other processes: [`InProcess`] (the default) or
    /// [`RedisBackend`](crate::RedisBackend).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = sockjet_hub::RedisBackend::new("redis://127.0.0.1:6379")?;
    /// let hub = sockjet_hub::Hub::builder().backend(redis).build();
    /// # let _ = hub; Ok(()) }
    /// ```
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Box::new(backend);
        self
    }

    /// Calls `observer` with the topic and message of everything that arrives from other
    /// processes, before it is delivered to the local members: an application that keeps
    /// state per topic (a chat room's history, who is online elsewhere) stays up to date
    /// with the other processes. It runs on the backend's task: keep it short.
    ///
    /// ```
    /// let _ = sockjet_hub::Hub::builder()
    ///     .on_remote_message(|topic, message| println!("{topic}: {} bytes", message.len()));
    /// ```
    pub fn on_remote_message(
        mut self,
        observer: impl Fn(&str, &Message) + Send + Sync + 'static,
    ) -> Self {
        self.on_remote = Some(Box::new(observer));
        self
    }

    /// Builds the hub and starts its backend.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, if the backend starts tasks (Redis does).
    ///
    /// ```
    /// let hub = sockjet_hub::Hub::builder().build();
    /// assert_eq!(hub.topics().len(), 0);
    /// ```
    pub fn build(self) -> Hub {
        let inner = Arc::new(HubInner {
            id: HubId::random(),
            topics: RwLock::default(),
            registry: Registry::new(),
            slow_receiver: self.slow_receiver,
            backend: self.backend,
            on_remote: self.on_remote,
            published: AtomicU64::new(0),
            remote_delivered: AtomicU64::new(0),
            own_echoes: AtomicU64::new(0),
        });
        inner.backend.start(RemoteInbox {
            hub: Arc::downgrade(&inner),
            origin: inner.id,
        });
        Hub { inner }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("id", &self.inner.id)
            .field("topics", &self.inner.read_topics().len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for this process only ([`InProcess`]), dropping messages for slow members.
    ///
    /// ```
    /// let hub = sockjet_hub::Hub::new();
    /// assert!(hub.topics().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Options: slow receiver policy, backend.
    ///
    /// ```
    /// let hub = sockjet_hub::Hub::builder().build();
    /// # let _ = hub;
    /// ```
    pub fn builder() -> HubBuilder {
        HubBuilder {
            slow_receiver: SlowReceiver::Drop,
            backend: Box::new(InProcess),
            on_remote: None,
        }
    }

    /// The hub's random id (what its backend messages carry).
    ///
    /// ```
    /// let hub = sockjet_hub::Hub::new();
    /// assert_eq!(hub.id(), hub.clone().id());
    /// ```
    pub fn id(&self) -> HubId {
        self.inner.id
    }

    /// Makes the connection of `member` (a [`Sender`](sockjet::Sender) or a
    /// [`WeakSender`], by reference or by value) a member of `topic`. Joining a topic
    /// twice is the same as once; returns whether it was new. The member leaves every
    /// topic by itself when its connection ends; being a member does not keep it open.
    ///
    /// # Errors
    ///
    /// Fails if `topic` is not a valid name ([`validate_topic`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the hub watches its members' connections from a task).
    ///
    /// ```no_run
    /// # fn f(hub: &sockjet_hub::Hub, ws: &sockjet::Connection) -> Result<(), sockjet_hub::TopicError> {
    /// assert!(hub.join("lobby", &ws.sender())?);
    /// assert!(!hub.join("lobby", &ws.sender())?);
    /// # Ok(()) }
    /// ```
    pub fn join(&self, topic: &str, member: impl AsRef<WeakSender>) -> Result<bool, TopicError> {
        validate_topic(topic)?;
        Ok(self.inner.join(topic, member.as_ref()))
    }

    /// Takes connection `id` out of `topic`; returns whether it was a member.
    ///
    /// ```
    /// # fn f(hub: &sockjet_hub::Hub, id: sockjet::ConnectionId) {
    /// let was_member = hub.leave("lobby", id);
    /// # }
    /// ```
    pub fn leave(&self, topic: &str, id: ConnectionId) -> bool {
        self.inner.leave(topic, id)
    }

    /// Takes connection `id` out of every topic; returns how many it left.
    ///
    /// ```
    /// # fn f(hub: &sockjet_hub::Hub, id: sockjet::ConnectionId) {
    /// let left = hub.leave_all(id);
    /// # }
    /// ```
    pub fn leave_all(&self, id: ConnectionId) -> usize {
        self.inner.leave_all(id)
    }

    /// Sends `message` to every member of `topic`, here and (with a backend) in the other
    /// processes. Never waits: see [`Hub`] for slow members.
    ///
    /// # Errors
    ///
    /// Fails if `topic` is not a valid name ([`validate_topic`]).
    ///
    /// ```no_run
    /// # fn f(hub: &sockjet_hub::Hub) -> Result<(), sockjet_hub::TopicError> {
    /// let report = hub.publish("lobby", "hello, everyone")?;
    /// println!("{} local members got it", report.local.queued);
    /// # Ok(()) }
    /// ```
    pub fn publish(
        &self,
        topic: &str,
        message: impl Into<Message>,
    ) -> Result<PublishReport, TopicError> {
        validate_topic(topic)?;
        Ok(self.inner.publish(topic, message.into(), None))
    }

    /// Like [`publish`](Self::publish), except that the local member `except` (usually the
    /// sender of the message) does not get it.
    ///
    /// # Errors
    ///
    /// Fails if `topic` is not a valid name ([`validate_topic`]).
    ///
    /// ```no_run
    /// # fn f(hub: &sockjet_hub::Hub, me: &sockjet::Sender) -> Result<(), sockjet_hub::TopicError> {
    /// hub.publish_except("lobby", "hello, others", me.id())?;
    /// # Ok(()) }
    /// ```
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: ConnectionId,
    ) -> Result<PublishReport, TopicError> {
        validate_topic(topic)?;
        Ok(self.inner.publish(topic, message.into(), Some(except)))
    }

    /// The local members of `topic`.
    ///
    /// ```
    /// assert!(sockjet_hub::Hub::new().members("lobby").is_empty());
    /// ```
    pub fn members(&self, topic: &str) -> Vec<ConnectionId> {
        self.inner.topic(topic).map_or_else(Vec::new, |t| t.ids())
    }

    /// How many local members `topic` has.
    ///
    /// ```
    /// assert_eq!(sockjet_hub::Hub::new().member_count("lobby"), 0);
    /// ```
    pub fn member_count(&self, topic: &str) -> usize {
        self.inner.topic(topic).map_or(0, |t| t.len())
    }

    /// The topics with at least one local member.
    ///
    /// ```
    /// assert!(sockjet_hub::Hub::new().topics().is_empty());
    /// ```
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .read_topics()
            .keys()
            .map(|name| name.to_string())
            .collect()
    }

    /// The topics connection `id` is a member of.
    ///
    /// ```
    /// # fn f(hub: &sockjet_hub::Hub, id: sockjet::ConnectionId) {
    /// println!("{id} is in {:?}", hub.topics_of(id));
    /// # }
    /// ```
    pub fn topics_of(&self, id: ConnectionId) -> Vec<String> {
        let shard = self.inner.registry.shard(id).lock();
        shard.connections.get(&id).map_or_else(Vec::new, |m| {
            m.topics.iter().map(|t| t.to_string()).collect()
        })
    }

    /// Counters: topics, member connections, messages, and the backend's.
    ///
    /// ```
    /// let stats = sockjet_hub::Hub::new().stats();
    /// assert_eq!(stats.connections, 0);
    /// ```
    pub fn stats(&self) -> HubStats {
        let inner = &self.inner;
        // One lock at a time: a temporary guard in the struct literal would live until its
        // end, holding `topics` while taking shard locks (the reverse of join's order).
        let topics = inner.read_topics().len();
        let connections = inner.registry.connection_count();
        HubStats {
            topics,
            connections,
            published: inner.published.load(Ordering::Relaxed),
            remote_delivered: inner.remote_delivered.load(Ordering::Relaxed),
            own_echoes: inner.own_echoes.load(Ordering::Relaxed),
            backend: inner.backend.stats(),
        }
    }
}

/// Locks, in this order when several are held: a registry shard, `topics`, a topic.
pub(crate) struct HubInner {
    id: HubId,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    pub(crate) registry: Registry,
    slow_receiver: SlowReceiver,
    backend: Box<dyn Backend>,
    on_remote: Option<RemoteObserver>,
    published: AtomicU64,
    remote_delivered: AtomicU64,
    own_echoes: AtomicU64,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        self.registry.stop_watchers();
    }
}

impl HubInner {
    fn read_topics(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        // Nothing panics while these locks are held; should it, the maps are consistent.
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_topics(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    fn join(self: &Arc<Self>, topic: &str, sender: &WeakSender) -> bool {
        let id = sender.id();
        let shard = self.registry.shard(id);
        // The shard lock serialises joins and leaves of this connection.
        let mut state = shard.lock();
        let known = match state.connections.get(&id) {
            Some(membership) if membership.topics.iter().any(|t| &**t == topic) => {
                return false;
            }
            Some(_) => true,
            None => false,
        };
        let name = self.add_member(topic, sender);
        if known {
            if let Some(membership) = state.connections.get_mut(&id) {
                membership.topics.push(name);
            }
        } else {
            shard.add_connection(&mut state, sender, name, Arc::downgrade(self));
        }
        true
    }

    /// Adds `sender` to `topic`, creating it (and subscribing the backend) if needed.
    fn add_member(&self, topic: &str, sender: &WeakSender) -> Arc<str> {
        loop {
            let existing = self.topic(topic);
            let entry = existing.unwrap_or_else(|| {
                let mut topics = self.write_topics();
                topics
                    .entry(Arc::from(topic))
                    .or_insert_with_key(|name| {
                        self.backend.subscribe(topic);
                        Arc::new(Topic::new(name.clone()))
                    })
                    .clone()
            });
            // Removed between the lookup and now (its last member left): look again.
            if entry.add(sender).is_ok() {
                return entry.name.clone();
            }
        }
    }

    fn leave(&self, topic: &str, id: ConnectionId) -> bool {
        let shard = self.registry.shard(id);
        let mut state = shard.lock();
        let Some(membership) = state.connections.get_mut(&id) else {
            return false;
        };
        let Some(position) = membership.topics.iter().position(|t| &**t == topic) else {
            return false;
        };
        membership.topics.swap_remove(position);
        let last = membership.topics.is_empty();
        self.remove_member(topic, id);
        if last {
            // The hub's last reference to the connection.
            state.connections.remove(&id);
        }
        true
    }

    pub(crate) fn leave_all(&self, id: ConnectionId) -> usize {
        let shard = self.registry.shard(id);
        let mut state = shard.lock();
        let Some(membership) = state.connections.remove(&id) else {
            return 0;
        };
        for topic in &membership.topics {
            self.remove_member(topic, id);
        }
        membership.topics.len()
    }

    /// Takes `id` out of `topic`'s member list, removing the topic if it was the last.
    fn remove_member(&self, topic: &str, id: ConnectionId) {
        let Some(entry) = self.topic(topic) else {
            return;
        };
        if entry.remove(id) != Some(0) {
            return;
        }
        let mut topics = self.write_topics();
        // A join may have come in since: remove only a topic still empty.
        if entry.remove_if_empty() {
            topics.remove(topic);
            self.backend.unsubscribe(topic);
        }
    }

    fn publish(
        &self,
        topic: &str,
        message: Message,
        except: Option<ConnectionId>,
    ) -> PublishReport {
        self.published.fetch_add(1, Ordering::Relaxed);
        // Remote first: the backend copies what it needs, so the local broadcast can
        // take the message itself without a clone.
        let remote = self.backend.publish(topic, &message);
        let local = self.deliver_local(topic, message, except);
        PublishReport { local, remote }
    }

    fn deliver_local(
        &self,
        topic: &str,
        message: Message,
        except: Option<ConnectionId>,
    ) -> BroadcastReport {
        let Some(entry) = self.topic(topic) else {
            return BroadcastReport::default();
        };
        let members = entry.snapshot();
        let mut broadcast = Broadcast::new(message).slow_receiver(self.slow_receiver);
        match except {
            None => broadcast.send_to(members.iter()),
            Some(except) => broadcast.send_to(members.iter().filter(|m| m.id() != except)),
        }
    }

    pub(crate) fn deliver_remote(
        &self,
        origin: HubId,
        topic: &str,
        message: Message,
    ) -> Option<BroadcastReport> {
        if origin == self.id {
            self.own_echoes.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.remote_delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = &self.on_remote {
            observer(topic, &message);
        }
        Some(self.deliver_local(topic, message, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubs_are_send_sync_and_clones_share_topics() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Hub>();
        let hub = Hub::new();
        assert_eq!(hub.clone().id(), hub.id());
        assert!(Arc::ptr_eq(&hub.clone().inner, &hub.inner));
    }
}
