//! The hub in one process, over loopback: join, publish, leave, automatic leave when a
//! connection ends (10k times, leaving nothing behind), and a member that stops reading.

mod common;

use std::time::Duration;

use common::{Senders, client, hub_server, next_text, stalled_client, until, within};
use sockjet::{CloseCode, ConnectionConfig, ConnectionId, Message, Sender, SlowReceiver};
use sockjet_hub::{Hub, MAX_TOPIC_LEN, RemoteDelivery, TopicError};
use tokio::time::sleep;

fn sender(senders: &Senders, id: ConnectionId) -> Sender {
    senders.lock().unwrap()[&id].clone()
}

#[tokio::test]
async fn members_get_what_is_published_to_their_topics_only() {
    let hub = Hub::new();
    let (addr, senders) = hub_server(hub.clone(), ConnectionConfig::default()).await;
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(client(addr, "a").await);
    }
    let mut b = client(addr, "b").await;
    until("4 members joined", || {
        hub.member_count("a") == 3 && hub.member_count("b") == 1
    })
    .await;
    let mut topics = hub.topics();
    topics.sort();
    assert_eq!(topics, ["a", "b"]);
    assert_eq!(hub.stats().connections, 4);

    let report = hub.publish("a", "hello, a").unwrap();
    assert_eq!(report.local.queued, 3);
    assert_eq!(report.remote, RemoteDelivery::InProcessOnly);
    assert_eq!(hub.publish("b", "hello, b").unwrap().local.queued, 1);
    for ws in &mut a {
        assert_eq!(next_text(ws).await, "hello, a");
    }
    // b's first message is its own topic's: it got nothing of a's.
    assert_eq!(next_text(&mut b).await, "hello, b");

    // A client's message is published to its topic (the server's handler does that).
    a[0].send("from a0").await.unwrap();
    for ws in &mut a {
        assert_eq!(next_text(ws).await, "from a0");
    }

    // Joining again changes nothing: one copy per message.
    let members = hub.members("a");
    assert_eq!(members.len(), 3);
    let first = sender(&senders, members[0]);
    assert!(!hub.join("a", &first).unwrap());
    assert_eq!(hub.member_count("a"), 3);

    // Excluding a member; then a member that left gets nothing more.
    let report = hub
        .publish_except("a", "not for the first", first.id())
        .unwrap();
    assert_eq!(report.local.queued, 2);
    assert!(hub.leave("a", first.id()));
    assert!(!hub.leave("a", first.id()));
    assert_eq!(hub.publish("a", "after leaving").unwrap().local.queued, 2);
    assert!(hub.topics_of(first.id()).is_empty());
    assert_eq!(hub.stats().connections, 3);
    // Back in, it gets what comes next, and nothing from before.
    assert!(hub.join("a", &first).unwrap());
    assert_eq!(hub.publish("a", "welcome back").unwrap().local.queued, 3);
    let mut seen = Vec::new();
    for ws in &mut a {
        let mut texts = Vec::new();
        loop {
            let text = next_text(ws).await;
            let last = text == "welcome back";
            texts.push(text);
            if last {
                break;
            }
        }
        seen.push(texts);
    }
    // The member that was excluded, then left, saw only what came after its return.
    seen.sort_by_key(Vec::len);
    assert_eq!(seen[0], ["welcome back"]);
    for texts in &seen[1..] {
        assert_eq!(
            texts,
            &["not for the first", "after leaving", "welcome back"]
        );
    }

    // leave_all takes a connection out of every topic.
    let b_id = hub.members("b")[0];
    assert!(hub.join("a", sender(&senders, b_id)).unwrap());
    let mut b_topics = hub.topics_of(b_id);
    b_topics.sort();
    assert_eq!(b_topics, ["a", "b"]);
    assert_eq!(hub.leave_all(b_id), 2);
    assert_eq!(hub.topics(), ["a"]);
    assert_eq!(hub.publish("b", "nobody").unwrap().local.queued, 0);
}

