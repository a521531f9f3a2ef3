//! [`RedisBackend`]: the hubs of several processes share their topics through Redis
//! pub/sub.
//!
//! Each hub has two connections to Redis: one subscribed to a channel per topic with local
//! members (`SUBSCRIBE` when the first local member joins, `UNSUBSCRIBE` when the last
//! leaves), one that sends `PUBLISH`es, pipelined, from a bounded queue. Each connection
//! has its own task, which reconnects with exponential backoff when Redis goes away
//! (logging a warning when the connection is lost and an info when it is back) and then
//! subscribes again to every topic with local members. Local delivery never depends on
//! Redis: while it is down, `publish` reports the remote delivery as failed and counts it.

use std::{
    collections::HashSet,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use redis::{AsyncConnectionConfig, Client, aio::MultiplexedConnection, aio::PubSubSink};
use sockjet::Message;
use tokio::{
    sync::{Notify, mpsc},
    task::AbortHandle,
    time::{Instant, MissedTickBehavior, interval, sleep, timeout},
};

use crate::{
    backend::{Backend, BackendStats, HubId, RemoteDelivery, RemoteFailure, RemoteInbox},
    envelope,
};

/// Time allowed to connect to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for Redis to answer a command.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscriber connection is pinged, to notice a connection that died
/// without closing (a peer that vanished, a network cut).
const HEALTH_CHECK: Duration = Duration::from_secs(10);
/// PUBLISHes sent in one pipeline, at most.
const BATCH: usize = 256;
/// Channels per SUBSCRIBE or UNSUBSCRIBE command, at most.
const SUBSCRIBE_CHUNK: usize = 1024;

/// Hubs in several processes sharing topics through Redis pub/sub.
///
/// Every hub built with a `RedisBackend` on the same Redis server and namespace shares
/// topics with the others: a message published on one process reaches the members of the
/// topic on every process. Delivery between processes is at most once (Redis pub/sub
/// keeps nothing for a hub that is disconnected at that moment), and in order from one
/// publishing hub.
///
/// Each message goes to Redis channel `NAMESPACE + TOPIC` (namespace `sockjet:room:` by
/// default) in a binary envelope that carries the publishing hub's id, so that a hub skips
/// its own messages when Redis sends them back (its local members had them at once).
///
/// Every queue is bounded: outgoing messages wait in a queue of
/// [`publish_queue`](Self::publish_queue) messages and bytes (past it, publishing reports
/// [`RemoteFailure::QueueFull`]); incoming ones are delivered to local members as they
/// arrive, without waiting (a slow member misses them, as with any publish), so the
/// redis crate's own buffer of received messages stays short.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sockjet_hub::{Hub, RedisBackend};
/// let redis = RedisBackend::new("redis://127.0.0.1:6379")?.namespace("chat:");
/// let hub = Hub::builder().backend(redis).build();
/// // Members of "lobby" on every process using this Redis and namespace get it.
/// hub.publish("lobby", "hello from this process")?;
/// # Ok(()) }
/// ```
pub struct RedisBackend {
    client: Client,
    /// Host and port only: the URL may carry a password, which must not reach the logs.
    address: Arc<str>,
    namespace: Arc<str>,
    queue_messages: usize,
    queue_bytes: usize,
    reconnect_min: Duration,
    reconnect_max: Duration,
    shared: Arc<Shared>,
    started: OnceLock<Started>,
}

struct Started {
    origin: HubId,
    queue: mpsc::Sender<Outgoing>,
    tasks: [AbortHandle; 2],
}

/// What the backend's tasks share with it.
#[derive(Default)]
struct Shared {
    /// Topics with local members: what the subscriber connection must be subscribed to.
    desired: Mutex<HashSet<Arc<str>>>,
    desired_changed: Notify,
    /// The subscriber lost its connection: the publisher's may be gone too, and would
    /// otherwise be found dead only by the next PUBLISH, which would be lost.
    check_publisher: Notify,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    /// Bytes of envelopes waiting in the publish queue.
    queued_bytes: AtomicUsize,
    published: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
}

impl Shared {
    fn desired(&self) -> MutexGuard<'_, HashSet<Arc<str>>> {
        self.desired.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_failed(&self, messages: usize) {
        self.failed.fetch_add(messages as u64, Ordering::Relaxed);
    }
}

/// A message on its way to Redis.
struct Outgoing {
    channel: String,
    envelope: Vec<u8>,
}

/// A Redis URL that cannot be used.
///
/// ```
/// assert!(sockjet_hub::RedisBackend::new("http://example.org").is_err());
/// ```
#[derive(Debug)]
pub struct InvalidRedisUrl(pub(crate) String);

impl fmt::Display for InvalidRedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Redis URL: {}", self.0)
    }
}

