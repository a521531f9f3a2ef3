//! Presence records shared through a real `redis-server` started by each test on a free
//! loopback port. Each `RedisPresence` stands for a process; a crash is simulated by
//! shutting down the tokio runtime its task runs on, so that it never cleans up. Without
//! `redis-server` these tests fail, saying to run scripts/install-test-deps.sh.

mod common;

use std::{future::Future, time::Duration};

use common::{LIMIT, redis_server::RedisServer, within};
use sockjet_hub::{PresenceError, RedisPresence};
use tokio::{
    runtime::Runtime,
    time::{Instant, sleep},
};

fn presence(redis: &RedisServer, ttl: Duration) -> RedisPresence {
    RedisPresence::builder(&redis.url())
        .unwrap()
        .ttl(ttl)
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
        .build()
}

fn entry(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

/// Waits (bounded) until `presence` lists exactly `expected` in `topic`; returns how
/// long that took.
async fn until_listed(
    presence: &RedisPresence,
    topic: &str,
    expected: &[(String, String)],
) -> Duration {
    let start = Instant::now();
    let mut last = None;
    let waited = tokio::time::timeout(LIMIT, async {
        loop {
            let listed = presence.list(topic).await;
            if listed.as_deref() == Ok(expected) {
                return;
            }
            last = Some(listed);
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{topic:?} never listed {expected:?}; last: {last:?}"
    );
    start.elapsed()
}

/// A presence whose task runs on a runtime of its own, which can be shut down at once as
/// if its process had died.
struct Process {
    runtime: Option<Runtime>,
    presence: RedisPresence,
}

impl Process {
    fn start(redis: &RedisServer, ttl: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let presence = {
            let _inside = runtime.enter();
            presence(redis, ttl)
        };
        Self {
            runtime: Some(runtime),
            presence,
        }
    }

    /// Stops its task where it is: no cleanup reaches Redis.
    fn crash(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A runtime cannot be dropped normally inside the test's own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `test` bounded by twice the usual limit (it has several bounded steps).
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT * 2, test)
        .await
        .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_see_each_others_records_and_leaving_removes_one() {
    bounded(async {
        let redis = RedisServer::start();
        let a = presence(&redis, Duration::from_secs(30));
        let b = presence(&redis, Duration::from_secs(30));
        assert_ne!(a.id(), b.id());
        a.join("lobby", "a1", "ada").unwrap();
        a.join("lobby", "a2", "alan").unwrap();
        b.join("lobby", "b1", "bob").unwrap();
        b.join("other", "b2", "eve").unwrap();
        // Local records are there at once, without Redis.
        assert_eq!(b.local("lobby"), [entry("b1", "bob")]);

        let everyone = [entry("a1", "ada"), entry("a2", "alan"), entry("b1", "bob")];
        until_listed(&a, "lobby", &everyone).await;
        until_listed(&b, "lobby", &everyone).await;
        until_listed(&a, "other", &[entry("b2", "eve")]).await;

        // A new value replaces the old one.
        a.join("lobby", "a1", "ada lovelace").unwrap();
        assert!(b.leave("lobby", "b1"));
        assert!(!b.leave("lobby", "b1"), "already gone");
        let left = [entry("a1", "ada lovelace"), entry("a2", "alan")];
        until_listed(&b, "lobby", &left).await;
        until_listed(&a, "lobby", &left).await;

        // Dropping a process's last handle deletes its keys: gone well before the TTL.
        drop(b);
        let gone = until_listed(&a, "other", &[]).await;
        assert!(gone < Duration::from_secs(5), "{gone:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_process_disappears_within_its_ttl() {
    bounded(async {
        let redis = RedisServer::start();
        // Long enough that a refresh (every third of it) delayed by a loaded machine does
        // not let the key expire, short enough to keep the test quick.
        let ttl = Duration::from_secs(2);
        let survivor = presence(&redis, ttl);
        let doomed = Process::start(&redis, ttl);
        survivor.join("lobby", "s", "sam").unwrap();
        doomed.presence.join("lobby", "d", "dora").unwrap();
        until_listed(&survivor, "lobby", &[entry("d", "dora"), entry("s", "sam")]).await;
        // Still there after several TTLs while its task refreshes it.
        sleep(ttl * 2).await;
        let listed = within(survivor.list("lobby")).await.unwrap();
        assert_eq!(listed, [entry("d", "dora"), entry("s", "sam")]);

        doomed.crash();
        let gone = until_listed(&survivor, "lobby", &[entry("s", "sam")]).await;
        assert!(gone <= ttl * 2, "gone after {gone:?}, TTL {ttl:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_with_glob_characters_match_only_themselves() {
    bounded(async {
        let redis = RedisServer::start();
        let a = presence(&redis, Duration::from_secs(30));
        let b = presence(&redis, Duration::from_secs(30));
        let topics = ["a", "a*", "a?", "ab", "a[b]", "a\\", "a:b", "a:*"];
        for topic in topics {
            b.join(topic, "key", topic).unwrap();
        }
        for topic in topics {
            until_listed(&a, topic, &[entry("key", topic)]).await;
        }
        assert_eq!(within(a.list("*")).await.unwrap(), []);
        assert_eq!(within(a.list("[a]")).await.unwrap(), []);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_come_back_after_redis_restarts_empty() {
    bounded(async {
        let mut redis = RedisServer::start();
        let ttl = Duration::from_secs(3);
        let a = presence(&redis, ttl);
        let b = presence(&redis, ttl);
        a.join("lobby", "a1", "ada").unwrap();
        b.join("lobby", "b1", "bob").unwrap();
        let everyone = [entry("a1", "ada"), entry("b1", "bob")];
        until_listed(&b, "lobby", &everyone).await;

        redis.stop();
        // Down: the caller is told, and given the local records to fall back on.
        let listed = within(async {
            loop {
                match a.list("lobby").await {
                    Err(error) => return error,
                    Ok(_) => sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        assert!(
            matches!(&listed, PresenceError::Unavailable { local, .. } if *local == [entry("a1", "ada")]),
            "{listed:?}"
        );
        // Changes while down are kept locally, and written once Redis is back.
        b.join("lobby", "b2", "bea").unwrap();

        let _redis = RedisServer::start_on(redis.port);
        let everyone = [entry("a1", "ada"), entry("b1", "bob"), entry("b2", "bea")];
        until_listed(&a, "lobby", &everyone).await;
        until_listed(&b, "lobby", &everyone).await;
        assert!(a.is_connected() && b.is_connected());
    })
    .await;
}
