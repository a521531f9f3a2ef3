//! Broadcast over loopback: every receiver gets the message, closed ones are skipped, and
//! a receiver that stops reading is dropped from (or closed by) broadcasts while the
//! others keep receiving everything.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{raw_client, server, within};
use sockjet::{
    Broadcast, CloseCode, ConnectionConfig, Message, Sender, SlowReceiver, broadcast, connect,
    proto::DeflateConfig,
};
use tokio::time::{Instant, sleep};

type Room = Arc<Mutex<Vec<Sender>>>;

/// A server whose handler puts every connection's sender in the room and holds the
/// connection open until the peer closes it.
async fn room_server(config: ConnectionConfig) -> (SocketAddr, Room) {
    let room: Room = Arc::default();
    let joined = room.clone();
    let addr = server(config, move |mut ws| {
        let joined = joined.clone();
        async move {
            joined.lock().unwrap().push(ws.sender());
            while let Ok(Some(_)) = ws.recv().await {}
        }
    })
    .await;
    (addr, room)
}

async fn wait_for_members(room: &Room, count: usize) -> Vec<Sender> {
    within(async {
        loop {
            let members = room.lock().unwrap().clone();
            if members.len() >= count {
                return members;
            }
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Waits (bounded) until nothing is left to write to any of `receivers`.
async fn drained(receivers: &[Sender]) {
    within(async {
        while receivers.iter().any(|r| r.buffered_amount() > 0) {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn every_receiver_gets_the_message_and_closed_ones_are_skipped() {
    let (addr, room) = room_server(ConnectionConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(within(connect(&format!("ws://{addr}"))).await.unwrap());
    }
    let members = wait_for_members(&room, 20).await;

    let report = broadcast(&members, "hello, room");
    assert_eq!(report.queued, 20);
    let big = Message::binary(vec![7u8; 100_000]);
    assert_eq!(broadcast(&members, big.clone()).queued, 20);
    for client in &mut clients {
        assert_eq!(
            within(client.recv()).await.unwrap(),
            Some(Message::text("hello, room"))
        );
        assert_eq!(within(client.recv()).await.unwrap(), Some(big.clone()));
    }

    // Five leave; the next broadcast skips them.
    for client in clients.drain(..5) {
        within(client.close(CloseCode::NORMAL_CLOSURE, "bye"))
            .await
            .unwrap();
    }
    within(async {
        while members.iter().filter(|m| m.is_closed()).count() < 5 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for member in members.iter().filter(|m| m.is_closed()) {
        let closed = within(member.closed()).await;
        assert_eq!(
            closed.code(),
            CloseCode::NORMAL_CLOSURE,
            "Sender::closed: {closed}"
        );
    }
    let report = broadcast(&members, "after");
    assert_eq!((report.queued, report.not_open), (15, 5));
    for client in &mut clients {
        assert_eq!(
            within(client.recv()).await.unwrap(),
            Some(Message::text("after"))
        );
    }
}

/// One raw client completes the handshake and never reads; two sockjet clients read
/// everything. Broadcasting far more than the kernel's socket buffers hold, the readers
/// must get every message in order, and the stalled receiver's queue must stay bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_stops_reading_misses_messages_while_others_get_all() {
    const MESSAGES: u32 = 20_000;
    const SIZE: usize = 1024;
    let write_limit = 64 * 1024;
    let (addr, room) = room_server(ConnectionConfig::default().write_limit(write_limit)).await;
    let stalled = raw_client(addr).await;
    let stalled_sender = wait_for_members(&room, 1).await.remove(0);
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut next = 0u32;
            while next < MESSAGES {
                let message = within(ws.recv()).await.unwrap().unwrap();
                let data = message.into_bytes();
                assert_eq!(data.len(), SIZE);
                assert_eq!(u32::from_be_bytes(data[..4].try_into().unwrap()), next);
                next += 1;
            }
            next
        }));
    }
    let members = wait_for_members(&room, 3).await;
    let fast: Vec<Sender> = members
        .iter()
        .filter(|m| m.id() != stalled_sender.id())
        .cloned()
        .collect();

    let started = Instant::now();
    let mut dropped = 0;
    for i in 0..MESSAGES {
        let mut payload = vec![0u8; SIZE];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        let report = broadcast(&members, payload);
        dropped += report.dropped;
        assert_eq!(report.queued + report.dropped, 3, "message {i}: {report:?}");
        // The stalled receiver never holds more than its limit and one message.
        assert!(stalled_sender.buffered_amount() <= write_limit + SIZE + 14);
        if i % 64 == 63 {
            // Pace on the readers only, as an application would; never on the stalled one.
            drained(&fast).await;
        }
    }
    for reader in readers {
        assert_eq!(within(reader).await.unwrap(), MESSAGES);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        dropped > 0,
        "20 MB cannot fit in the stalled receiver's buffers"
    );
    assert_eq!(stalled_sender.dropped_messages(), dropped as u64);
    for reader in &fast {
        assert_eq!(reader.dropped_messages(), 0);
    }
    drop(stalled);
}

#[tokio::test]
async fn the_close_policy_closes_a_stalled_receiver_with_its_code() {
    let config = ConnectionConfig::default()
        .write_limit(16 * 1024)
        .close_timeout(Some(Duration::from_millis(300)));
    let (addr, room) = room_server(config).await;
    let stalled = raw_client(addr).await;
    let members = wait_for_members(&room, 1).await;
    let mut tick = Broadcast::new(Message::binary(vec![1u8; 4096]))
        .slow_receiver(SlowReceiver::Close(CloseCode::TRY_AGAIN_LATER));
    let mut closed = 0;
    for _ in 0..10_000 {
        let report = tick.send_to(&members);
        closed += report.closed;
        if report.closed + report.not_open > 0 {
            break;
        }
    }
    assert_eq!(closed, 1, "closed once the queue was full");
    // The peer never answers the close: the close timeout ends the connection.
    within(async {
        while !members[0].is_closed() {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(tick.send_to(&members).not_open, 1);
    drop(stalled);
}

#[tokio::test]
async fn broadcasts_are_compressed_per_receivers_settings() {
    // Without context takeover the compressed frame is shared; with it, each connection
    // compresses on its own. Either way every client reads the original text.
    for server_no_context_takeover in [true, false] {
        let deflate =
            DeflateConfig::default().server_no_context_takeover(server_no_context_takeover);
        let config = ConnectionConfig::default().compression(Some(deflate));
        let (addr, room) = room_server(config).await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
            assert!(ws.is_compressed());
            clients.push(ws);
        }
        let members = wait_for_members(&room, 3).await;
        let mut tick = Broadcast::new(Message::text("{\"price\": 101.25}".repeat(50)));
        for _ in 0..3 {
            assert_eq!(tick.send_to(&members).queued, 3);
        }
        for client in &mut clients {
            for _ in 0..3 {
                let message = within(client.recv()).await.unwrap().unwrap();
                assert_eq!(
                    message.as_text(),
                    Some("{\"price\": 101.25}".repeat(50).as_str())
                );
            }
        }
    }
}

/// A weak sender reaches the connection while its handler holds it, and does not keep it
/// open after: the handler's return closes it (1000), and upgrading fails from then on.
#[tokio::test]
async fn weak_senders_receive_broadcasts_but_do_not_keep_connections_open() {
    let weak_room: Arc<Mutex<Vec<sockjet::WeakSender>>> = Arc::default();
    let joined = weak_room.clone();
    let addr = server(ConnectionConfig::default(), move |mut ws| {
        let joined = joined.clone();
        async move {
            joined.lock().unwrap().push(ws.sender().downgrade());
            // Returns at the first message, dropping every strong handle.
            let _ = ws.recv().await;
        }
    })
    .await;
    let mut client = within(connect(&format!("ws://{addr}"))).await.unwrap();
    let member = within(async {
        loop {
            if let Some(member) = weak_room.lock().unwrap().first().cloned() {
                return member;
            }
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        member.upgrade().is_some(),
        "the handler still holds the connection"
    );
    let report = broadcast([&member], "to the weak");
    assert_eq!(report.queued, 1);
    let received = within(client.recv()).await.unwrap().unwrap();
    assert_eq!(received.as_text(), Some("to the weak"));

    client.send("bye").await.unwrap();
    assert!(within(client.recv()).await.unwrap().is_none());
    assert_eq!(
        within(member.closed()).await.code(),
        CloseCode::NORMAL_CLOSURE
    );
    assert!(member.is_closed());
    assert!(member.upgrade().is_none(), "no handle left to upgrade to");
    assert_eq!(broadcast([&member], "too late").not_open, 1);
}

/// Broadcast output is written by each connection's driver when the socket cannot take
/// it at once; on a multi-threaded runtime the driver is woken from other threads (the
/// socket's readiness, the broadcasting task). 16 MiB broadcast in one go to each of 4
/// receivers that read as fast as they can must all arrive: a lost wakeup would stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_output_beyond_the_socket_buffers_is_flushed_from_other_threads() {
    const MESSAGES: usize = 1024;
    const SIZE: usize = 16 * 1024;
    const RECEIVERS: usize = 4;
    let config = ConnectionConfig::default().write_limit(64 << 20);
    let (addr, room) = room_server(config).await;
    let mut clients = Vec::new();
    for _ in 0..RECEIVERS {
        clients.push(within(connect(&format!("ws://{addr}"))).await.unwrap());
    }
    let members = wait_for_members(&room, RECEIVERS).await;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut received = 0;
                while received < MESSAGES {
                    match within(client.recv()).await {
                        Ok(Some(message)) => {
                            assert_eq!(message.as_bytes().len(), SIZE);
                            received += 1;
                        }
                        other => panic!("after {received} messages: {other:?}"),
                    }
                }
                received
            })
        })
        .collect();
    // From another task, so that the flushes are the drivers' to finish.
    tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![7u8; SIZE]);
        for _ in 0..MESSAGES {
            let report = broadcast(&members, Message::Binary(payload.clone()));
            assert_eq!(report.queued, RECEIVERS, "{report:?}");
        }
    })
    .await
    .unwrap();
    for reader in readers {
        assert_eq!(within(reader).await.unwrap(), MESSAGES);
    }
}
