//! Per-connection rate limits over real sockets: a flooding client is closed with 1008 and
//! the reason, while a well-behaved client of the same server goes on; the drop mode
//! counts what it drops and keeps the connection.

mod policy_common;

use std::net::SocketAddr;

use policy_common::*;
use sockjet::{
    CloseCode, Connection, ConnectionConfig, Message, RateLimit, RateLimitAction, Server,
};
use tokio::sync::mpsc;

/// An echo server with `limit`; each handler reports how its `recv` ended.
async fn limited_echo(limit: RateLimit) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (report, reports) = mpsc::unbounded_channel();
    let config = ConnectionConfig::default().rate_limit(Some(limit));
    let addr = start(Server::builder().connection(config), move |mut ws| {
        let report = report.clone();
        async move {
            let ending = loop {
                match ws.recv().await {
                    Ok(Some(message)) => {
                        if ws.send(message).await.is_err() {
                            break "send failed".to_owned();
                        }
                    }
                    Ok(None) => break "closed normally".to_owned(),
                    Err(error) => {
                        let sent = error.closed().and_then(|closed| closed.sent.clone());
                        break match sent {
                            Some(frame) => format!("sent {} {}", frame.code.as_u16(), frame.reason),
                            None => format!("error {error}"),
                        };
                    }
                }
            };
            let _ = report.send(ending);
        }
    })
    .await;
    (addr, reports)
}

/// Sends `count` messages as fast as possible from another task, and reads until the
/// connection ends; returns how many echoes came back and the close frame received.
async fn flood(
    mut ws: Connection,
    count: usize,
    size: usize,
) -> (usize, Option<(CloseCode, String)>) {
    let sender = ws.sender();
    let flooding = tokio::spawn(async move {
        for _ in 0..count {
            if sender.send(Message::binary(vec![0u8; size])).await.is_err() {
                break;
            }
        }
    });
    let mut echoes = 0;
    let closed = loop {
        match within(ws.recv()).await {
            Ok(Some(_)) => echoes += 1,
            Ok(None) => break None,
            Err(error) => {
                break error
                    .closed()
                    .and_then(|closed| closed.rcvd.clone())
                    .map(|frame| (frame.code, frame.reason.as_str().to_owned()));
            }
        }
    };
    within(flooding).await.unwrap();
    (echoes, closed)
}

#[tokio::test]
async fn a_flood_is_closed_with_1008_while_a_calm_client_goes_on() {
    let (addr, mut reports) = limited_echo(RateLimit::messages_per_second(5).burst(10)).await;
    let mut calm = connect_with(addr, "/calm", &[]).await.unwrap();
    let flooder = connect_with(addr, "/flood", &[]).await.unwrap();

    let (echoes, closed) = flood(flooder, 500, 16).await;
    assert_eq!(
        closed,
        Some((
            CloseCode::POLICY_VIOLATION,
            "rate limit exceeded".to_owned()
        ))
    );
    // The burst passed, then at most a few more (refilled at 5 per second while flooding).
    assert!((10..500).contains(&echoes), "{echoes} echoes");
    assert_eq!(
        within(reports.recv()).await.unwrap(),
        "sent 1008 rate limit exceeded"
    );

    // The calm client, on the same server, is untouched.
    for round in 0..5 {
        let text = format!("calm {round}");
        calm.send(text.as_str()).await.unwrap();
        assert_eq!(first_text(&mut calm).await, text);
    }
    calm.close(CloseCode::NORMAL_CLOSURE, "").await.unwrap();
    assert_eq!(within(reports.recv()).await.unwrap(), "closed normally");
}

#[tokio::test]
async fn a_byte_flood_is_closed_too() {
    let limit = RateLimit::unlimited().bytes_per_second(10_000);
    let (addr, mut reports) = limited_echo(limit).await;
    let flooder = connect_with(addr, "/", &[]).await.unwrap();
    let (echoes, closed) = flood(flooder, 200, 1000).await;
    assert_eq!(
        closed.map(|(code, _)| code),
        Some(CloseCode::POLICY_VIOLATION)
    );
    assert!((10..200).contains(&echoes), "{echoes} echoes");
    assert_eq!(
        within(reports.recv()).await.unwrap(),
        "sent 1008 rate limit exceeded"
    );
}

#[tokio::test]
async fn the_drop_mode_counts_and_keeps_the_connection() {
    let (report, mut reports) = mpsc::unbounded_channel();
    let limit = RateLimit::messages_per_second(1)
        .burst(3)
        .on_exceeded(RateLimitAction::Drop);
    let config = ConnectionConfig::default().rate_limit(Some(limit));
    let addr = start(Server::builder().connection(config), move |mut ws| {
        let report = report.clone();
        async move {
            let mut received = 0;
            let ending = loop {
                match ws.recv().await {
                    Ok(Some(_)) => received += 1,
                    Ok(None) => break "closed normally".to_owned(),
                    Err(error) => break format!("error {error}"),
                }
            };
            let _ = report.send((received, ws.rate_limited(), ending));
        }
    })
    .await;
    let ws = connect_with(addr, "/", &[]).await.unwrap();
    for _ in 0..20 {
        ws.send("spam").await.unwrap();
    }
    // The connection is still open for the client: a normal close goes through.
    within(ws.close(CloseCode::NORMAL_CLOSURE, "done"))
        .await
        .unwrap();
    let (received, dropped, ending) = within(reports.recv()).await.unwrap();
    assert_eq!(ending, "closed normally");
    assert_eq!(
        received + dropped,
        20,
        "{received} received, {dropped} dropped"
    );
    // The burst of 3 passed, and at one message per second, few more did.
    assert!(
        received >= 3 && dropped >= 10,
        "{received} received, {dropped} dropped"
    );
}
