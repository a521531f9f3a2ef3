//! The task that keeps one process's presence records in Redis: it applies joins and
//! leaves as they are queued, refreshes the keys' TTL, and rewrites them whole after a
//! reconnection (Redis may have restarted empty) or when the queue overflowed.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{AsyncConnectionConfig, Client, RedisError, aio::MultiplexedConnection};
use tokio::{
    sync::{Notify, mpsc},
    time::{Instant, MissedTickBehavior, interval, sleep, timeout},
};

use super::{keys, local::LocalEntries};

/// Time allowed to connect to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for Redis to answer a command.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Queued changes sent in one pipeline, at most.
const BATCH: usize = 256;
/// Topics rewritten in one transaction, at most.
const REWRITE_CHUNK: usize = 64;

/// What the presence handle and its writer share.
pub(crate) struct Shared {
    pub(crate) local: LocalEntries,
    pub(crate) namespace: String,
    /// This process's id, the last part of its keys.
    pub(crate) process: String,
    pub(crate) ttl: Duration,
    /// The writer's connection while it has one: `list` reads through it.
    connection: Mutex<Option<MultiplexedConnection>>,
    /// Changes were dropped (queue full): Redis must be rewritten from `local`.
    resync: AtomicBool,
    /// Wakes the writer: to resync, or to check a connection that `list` found failing.
    wake: Notify,
}