impl std::error::Error for InvalidRedisUrl {}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend for the Redis server at `url` (`redis://HOST:PORT[/DB]`, with
    /// `redis://:PASSWORD@HOST:PORT` for a password). It connects when the hub is built,
    /// and keeps trying while the server is unreachable.
    ///
    /// # Errors
    ///
    /// Fails if `url` is not a Redis URL.
    ///
    /// ```
    /// let backend = sockjet_hub::RedisBackend::new("redis://127.0.0.1:6379")?;
    /// # let _ = backend;
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn new(url: &str) -> Result<Self, InvalidRedisUrl> {
        let client = Client::open(url).map_err(|error| InvalidRedisUrl(error.to_string()))?;
        let address = client.get_connection_info().addr().to_string().into();
        Ok(Self {
            client,
            address,
            namespace: "sockjet:room:".into(),
            queue_messages: 4096,
            queue_bytes: 16 << 20,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            shared: Arc::default(),
            started: OnceLock::new(),
        })
    }

    /// The prefix of the Redis channel names (`sockjet:room:` by default): hubs share
    /// topics only with hubs of the same namespace.
    ///
    /// ```
    /// let backend = sockjet_hub::RedisBackend::new("redis://127.0.0.1")?.namespace("game:");
    /// # let _ = backend;
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Bounds of the queue of messages waiting to be sent to Redis (by default 4096
    /// messages and 16 MiB): past either, `publish` reports
    /// [`RemoteFailure::QueueFull`] for the remote delivery.
    ///
    /// ```
    /// let backend = sockjet_hub::RedisBackend::new("redis://127.0.0.1")?.publish_queue(1024, 1 << 20);
    /// # let _ = backend;
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn publish_queue(mut self, messages: usize, bytes: usize) -> Self {
        self.queue_messages = messages.max(1);
        self.queue_bytes = bytes;
        self
    }

    /// The delay before reconnecting to Redis: `min` after a loss, doubling at each failed
    /// attempt up to `max` (by default 100 ms to 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let backend = sockjet_hub::RedisBackend::new("redis://127.0.0.1")?
    ///     .reconnect_delay(Duration::from_millis(50), Duration::from_secs(1));
    /// # let _ = backend;
    /// # Ok::<(), sockjet_hub::InvalidRedisUrl>(())
    /// ```
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    fn backoff(&self, role: &'static str) -> Outage {
        Outage {
            role,
            address: self.address.clone(),
            min: self.reconnect_min,
            max: self.reconnect_max,
            delay: self.reconnect_min,
            connected_once: false,
            down_since: None,
        }
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        if let Some(started) = self.started.get() {
            for task in &started.tasks {
                task.abort();
            }
        }
    }
}

impl Backend for RedisBackend {
    fn start(&self, inbox: RemoteInbox) {
        let origin = inbox.origin();
        let (queue, outgoing) = mpsc::channel(self.queue_messages);
        let publisher = tokio::spawn(run_publisher(
            self.client.clone(),
            self.shared.clone(),
            outgoing,
            self.backoff("publisher"),
        ));
        let subscriber = tokio::spawn(run_subscriber(
            self.client.clone(),
            self.shared.clone(),
            inbox,
            self.namespace.clone(),
            self.backoff("subscriber"),
        ));
        let started = Started {
            origin,
            queue,
            tasks: [publisher.abort_handle(), subscriber.abort_handle()],
        };
        if let Err(extra) = self.started.set(started) {
            // A backend serves one hub; a second start has nothing to deliver to.
            tracing::warn!("a RedisBackend was started twice; the second start is ignored");
            extra.tasks.iter().for_each(AbortHandle::abort);
        }
    }

    fn subscribe(&self, topic: &str) {
        self.shared.desired().insert(topic.into());
        self.shared.desired_changed.notify_one();
    }

    fn unsubscribe(&self, topic: &str) {
        self.shared.desired().remove(topic);
        self.shared.desired_changed.notify_one();
    }

    fn publish(&self, topic: &str, message: &Message) -> RemoteDelivery {
        let shared = &self.shared;
        let failed = |why| {
            shared.count_failed(1);
            RemoteDelivery::Failed(why)
        };
        let Some(started) = self.started.get() else {
            return failed(RemoteFailure::Disconnected);
        };
        if !shared.publisher_up.load(Ordering::Acquire) {
            return failed(RemoteFailure::Disconnected);
        }
        let envelope = envelope::encode(started.origin, message);
        let size = envelope.len();
        if shared.queued_bytes.fetch_add(size, Ordering::AcqRel) + size > self.queue_bytes {
            shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return failed(RemoteFailure::QueueFull);
        }
        let outgoing = Outgoing {
            channel: format!("{}{topic}", self.namespace),
            envelope,
        };
        match started.queue.try_send(outgoing) {
            Ok(()) => RemoteDelivery::Queued,
            Err(error) => {
                shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                match error {
                    mpsc::error::TrySendError::Full(_) => failed(RemoteFailure::QueueFull),
                    mpsc::error::TrySendError::Closed(_) => failed(RemoteFailure::Disconnected),
                }
            }
        }
    }

    fn stats(&self) -> BackendStats {
        let shared = &self.shared;
        BackendStats {
            connected: shared.publisher_up.load(Ordering::Acquire)
                && shared.subscriber_up.load(Ordering::Acquire),
            published: shared.published.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            received: shared.received.load(Ordering::Relaxed),
            malformed: shared.malformed.load(Ordering::Relaxed),
        }
    }
}

/// One connection's reconnection state: backoff and what to log.
struct Outage {
    role: &'static str,
    address: Arc<str>,
    min: Duration,
    max: Duration,
    delay: Duration,
    connected_once: bool,
    down_since: Option<Instant>,
}

impl Outage {
    fn connected(&mut self) {
        let (role, address) = (self.role, &*self.address);
        match self.down_since.take() {
            Some(since) if self.connected_once => tracing::info!(
                role,
                address,
                down_for = ?since.elapsed(),
                "reconnected to Redis"
            ),
            Some(since) => tracing::info!(
                role,
                address,
                after = ?since.elapsed(),
                "connected to Redis"
            ),
            None => tracing::info!(role, address, "connected to Redis"),
        }
        self.connected_once = true;
        self.delay = self.min;
    }

    fn lost(&mut self, error: &dyn fmt::Display) {
        tracing::warn!(
            role = self.role,
            address = &*self.address,
            %error,
            "lost connection to Redis; local delivery goes on, reconnecting"
        );
        self.down_since = Some(Instant::now());
    }

    fn attempt_failed(&mut self, error: &dyn fmt::Display) {
        let (role, address) = (self.role, &*self.address);
        if self.down_since.is_none() {
            tracing::warn!(role, address, %error, "cannot connect to Redis; retrying");
            self.down_since = Some(Instant::now());
        } else {
            tracing::debug!(role, address, %error, retry_in = ?self.delay, "cannot connect to Redis");
        }
    }

    /// Waits before the next attempt, longer each time.
    async fn wait(&mut self) {
        sleep(self.delay).await;
        self.delay = (self.delay * 2).min(self.max);
    }
}

async fn run_publisher(
    client: Client,
    shared: Arc<Shared>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut outage: Outage,
) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    loop {
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(mut connection) => {
                outage.connected();
                shared.publisher_up.store(true, Ordering::Release);
                let error = publish_until_error(&mut connection, &mut outgoing, &shared).await;
                shared.publisher_up.store(false, Ordering::Release);
                let Some(error) = error else {
                    return; // The backend is gone.
                };
                outage.lost(&error);
                // What was queued for the lost connection will not be sent.
                while let Ok(message) = outgoing.try_recv() {
                    shared
                        .queued_bytes
                        .fetch_sub(message.envelope.len(), Ordering::AcqRel);
                    shared.count_failed(1);
                }
            }
            Err(error) => outage.attempt_failed(&error),
        }
        outage.wait().await;
    }
}

