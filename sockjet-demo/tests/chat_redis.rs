//! The chat across two demo servers sharing rooms through a real `redis-server`: a line
//! said on one server reaches the room on the other, lands in the other's history, and
//! other rooms hear nothing; the member lists cover both servers, and the members of a
//! server that died leave the other's lists. Without `redis-server` the tests fail,
//! saying to run scripts/install-test-deps.sh.

#[path = "../../sockjet-hub/tests/common/redis_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;

use std::time::Duration;

use serde_json::{Value, json};
use sockjet::Connection;
use sockjet_demo::{Demo, chat::Chat, chat::RedisOptions};
use sockjet_hub::RedisPresence;
use tokio::{runtime::Runtime, time::Instant};

/// Every wait in this test is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test step timed out")
}

async fn demo_server(redis: &str) -> String {
    demo_server_with(redis, RedisOptions::default()).await.0
}

/// A demo server (its URL and chat) with the chat's Redis `options`.
async fn demo_server_with(redis: &str, options: RedisOptions) -> (String, Chat) {
    let server = Demo::start_with_redis_options(redis, options)
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}", server.local_addr());
    let chat = server.demo().chat().clone();
    tokio::spawn(server.serve());
    (url, chat)
}

/// A demo server on a tokio runtime of its own, which can be shut down at once as if its
/// process had died: its connections drop and nothing it would clean up reaches Redis.
struct Process {
    runtime: Option<Runtime>,
    url: String,
}

impl Process {
    async fn start(redis: &str, options: RedisOptions) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let redis = redis.to_owned();
        let started = runtime.spawn(async move { demo_server_with(&redis, options).await.0 });
        let url = within(started).await.unwrap();
        Self {
            runtime: Some(runtime),
            url,
        }
    }

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

async fn next_event(ws: &mut Connection) -> Value {
    let message = within(ws.recv()).await.unwrap().expect("connection open");
    serde_json::from_str(message.as_text().expect("text")).unwrap()
}

/// Joins `room` on `server` as `nick`, returning the connection and its welcome.
async fn join(server: &str, room: &str, nick: &str) -> (Connection, Value) {
    let mut ws = within(sockjet::connect(&format!("{server}/chat/{room}")))
        .await
        .unwrap();
    ws.send(serde_json::json!({ "type": "join", "nick": nick }).to_string())
        .await
        .unwrap();
    loop {
        let event = next_event(&mut ws).await;
        if event["type"] == "welcome" {
            return (ws, event);
        }
    }
}

/// Waits for a `message` event from `nick` with `text` on `ws`, skipping others.
async fn wait_for_line(ws: &mut Connection, nick: &str, text: &str) {
    loop {
        let event = next_event(ws).await;
        if event["type"] == "message" && event["nick"] == nick && event["text"] == text {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rooms_are_shared_by_two_servers_through_redis() {
    let redis = redis_server::RedisServer::start();
    let (server_a, server_b) = (
        demo_server(&redis.url()).await,
        demo_server(&redis.url()).await,
    );

    let (mut ada, _) = join(&server_a, "lobby", "ada").await;
    let (mut bob, _) = join(&server_b, "lobby", "bob").await;
    let (mut eve, _) = join(&server_b, "elsewhere", "eve").await;
    // Her own arrival is announced to her room, herself included.
    assert_eq!(next_event(&mut eve).await["type"], "joined");

    // Each server subscribes to a room when its first member joins; until both have, a
    // line may reach only one. Say numbered lines until one crosses (bounded).
    let mut crossed = None;
    for attempt in 0..50 {
        let text = format!("hello {attempt}");
        ada.send(serde_json::json!({ "type": "say", "text": text }).to_string())
            .await
            .unwrap();
        if tokio::time::timeout(
            Duration::from_millis(200),
            wait_for_line(&mut bob, "ada", &text),
        )
        .await
        .is_ok()
        {
            crossed = Some(text);
            break;
        }
    }
    let crossed = crossed.expect("a line from server A reached server B");

    // And back, from B to A, the sender's own server echoing it once.
    bob.send(r#"{"type":"say","text":"hi ada"}"#).await.unwrap();
    within(wait_for_line(&mut ada, "bob", "hi ada")).await;
    within(wait_for_line(&mut bob, "bob", "hi ada")).await;

    // A newcomer on B finds A's line in B's history.
    let (_carol, welcome) = join(&server_b, "lobby", "carol").await;
    let history = welcome["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|line| line["nick"] == "ada" && line["text"] == crossed.as_str()),
        "B's history has A's line: {history:?}"
    );

    // The other room heard none of it.
    let quiet = tokio::time::timeout(Duration::from_millis(300), eve.recv()).await;
    assert!(quiet.is_err(), "nothing reached another room: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_lists_cover_both_servers_and_forget_a_dead_one() {
    let redis = redis_server::RedisServer::start();
    let ttl = Duration::from_secs(2);
    let options = RedisOptions::default()
        .ttl(ttl)
        .reconcile_every(Duration::from_millis(200));
    let a = Process::start(&redis.url(), options).await;
    let (server_b, chat_b) = demo_server_with(&redis.url(), options).await;

    // Ada joins on A while nobody is on B: B never hears her `joined` notice.
    let (_ada, welcome) = join(&a.url, "lobby", "ada").await;
    assert_eq!(welcome["members"], json!(["ada"]));
    // Her presence record reaches Redis in the background: wait for it.
    let observer = RedisPresence::builder(&redis.url())
        .unwrap()
        .namespace("sockjet:demo:")
        .build();
    within(async {
        while observer.list("chat/lobby").await.map(|l| l.len()) != Ok(1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // A newcomer on B finds her in its welcome, and her nickname taken.
    let (mut bob, welcome) = join(&server_b, "lobby", "bob").await;
    assert_eq!(welcome["members"], json!(["bob", "ada"]));
    let (_ada2, welcome) = join(&server_b, "lobby", "ada").await;
    assert_eq!(welcome["nick"], "ada-2");
    assert_eq!(welcome["members"], json!(["bob", "ada-2", "ada"]));

    // A dies without a word: B's members are told that Ada left once her record expires.
    a.crash();
    let died = Instant::now();
    let left = within(async {
        loop {
            let event = next_event(&mut bob).await;
            if event["type"] == "left" {
                return event;
            }
        }
    })
    .await;
    let after = died.elapsed();
    assert_eq!(left["nick"], "ada", "{left}");
    assert_eq!(left["members"], json!(["bob", "ada-2"]));
    assert!(
        after < ttl * 3,
        "left {after:?} after the crash (TTL {ttl:?})"
    );
    assert_eq!(chat_b.members("lobby"), ["bob", "ada-2"]);
    let (_carol, welcome) = join(&server_b, "lobby", "carol").await;
    assert_eq!(welcome["members"], json!(["bob", "ada-2", "carol"]));
}
