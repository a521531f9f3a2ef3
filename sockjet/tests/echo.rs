//! End-to-end over loopback: sockjet client against sockjet server.

mod common;

use std::time::Duration;

use common::{echo_server, server, within};
use futures_util::{SinkExt, StreamExt};
use sockjet::{ClientBuilder, CloseCode, ConnectionConfig, ErrorKind, Message, connect};

#[tokio::test]
async fn client_echoes_text_binary_and_large_messages() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut ws = within(connect(&format!("ws://{addr}/echo"))).await.unwrap();
    ws.send("héllo").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text("héllo"))
    );
    ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::binary(vec![0u8, 1, 2, 255]))
    );
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(big.clone()).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Some(Message::binary(big)));
    ws.send("").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Some(Message::text("")));
}

/// Reads adapt to the size of what comes (a scratch buffer for small reads, the
/// connection's own buffer for large ones): mixing sizes on one connection, in both
/// directions, must deliver every message intact.
#[tokio::test]
async fn message_sizes_can_alternate_on_one_connection() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    let sizes = [
        16, 20_000, 20_000, 5, 70_000, 300_000, 3, 9_000, 0, 16_384, 1,
    ];
    for (round, &size) in sizes.iter().cycle().take(3 * sizes.len()).enumerate() {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + round) as u8).collect();
        ws.send(payload.clone()).await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Some(Message::binary(payload)),
            "round {round}, {size} bytes"
        );
    }
}

#[tokio::test]
async fn client_pipelines_many_messages_in_order() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    let (mut rx, tx) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..5000u32 {
            tx.send(i.to_string()).await.unwrap();
        }
        tx
    });
    for i in 0..5000u32 {
        let message = within(rx.recv()).await.unwrap().unwrap();
        assert_eq!(message.as_text(), Some(i.to_string().as_str()));
    }
    drop(within(writer).await.unwrap());
}

#[tokio::test]
async fn client_close_gives_none_after_normal_closure() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    within(ws.close(CloseCode::NORMAL_CLOSURE, "done"))
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), None);
    let closed = within(ws.closed()).await;
    assert_eq!(closed.sent.unwrap().code, CloseCode::NORMAL_CLOSURE);
    assert_eq!(closed.rcvd.as_ref().unwrap().reason, "done");
    assert_eq!(closed.rcvd_then_sent, Some(false));
    assert_eq!(ws.state(), sockjet::State::Closed);
}

#[tokio::test]
async fn server_close_with_application_code_reaches_client_as_error() {
    let addr = server(ConnectionConfig::default(), |ws| async move {
        let _ = ws.close(CloseCode::from(4001), "bye").await;
    })
    .await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Closed);
    let closed = error.closed().unwrap();
    assert_eq!(closed.rcvd.as_ref().unwrap().code, CloseCode::from(4001));
    assert_eq!(closed.rcvd.as_ref().unwrap().reason, "bye");
    assert_eq!(closed.rcvd_then_sent, Some(true));
    // Sending after the close is an error, not a panic.
    assert!(ws.send("late").await.is_err());
}

#[tokio::test]
async fn handler_returning_closes_with_1000() {
    let addr = server(ConnectionConfig::default(), |ws| async move {
        ws.send("only message").await.unwrap();
    })
    .await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text("only message"))
    );
    assert_eq!(within(ws.recv()).await.unwrap(), None);
    let closed = within(ws.closed()).await;
    assert_eq!(closed.code(), CloseCode::NORMAL_CLOSURE);
}

#[tokio::test]
async fn handler_sees_path_and_headers() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = server(ConnectionConfig::default(), move |ws| {
        let tx = tx.clone();
        async move {
            let agent = ws.request().headers()["user-agent"]
                .to_str()
                .unwrap()
                .to_owned();
            tx.send((
                ws.path().to_owned(),
                ws.request().uri().query().map(str::to_owned),
                agent,
            ))
            .unwrap();
        }
    })
    .await;
    let _ws = within(connect(&format!("ws://{addr}/chat/lobby?token=abc")))
        .await
        .unwrap();
    let (path, query, agent) = within(rx.recv()).await.unwrap();
    assert_eq!(path, "/chat/lobby");
    assert_eq!(query.as_deref(), Some("token=abc"));
    assert!(agent.starts_with("sockjet/"));
}

#[tokio::test]
async fn ping_returns_round_trip_time_and_sets_latency() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    assert_eq!(ws.latency(), None);
    let rtt = within(ws.ping()).await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    assert_eq!(ws.latency(), Some(rtt));
}