/// Sends queued messages, several per round trip, until Redis fails (the error) or the
/// queue is closed (`None`). Pings when idle, and when the subscriber lost its connection,
/// so that a dead connection is found before a message is lost on it.
async fn publish_until_error(
    connection: &mut MultiplexedConnection,
    outgoing: &mut mpsc::Receiver<Outgoing>,
    shared: &Shared,
) -> Option<redis::RedisError> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut health = interval(HEALTH_CHECK);
    health.set_missed_tick_behavior(MissedTickBehavior::Delay);
    health.tick().await;
    loop {
        tokio::select! {
            received = outgoing.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return None;
                }
            }
            () = shared.check_publisher.notified() => {
                if let Err(error) = ping(connection).await {
                    return Some(error);
                }
                continue;
            }
            _ = health.tick() => {
                if let Err(error) = ping(connection).await {
                    return Some(error);
                }
                continue;
            }
        }
        let mut pipeline = redis::pipe();
        let mut bytes = 0;
        for message in &batch {
            bytes += message.envelope.len();
            pipeline
                .cmd("PUBLISH")
                .arg(&message.channel)
                .arg(&message.envelope)
                .ignore();
        }
        shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        let sent = batch.len();
        batch.clear();
        match pipeline.query_async::<()>(connection).await {
            Ok(()) => {
                shared.published.fetch_add(sent as u64, Ordering::Relaxed);
            }
            Err(error) => {
                shared.count_failed(sent);
                return Some(error);
            }
        }
    }
}