#[tokio::test]
async fn members_leave_by_themselves_when_their_connection_ends() {
    let hub = Hub::new();
    let (addr, _senders) = hub_server(hub.clone(), ConnectionConfig::default()).await;
    let closing = client(addr, "a/b").await;
    let dropped = client(addr, "a").await;
    let mut staying = client(addr, "a").await;
    until("3 members joined", || hub.member_count("a") == 3).await;
    assert_eq!(hub.member_count("b"), 1);

    // A closing handshake...
    within(closing.close(CloseCode::NORMAL_CLOSURE, "bye"))
        .await
        .unwrap();
    until("the closed member left both topics", || {
        hub.member_count("a") == 2 && hub.topics() == ["a"]
    })
    .await;
    // ...or a connection dropped by the client (its handle gone: it closes with 1000).
    drop(dropped);
    until("the dropped member left", || hub.member_count("a") == 1).await;

    assert_eq!(hub.publish("a", "still here").unwrap().local.queued, 1);
    assert_eq!(next_text(&mut staying).await, "still here");
    within(staying.close(CloseCode::NORMAL_CLOSURE, ""))
        .await
        .unwrap();
    until("every topic is gone", || hub.topics().is_empty()).await;
    assert_eq!(hub.stats().connections, 0);
}

/// Membership does not keep a connection open: a handler that returns without leaving
/// its topics still closes its connection (1000), and the hub forgets it.
#[tokio::test]
async fn a_handler_that_returns_closes_its_connection_even_while_a_member() {
    let hub = Hub::new();
    let server = sockjet::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let serving_hub = hub.clone();
    tokio::spawn(server.serve(move |mut ws| {
        let hub = serving_hub.clone();
        async move {
            hub.join("lobby", ws.sender()).unwrap();
            hub.join("weak", ws.sender().downgrade()).unwrap();
            // Returns at the first message, without leave_all.
            let _ = ws.recv().await;
        }
    }));
    let mut ws = sockjet::connect(&format!("ws://{addr}/")).await.unwrap();
    until("the member joined", || hub.member_count("weak") == 1).await;
    assert_eq!(hub.publish("lobby", "hello").unwrap().local.queued, 1);
    assert_eq!(next_text(&mut ws).await, "hello");

    ws.send("bye").await.unwrap();
    assert!(
        within(ws.recv()).await.unwrap().is_none(),
        "the server closes"
    );
    let closed = within(ws.closed()).await;
    assert_eq!(closed.code(), CloseCode::NORMAL_CLOSURE, "{closed}");
    until("the member left both topics", || hub.topics().is_empty()).await;
    assert_eq!(hub.stats().connections, 0);
}

/// 10,000 joins: 2,500 connections join four topics each (one shared by all, three of
/// 50), then disconnect, 500 at a time. Afterwards the hub has no topic, no connection,
/// and no task left beyond its fixed watchers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_joins_and_disconnects_leave_nothing_behind() {
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 500;
    const TOPICS_EACH: usize = 4;
    // Without compression, so that the handshakes stay cheap in a debug build.
    let config = || ConnectionConfig::default().compression(None);
    let hub = Hub::new();
    let (addr, _senders) = hub_server(hub.clone(), config()).await;
    // The baseline: the server's own tasks, once it runs.
    within(
        client(addr, "warm-up")
            .await
            .close(CloseCode::NORMAL_CLOSURE, ""),
    )
    .await
    .unwrap();
    until("the warm-up connection left", || hub.topics().is_empty()).await;
    sleep(Duration::from_millis(50)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    let mut joins = 0;
    for round in 0..ROUNDS {
        let mut connecting = Vec::new();
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            let rooms = format!("all/r{}/r{}/r{}", n % 50, (n + 1) % 50, (n + 2) % 50);
            let client = sockjet::ClientBuilder::new(format!("ws://{addr}/rooms/{rooms}"))
                .connection(config());
            connecting.push(tokio::spawn(async move { within(client.connect()).await }));
        }
        let mut clients = Vec::new();
        for connection in connecting {
            clients.push(within(connection).await.unwrap().unwrap());
        }
        until("a round joined", || {
            hub.member_count("all") == PER_ROUND && hub.stats().topics == 51
        })
        .await;
        assert_eq!(hub.stats().connections, PER_ROUND);
        joins += PER_ROUND * TOPICS_EACH;
        // Half close properly, half just vanish (the handle dropped: close 1000).
        for (i, ws) in clients.into_iter().enumerate() {
            if i % 2 == 0 {
                tokio::spawn(async move {
                    let _ = within(ws.close(CloseCode::GOING_AWAY, "")).await;
                });
            } else {
                drop(ws);
            }
        }
        until("a round left", || hub.stats().connections == 0).await;
    }
    assert_eq!(joins, 10_000);
    assert!(hub.topics().is_empty(), "{:?}", hub.topics());
    assert_eq!(hub.member_count("all"), 0);
    // The connections' tasks end with them; what stays is one watcher per shard at most.
    until("the connection tasks ended", || {
        metrics.num_alive_tasks() <= tasks_before + 16
    })
    .await;
}

