//! Rooms shared between processes through a real `redis-server` started by each test on a
//! free loopback port: two `sockjet-hub-relay` processes, and two hubs in this process.
//! Without `redis-server` these tests fail, saying to run scripts/install-test-deps.sh.

mod common;

use std::time::Duration;

use common::{
    client, hub_server, next_text, processes::Relay, redis_server::RedisServer, until, within,
};
use sockjet::{CloseCode, Connection, ConnectionConfig, Message};
use sockjet_hub::{Hub, RedisBackend, RemoteDelivery, RemoteFailure};
use tokio::time::{sleep, timeout};

async fn connect(url: &str) -> Connection {
    within(sockjet::connect(url)).await.unwrap()
}

/// How many clients of Redis subscribe to the channel of `topic` (default namespace).
async fn subscribers(redis: &RedisServer, topic: &str) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = within(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    let (_, count): (String, i64) = within(
        redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("sockjet:room:{topic}"))
            .query_async(&mut connection),
    )
    .await
    .unwrap();
    count
}

/// Waits (bounded) until `count` hubs subscribe to `topic`.
async fn wait_for_subscribers(redis: &RedisServer, topic: &str, count: i64) {
    within(async {
        while subscribers(redis, topic).await != count {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Asserts that nothing more arrives on `ws` for a while (a duplicate would).
async fn nothing_more(ws: &mut Connection) {
    if let Ok(message) = timeout(Duration::from_millis(300), ws.recv()).await {
        panic!("unexpected message: {message:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_on_one_process_reaches_the_room_on_the_other() {
    let redis = RedisServer::start();
    let a = Relay::start(Some(&redis.url()));
    let b = Relay::start(Some(&redis.url()));
    let mut a1 = connect(&a.room("lobby")).await;
    let mut a2 = connect(&a.room("lobby")).await;
    let mut b1 = connect(&b.room("lobby")).await;
    let mut a3 = connect(&a.room("other")).await;
    let mut b2 = connect(&b.room("other")).await;
    wait_for_subscribers(&redis, "lobby", 2).await;
    wait_for_subscribers(&redis, "other", 2).await;

    // Every member of the room, on both processes and the sender included, gets each
    // message once, in order.
    for i in 0..20 {
        a1.send(format!("a1 #{i}")).await.unwrap();
    }
    for ws in [&mut a1, &mut a2, &mut b1] {
        for i in 0..20 {
            assert_eq!(next_text(ws).await, format!("a1 #{i}"));
        }
    }
    // And back, binary-safe.
    let binary = Message::binary((0..=255u8).collect::<Vec<_>>());
    b1.send(binary.clone()).await.unwrap();
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(within(ws.recv()).await.unwrap(), Some(binary.clone()));
    }
    // The other room got none of it: its first message is its own.
    a3.send("in other").await.unwrap();
    assert_eq!(next_text(&mut b2).await, "in other");
    assert_eq!(next_text(&mut a3).await, "in other");
    // No duplicate comes late (a hub delivering its own echo from Redis would).
    for ws in [&mut a1, &mut a2, &mut b1, &mut a3, &mut b2] {
        nothing_more(ws).await;
    }
    // Paths other than /room/NAME are refused.
    let mut stray = connect(&format!("{}/elsewhere", a.url)).await;
    assert!(matches!(within(stray.recv()).await, Ok(None) | Err(_)));
    assert_eq!(
        stray.closed().await.code(),
        CloseCode::POLICY_VIOLATION,
        "{}",
        a.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_delivery_goes_on_while_redis_is_down_and_remote_delivery_resumes() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let a = Relay::start(Some(&redis.url()));
    let b = Relay::start(Some(&redis.url()));
    let mut a1 = connect(&a.room("lobby")).await;
    let mut a2 = connect(&a.room("lobby")).await;
    let mut b1 = connect(&b.room("lobby")).await;
    let mut b2 = connect(&b.room("lobby")).await;
    wait_for_subscribers(&redis, "lobby", 2).await;
    a1.send("before").await.unwrap();
    for ws in [&mut a1, &mut a2, &mut b1, &mut b2] {
        assert_eq!(next_text(ws).await, "before");
    }

    redis.stop();
    // Both connections of each relay (subscriber, publisher) notice.
    a.wait_for_log("lost connection to Redis", 2).await;
    b.wait_for_log("lost connection to Redis", 2).await;
    // Each process still serves its own members.
    a1.send("only on a").await.unwrap();
    b1.send("only on b").await.unwrap();
    for ws in [&mut a1, &mut a2] {
        assert_eq!(next_text(ws).await, "only on a");
    }
    for ws in [&mut b1, &mut b2] {
        assert_eq!(next_text(ws).await, "only on b");
    }

    let redis = RedisServer::start_on(port);
    a.wait_for_log("reconnected to Redis", 2).await;
    b.wait_for_log("reconnected to Redis", 2).await;
    wait_for_subscribers(&redis, "lobby", 2).await;
    // Pub/sub keeps nothing for a process that was away: send until b hears.
    let mut sent = 0;
    let heard = within(async {
        loop {
            a1.send(format!("again #{sent}")).await.unwrap();
            sent += 1;
            if let Ok(message) = timeout(Duration::from_millis(200), b1.recv()).await {
                return message.unwrap().unwrap();
            }
        }
    })
    .await;
    let heard = heard.as_text().unwrap().to_owned();
    assert!(heard.starts_with("again #"), "{heard}");
    // From then on, every message crosses, in order, once.
    let first: u32 = heard["again #".len()..].parse().unwrap();
    for i in first + 1..sent {
        assert_eq!(next_text(&mut b1).await, format!("again #{i}"));
    }
    a1.send("last").await.unwrap();
    assert_eq!(next_text(&mut b1).await, "last");
    assert_eq!(next_text(&mut b2).await, heard);
    // a's members got all of them, locally, even those that did not cross.
    for ws in [&mut a1, &mut a2] {
        for i in 0..sent {
            assert_eq!(next_text(ws).await, format!("again #{i}"));
        }
        assert_eq!(next_text(ws).await, "last");
    }
    for log in [a.log(), b.log()] {
        assert!(log.contains("WARN"), "the loss is a warning: {log}");
    }
}

/// Two hubs of this process on one Redis: what they count, what a publish reports while
/// Redis is down, and that a foreign message on their channel is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_count_echoes_failures_and_malformed_messages() {
    let mut redis = RedisServer::start();
    let backend = || {
        RedisBackend::new(&redis.url())
            .unwrap()
            .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
    };
    let hub_a = Hub::builder().backend(backend()).build();
    let hub_b = Hub::builder().backend(backend()).build();
    let (addr_a, _) = hub_server(hub_a.clone(), ConnectionConfig::default()).await;
    let (addr_b, _) = hub_server(hub_b.clone(), ConnectionConfig::default()).await;
    let mut on_a = client(addr_a, "lobby").await;
    let mut on_b = client(addr_b, "lobby").await;
    wait_for_subscribers(&redis, "lobby", 2).await;
    until("both backends are connected", || {
        hub_a.stats().backend.connected && hub_b.stats().backend.connected
    })
    .await;

    let report = hub_a.publish("lobby", "hello").unwrap();
    assert_eq!(report.remote, RemoteDelivery::Queued);
    assert_eq!(report.local.queued, 1);
    assert_eq!(next_text(&mut on_a).await, "hello");
    assert_eq!(next_text(&mut on_b).await, "hello");
    until("a skipped its own echo", || hub_a.stats().own_echoes == 1).await;
    let (a, b) = (hub_a.stats(), hub_b.stats());
    assert_eq!((a.backend.published, a.remote_delivered), (1, 0));
    assert_eq!((b.backend.received, b.remote_delivered), (1, 1));

    // Something that is not a hub envelope, on the hubs' channel: counted, ignored.
    let raw = redis::Client::open(redis.url()).unwrap();
    let mut raw = within(raw.get_multiplexed_async_connection())
        .await
        .unwrap();
    let _: i64 = within(
        redis::cmd("PUBLISH")
            .arg("sockjet:room:lobby")
            .arg("not an envelope")
            .query_async(&mut raw),
    )
    .await
    .unwrap();
    until("both counted it", || {
        hub_a.stats().backend.malformed == 1 && hub_b.stats().backend.malformed == 1
    })
    .await;

    // Redis down: local delivery goes on, remote delivery is reported failed.
    redis.stop();
    until("a noticed", || !hub_a.stats().backend.connected).await;
    let failed_before = hub_a.stats().backend.failed;
    let report = within(async {
        loop {
            // The publisher connection notices at its first failed PUBLISH, if not before.
            let report = hub_a.publish("lobby", "while down").unwrap();
            assert_eq!(report.local.queued, 1);
            if report.remote == RemoteDelivery::Failed(RemoteFailure::Disconnected) {
                return report;
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(report.local.queued, 1);
    assert!(hub_a.stats().backend.failed > failed_before);
    while let Ok(Some(message)) = timeout(Duration::from_millis(100), on_a.recv())
        .await
        .map(Result::unwrap)
    {
        assert_eq!(message.as_text(), Some("while down"));
    }
    // Nothing reached b: its next message, after Redis is back, is the next one sent.
    let redis = RedisServer::start_on(redis.port);
    wait_for_subscribers(&redis, "lobby", 2).await;
    within(async {
        loop {
            if hub_a.publish("lobby", "back").unwrap().remote == RemoteDelivery::Queued {
                return;
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(next_text(&mut on_b).await, "back");
}