async fn ping(connection: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    redis::cmd("PING").query_async::<()>(connection).await
}

async fn run_subscriber(
    client: Client,
    shared: Arc<Shared>,
    inbox: RemoteInbox,
    namespace: Arc<str>,
    mut outage: Outage,
) {
    let mut subscriber = Subscriber {
        shared: &shared,
        inbox: &inbox,
        namespace: &namespace,
    };
    while inbox.is_open() {
        match timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                let error = subscriber.run(pubsub, &mut outage).await;
                shared.subscriber_up.store(false, Ordering::Release);
                match error {
                    Some(error) => {
                        outage.lost(&error);
                        shared.check_publisher.notify_one();
                    }
                    None => return,
                }
            }
            Ok(Err(error)) => outage.attempt_failed(&error),
            Err(_) => outage.attempt_failed(&"timed out"),
        }
        outage.wait().await;
    }
}

struct Subscriber<'a> {
    shared: &'a Shared,
    inbox: &'a RemoteInbox,
    namespace: &'a str,
}

impl Subscriber<'_> {
    /// Subscribes to the topics with local members and delivers what arrives, until the
    /// connection fails (the error) or the hub is gone (`None`).
    async fn run(&mut self, pubsub: redis::aio::PubSub, outage: &mut Outage) -> Option<String> {
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed = HashSet::new();
        if let Err(error) = self.reconcile(&mut sink, &mut subscribed).await {
            return Some(error);
        }
        self.shared.subscriber_up.store(true, Ordering::Release);
        outage.connected();
        let mut health = interval(HEALTH_CHECK);
        health.set_missed_tick_behavior(MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.deliver(&message),
                    None => return Some("connection closed".into()),
                },
                () = self.shared.desired_changed.notified() => {
                    if let Err(error) = self.reconcile(&mut sink, &mut subscribed).await {
                        return Some(error);
                    }
                }
                _ = health.tick() => {
                    match timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return Some(error.to_string()),
                        Err(_) => return Some("no answer to PING".into()),
                    }
                }
            }
            if !self.inbox.is_open() {
                return None;
            }
        }
    }

    /// Subscribes to the topics that gained local members and unsubscribes from those that
    /// lost them, since the last time.
    async fn reconcile(
        &self,
        sink: &mut PubSubSink,
        subscribed: &mut HashSet<Arc<str>>,
    ) -> Result<(), String> {
        let (add, remove): (Vec<Arc<str>>, Vec<Arc<str>>) = {
            let desired = self.shared.desired();
            (
                desired.difference(subscribed).cloned().collect(),
                subscribed.difference(&desired).cloned().collect(),
            )
        };
        for topics in add.chunks(SUBSCRIBE_CHUNK) {
            let channels = self.channels(topics);
            match timeout(RESPONSE_TIMEOUT, sink.subscribe(channels)).await {
                Ok(Ok(())) => subscribed.extend(topics.iter().cloned()),
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("no answer to SUBSCRIBE".into()),
            }
        }
        for topics in remove.chunks(SUBSCRIBE_CHUNK) {
            let channels = self.channels(topics);
            match timeout(RESPONSE_TIMEOUT, sink.unsubscribe(channels)).await {
                Ok(Ok(())) => topics.iter().for_each(|t| {
                    subscribed.remove(t);
                }),
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("no answer to UNSUBSCRIBE".into()),
            }
        }
        Ok(())
    }

    fn channels(&self, topics: &[Arc<str>]) -> Vec<String> {
        topics
            .iter()
            .map(|topic| format!("{}{topic}", self.namespace))
            .collect()
    }

    fn deliver(&self, message: &redis::Msg) {
        let shared = self.shared;
        shared.received.fetch_add(1, Ordering::Relaxed);
        let channel = message.get_channel_name();
        let Some(topic) = channel.strip_prefix(self.namespace) else {
            shared.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match envelope::decode(message.get_payload_bytes()) {
            Ok((origin, message)) => {
                self.inbox.deliver(origin, topic, message);
            }
            Err(error) => {
                shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    channel,
                    ?error,
                    "ignored a message that is not a hub envelope"
                );
            }
        }
    }
}