impl Shared {
    pub(crate) fn new(namespace: String, process: String, ttl: Duration) -> Self {
        Self {
            local: LocalEntries::default(),
            namespace,
            process,
            ttl,
            connection: Mutex::default(),
            resync: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    pub(crate) fn connection(&self) -> MutexGuard<'_, Option<MultiplexedConnection>> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A change could not be queued: Redis will be rewritten from the local records.
    pub(crate) fn request_resync(&self) {
        self.resync.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// A read failed: the writer checks its connection (and reconnects if it is dead).
    pub(crate) fn check_connection(&self) {
        self.wake.notify_one();
    }

    fn key(&self, topic: &str) -> String {
        keys::key(&self.namespace, topic, &self.process)
    }

    fn ttl_millis(&self) -> i64 {
        i64::try_from(self.ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

/// A change of the local records, on its way to Redis.
pub(crate) enum Change {
    Set {
        topic: String,
        key: String,
        value: String,
    },
    Remove {
        topic: String,
        key: String,
    },
}

/// How the writer reconnects: backoff delays, and where the logs say it connects to.
pub(crate) struct Reconnect {
    /// Host and port only: the URL may carry a password, which must not reach the logs.
    pub(crate) address: String,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// Runs until the presence handle is gone, then deletes this process's keys (if Redis is
/// reachable at that moment; otherwise they expire).
pub(crate) async fn run(
    client: Client,
    shared: Arc<Shared>,
    mut changes: mpsc::Receiver<Change>,
    reconnect: Reconnect,
) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let address = reconnect.address.as_str();
    let mut delay = reconnect.min;
    let mut down_since: Option<Instant> = None;
    loop {
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                match down_since.take() {
                    Some(since) => tracing::info!(
                        role = "presence",
                        address,
                        down_for = ?since.elapsed(),
                        "reconnected to Redis"
                    ),
                    None => tracing::info!(role = "presence", address, "connected to Redis"),
                }
                delay = reconnect.min;
                *shared.connection() = Some(connection.clone());
                let writer = Writer {
                    shared: &shared,
                    connection,
                };
                let outcome = writer.serve(&mut changes).await;
                *shared.connection() = None;
                let Err(error) = outcome else {
                    return; // The handle is gone.
                };
                tracing::warn!(
                    role = "presence",
                    address,
                    %error,
                    "lost connection to Redis; presence is local only, reconnecting"
                );
                down_since = Some(Instant::now());
            }
            Err(error) => log_failed_attempt(address, &error, &mut down_since),
        }
        if !wait_discarding(&mut changes, delay).await {
            return;
        }
        delay = (delay * 2).min(reconnect.max);
    }
}

fn log_failed_attempt(address: &str, error: &dyn fmt::Display, down_since: &mut Option<Instant>) {
    if down_since.is_none() {
        tracing::warn!(role = "presence", address, %error, "cannot connect to Redis; retrying");
        *down_since = Some(Instant::now());
    } else {
        tracing::debug!(role = "presence", address, %error, "cannot connect to Redis");
    }
}

/// Waits `delay` before reconnecting. Changes queued meanwhile are dropped: the rewrite
/// after the reconnection covers them. False if the handle is gone.
async fn wait_discarding(changes: &mut mpsc::Receiver<Change>, delay: Duration) -> bool {
    let wait = sleep(delay);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            () = &mut wait => return true,
            change = changes.recv() => if change.is_none() {
                return false;
            },
        }
    }
}

struct Writer<'a> {
    shared: &'a Shared,
    connection: MultiplexedConnection,
}

impl Writer<'_> {
    /// Keeps Redis up to date until the connection fails (the error) or the handle is
    /// gone (`Ok`, after deleting this process's keys).
    async fn serve(mut self, changes: &mut mpsc::Receiver<Change>) -> Result<(), RedisError> {
        self.shared.resync.store(false, Ordering::Release);
        self.rewrite(self.shared.local.topic_names()).await?;
        // Three refreshes per TTL: a key survives one lost or late refresh.
        let mut refresh = interval(self.shared.ttl / 3);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        refresh.tick().await;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                received = changes.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        self.delete_all().await;
                        return Ok(());
                    }
                    self.apply(&batch).await?;
                    batch.clear();
                }
                _ = refresh.tick() => self.refresh().await?,
                () = self.shared.wake.notified() => {
                    redis::cmd("PING").query_async::<()>(&mut self.connection).await?;
                }
            }
            if self.shared.resync.swap(false, Ordering::AcqRel) {
                self.rewrite(self.shared.local.topic_names()).await?;
            }
        }
    }

    async fn apply(&mut self, changes: &[Change]) -> Result<(), RedisError> {
        let mut pipeline = redis::pipe();
        for change in changes {
            match change {
                Change::Set { topic, key, value } => {
                    let redis_key = self.shared.key(topic);
                    pipeline.hset(&redis_key, key, value).ignore();
                    pipeline
                        .pexpire(&redis_key, self.shared.ttl_millis())
                        .ignore();
                }
                Change::Remove { topic, key } => {
                    // The last field's removal deletes the key.
                    pipeline.hdel(self.shared.key(topic), key).ignore();
                }
            }
        }
        pipeline.query_async(&mut self.connection).await
    }

    /// Extends the TTL of this process's keys; rewrites those that are missing (Redis
    /// lost them without this connection noticing, or they expired during a stall).
    async fn refresh(&mut self) -> Result<(), RedisError> {
        let topics = self.shared.local.topic_names();
        if topics.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for topic in &topics {
            pipeline.pexpire(self.shared.key(topic), self.shared.ttl_millis());
        }
        let extended: Vec<bool> = pipeline.query_async(&mut self.connection).await?;
        let missing: Vec<String> = topics
            .into_iter()
            .zip(extended)
            .filter_map(|(topic, extended)| (!extended).then_some(topic))
            .collect();
        if !missing.is_empty() {
            tracing::debug!(topics = missing.len(), "rewriting missing presence keys");
            self.rewrite(missing).await?;
        }
        Ok(())
    }

    /// Replaces the keys of `topics` with the local records, each topic atomically.
    async fn rewrite(&mut self, topics: Vec<String>) -> Result<(), RedisError> {
        for chunk in topics.chunks(REWRITE_CHUNK) {
            let mut pipeline = redis::pipe();
            pipeline.atomic();
            for topic in chunk {
                let key = self.shared.key(topic);
                pipeline.del(&key).ignore();
                let entries = self.shared.local.get(topic);
                if !entries.is_empty() {
                    pipeline.hset_multiple(&key, &entries).ignore();
                    pipeline.pexpire(&key, self.shared.ttl_millis()).ignore();
                }
            }
            pipeline.query_async::<()>(&mut self.connection).await?;
        }
        Ok(())
    }

    /// Best effort: a key that is not deleted expires within the TTL.
    async fn delete_all(&mut self) {
        let topics = self.shared.local.topic_names();
        if topics.is_empty() {
            return;
        }
        let mut pipeline = redis::pipe();
        for topic in &topics {
            pipeline.del(self.shared.key(topic)).ignore();
        }
        let deleted = timeout(
            RESPONSE_TIMEOUT,
            pipeline.query_async::<()>(&mut self.connection),
        )
        .await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::debug!("could not delete presence keys; they expire with their TTL");
        }
    }
}