/// A member that never reads (a raw TCP client with a tiny receive buffer) among two that
/// do: publishing 16 MB, far more than the stalled one's buffers hold, the readers get
/// every message in order, the stalled one's queue stays bounded and its missed messages
/// are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_does_not_hold_up_the_others() {
    const MESSAGES: u32 = 4_000;
    const SIZE: usize = 4096;
    let write_limit = 64 * 1024;
    let hub = Hub::new();
    let config = ConnectionConfig::default()
        .write_limit(write_limit)
        .compression(None);
    let (addr, senders) = hub_server(hub.clone(), config).await;
    let stalled = stalled_client(addr, "feed").await;
    until("the stalled member joined", || {
        hub.member_count("feed") == 1
    })
    .await;
    let stalled_member = sender(&senders, hub.members("feed")[0]);

    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut ws = client(addr, "feed").await;
        readers.push(tokio::spawn(async move {
            for expected in 0..MESSAGES {
                let message = within(ws.recv()).await.unwrap().unwrap();
                let data = message.into_bytes();
                assert_eq!(data.len(), SIZE);
                assert_eq!(u32::from_be_bytes(data[..4].try_into().unwrap()), expected);
            }
        }));
    }
    until("the readers joined", || hub.member_count("feed") == 3).await;
    let readers_side: Vec<Sender> = hub
        .members("feed")
        .into_iter()
        .filter(|id| *id != stalled_member.id())
        .map(|id| sender(&senders, id))
        .collect();

    let mut dropped = 0;
    for i in 0..MESSAGES {
        let mut payload = vec![0u8; SIZE];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        let report = hub.publish("feed", Message::binary(payload)).unwrap();
        assert_eq!(report.local.queued + report.local.dropped, 3, "{report:?}");
        dropped += report.local.dropped;
        assert!(stalled_member.buffered_amount() <= write_limit + SIZE + 14);
        if i % 8 == 7 {
            // Pace on the readers, as an application would (never on the stalled one):
            // what waits for them stays under their write limit.
            within(async {
                while readers_side.iter().any(|r| r.buffered_amount() > 0) {
                    sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        }
    }
    for reader in readers {
        within(reader).await.unwrap();
    }
    assert!(
        dropped > 0,
        "16 MB cannot fit in the stalled member's buffers"
    );
    assert_eq!(stalled_member.dropped_messages(), dropped as u64);
    assert!(
        hub.members("feed").contains(&stalled_member.id()),
        "missing messages does not make a member leave"
    );
    drop(stalled);
}

/// With the close policy, a stalled member is closed, and so leaves its topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_close_policy_closes_a_stalled_member_which_then_leaves() {
    let hub = Hub::builder()
        .slow_receiver(SlowReceiver::Close(CloseCode::TRY_AGAIN_LATER))
        .build();
    let config = ConnectionConfig::default()
        .write_limit(16 * 1024)
        .compression(None)
        .close_timeout(Some(Duration::from_millis(500)));
    let (addr, _senders) = hub_server(hub.clone(), config).await;
    let stalled = stalled_client(addr, "feed").await;
    until("the stalled member joined", || {
        hub.member_count("feed") == 1
    })
    .await;
    let mut closed = 0;
    for _ in 0..4_000 {
        closed += hub.publish("feed", vec![0u8; 4096]).unwrap().local.closed;
        if closed > 0 {
            break;
        }
    }
    assert_eq!(
        closed, 1,
        "16 MB cannot fit in the stalled member's buffers"
    );
    until("the closed member left", || hub.topics().is_empty()).await;
    drop(stalled);
}

#[tokio::test]
async fn topic_names_are_checked() {
    let hub = Hub::new();
    assert_eq!(hub.publish("", "x").unwrap_err(), TopicError::Empty);
    let long = "x".repeat(MAX_TOPIC_LEN + 1);
    assert_eq!(
        hub.publish(&long, "x").unwrap_err(),
        TopicError::TooLong(MAX_TOPIC_LEN + 1)
    );
    assert!(hub.publish(&"x".repeat(MAX_TOPIC_LEN), "x").is_ok());
    let (addr, senders) = hub_server(hub.clone(), ConnectionConfig::default()).await;
    let _ws = client(addr, "ok").await;
    until("joined", || hub.member_count("ok") == 1).await;
    let member = sender(&senders, hub.members("ok")[0]);
    assert_eq!(
        hub.join("bad\u{0}", &member),
        Err(TopicError::ControlCharacter)
    );
    assert_eq!(
        hub.join(&long, &member),
        Err(TopicError::TooLong(long.len()))
    );
    assert_eq!(hub.topics(), ["ok"]);
}