#[tokio::test]
async fn stream_and_sink_work() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    for i in 0..10 {
        ws.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    let got: Vec<_> = within((&mut ws).take(10).collect::<Vec<_>>()).await;
    assert_eq!(got.len(), 10);
    assert_eq!(got[9].as_ref().unwrap().as_text(), Some("m9"));
    within(SinkExt::close(&mut ws)).await.unwrap();
    assert!(within(ws.next()).await.is_none());
}

#[tokio::test]
async fn client_errors_are_clear() {
    let error = connect("http://127.0.0.1:1").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    // Nothing listens on port 1 on loopback.
    let error = within(connect("ws://127.0.0.1:1")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(error.to_string().contains("refused"), "{error}");
}

#[tokio::test]
async fn oversized_message_fails_with_1009_and_server_survives() {
    let addr = echo_server(ConnectionConfig::default().max_message_size(Some(1024))).await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    ws.send(vec![0u8; 2048]).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.closed().unwrap().code(),
        CloseCode::MESSAGE_TOO_BIG,
        "{error}"
    );
    common::assert_still_serves(addr).await;
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    // Cancel a recv that is waiting, then receive normally.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), ws.recv())
            .await
            .is_err()
    );
    ws.send("after cancel").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text("after cancel"))
    );
}

#[tokio::test]
async fn pings_are_answered_while_the_application_does_not_read() {
    // The server never calls recv(); the client's ping must still get its pong.
    let addr = server(ConnectionConfig::default(), |ws| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    })
    .await;
    let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    let rtt = within(ws.ping()).await.unwrap();
    assert!(rtt < Duration::from_secs(2), "{rtt:?}");
}

#[test]
fn multi_thread_runtime_echo() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr = echo_server(ConnectionConfig::default()).await;
        let mut tasks = Vec::new();
        for c in 0..8 {
            tasks.push(tokio::spawn(async move {
                let mut ws = ClientBuilder::new(format!("ws://{addr}"))
                    .connect()
                    .await
                    .unwrap();
                for i in 0..200 {
                    let text = format!("{c}-{i}");
                    ws.send(text.clone()).await.unwrap();
                    assert_eq!(
                        ws.recv().await.unwrap().unwrap().as_text(),
                        Some(text.as_str())
                    );
                }
                ws.close(CloseCode::NORMAL_CLOSURE, "").await.unwrap();
            }));
        }
        for task in tasks {
            within(task).await.unwrap();
        }
    });
}

#[tokio::test]
async fn pings_are_answered_after_the_application_stops_reading() {
    // The server reads one message (so its recv() owned the socket), then stops reading:
    // the driver must notice and take over, or the client's ping would go unanswered.
    let addr = server(ConnectionConfig::default(), |mut ws| async move {
        let _ = ws.recv().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    })
    .await;
    let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    // Let the server park in recv() long enough for its driver to stop watching.
    tokio::time::sleep(Duration::from_millis(700)).await;
    ws.send("wake up").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rtt = within(ws.ping()).await.unwrap();
    assert!(rtt < Duration::from_secs(2), "{rtt:?}");
}

#[tokio::test]
async fn compression_is_negotiated_by_default_and_can_be_turned_off() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    assert!(ws.is_compressed());
    let text = "compress me ".repeat(1000);
    ws.send(text.clone()).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text(text.clone()))
    );
    ws.send_uncompressed(text.clone()).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Some(Message::text(text)));

    let mut plain = ClientBuilder::new(format!("ws://{addr}"))
        .connection(ConnectionConfig::default().compression(None))
        .connect()
        .await
        .unwrap();
    assert!(!plain.is_compressed());
    plain.send("plain").await.unwrap();
    assert_eq!(
        within(plain.recv()).await.unwrap(),
        Some(Message::text("plain"))
    );

    let addr = echo_server(ConnectionConfig::default().compression(None)).await;
    let ws = within(connect(&format!("ws://{addr}"))).await.unwrap();
    assert!(!ws.is_compressed());
}

#[tokio::test]
async fn decompression_bomb_is_refused_with_1009_and_the_server_survives() {
    let addr = echo_server(ConnectionConfig::default()).await;
    // The client allows itself big messages; the server keeps its 1 MiB limit. 32 MiB of
    // zeros compress to about 32 KiB on the wire.
    let mut ws = ClientBuilder::new(format!("ws://{addr}"))
        .connection(ConnectionConfig::default().max_message_size(Some(64 << 20)))
        .connect()
        .await
        .unwrap();
    assert!(ws.is_compressed());
    ws.send(vec![0u8; 32 << 20]).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.closed().unwrap().code(),
        CloseCode::MESSAGE_TOO_BIG,
        "{error}"
    );
    common::assert_still_serves(addr).await;
}
