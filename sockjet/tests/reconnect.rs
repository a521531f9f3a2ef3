//! Automatic reconnection: a scripted WebSocket server (handshake by hand, then a close
//! code, a dropped TCP connection or an HTTP status) and the backoff between attempts.

mod client_support;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use client_support::{header, read_head, within};
use sockjet::{Backoff, ClientBuilder, Error, ErrorKind, proto::HandshakeError};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the scripted server does with one connection.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Completes the handshake, then closes with this code at once.
    Close(u16),
    /// Completes the handshake, waits, then closes with this code.
    CloseAfter(Duration, u16),
    /// Completes the handshake, then drops the TCP connection without a close frame.
    Drop,
    /// Answers the handshake with this HTTP status.
    Status(u16),
}

/// A server that plays `script`, one step per connection (the last step repeats), and
/// counts connections.
async fn scripted_server(script: Vec<Then>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let index = count.fetch_add(1, Ordering::SeqCst);
            let step = script[index.min(script.len() - 1)];
            tokio::spawn(play(stream, step));
        }
    });
    (addr, accepted)
}

async fn play(mut stream: TcpStream, step: Then) {
    let head = read_head(&mut stream).await;
    if let Then::Status(status) = step {
        let answer = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\n\r\n");
        let _ = stream.write_all(answer.as_bytes()).await;
        return;
    }
    let key = header(&head, "sec-websocket-key").unwrap();
    let accept = sockjet::proto::handshake::accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    let code = match step {
        Then::Close(code) => code,
        Then::CloseAfter(wait, code) => {
            let mut client_close = [0u8; 64];
            tokio::select! {
                () = tokio::time::sleep(wait) => code,
                _ = stream.read(&mut client_close) => {
                    // The client closed first: answer its close frame and end.
                    let _ = stream.write_all(&[0x88, 2, 0x03, 0xE8]).await;
                    return;
                }
            }
        }
        Then::Drop | Then::Status(_) => return,
    };
    // An unmasked server close frame with the code (RFC 6455 §5.5.1).
    let [high, low] = code.to_be_bytes();
    let _ = stream.write_all(&[0x88, 2, high, low]).await;
    // Wait for the client's close frame, then close TCP first, as the server should.
    let mut reply = [0u8; 64];
    let _ = within(stream.read(&mut reply)).await;
}

/// Quick delays, so that the tests take milliseconds.
fn quick() -> Backoff {
    Backoff::default()
        .initial_delay(Duration::from_millis(1))
        .min_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(20))
}

/// Why each retry happened: the close code, or the error kind and HTTP status.
type Retries = Arc<Mutex<Vec<(String, Duration)>>>;

fn recording(retries: &Retries) -> impl FnMut(&Error, Duration) + Send + 'static {
    let retries = retries.clone();
    move |why, delay| {
        let reason = match (why.closed(), why.handshake_error()) {
            (Some(closed), _) => format!("closed {}", closed.code().as_u16()),
            (None, Some(HandshakeError::UnexpectedStatus(status))) => {
                format!("status {}", status.as_u16())
            }
            _ => format!("{:?}", why.kind()),
        };
        retries.lock().unwrap().push((reason, delay));
    }
}

/// A series of connections to `addr` with [`quick`] delays, its retries recorded.
fn recorded_series(addr: SocketAddr, retries: &Retries) -> sockjet::Reconnecting {
    ClientBuilder::new(format!("ws://{addr}/"))
        .reconnecting()
        .backoff(quick())
        .on_retry(recording(retries))
}

/// The reasons of the retries so far.
fn reasons(retries: &Retries) -> Vec<String> {
    let retries = retries.lock().unwrap();
    retries.iter().map(|(why, _)| why.clone()).collect()
}

/// Takes every connection of `connections` until the series ends, reading each to its
/// end; returns how many there were.
async fn drain(connections: &mut sockjet::Reconnecting) -> Result<usize, Error> {
    let mut opened = 0;
    while let Some(mut ws) = within(connections.next()).await? {
        opened += 1;
        assert!(opened < 20, "runaway reconnection");
        while let Ok(Some(_)) = within(ws.recv()).await {}
    }
    Ok(opened)
}

#[tokio::test]
async fn reconnects_after_1011_1012_and_a_dropped_connection_until_1000() {
    let script = vec![
        Then::Close(1011),
        Then::Close(1012),
        Then::Drop,
        Then::Close(1001),
        Then::Close(1000),
    ];
    let (addr, accepted) = scripted_server(script).await;
    let retries = Retries::default();
    let mut connections = recorded_series(addr, &retries);
    assert_eq!(drain(&mut connections).await.unwrap(), 5);
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    assert_eq!(
        reasons(&retries),
        ["closed 1011", "closed 1012", "closed 1006", "closed 1001"]
    );
    // Over: no more attempts.
    assert!(within(connections.next()).await.unwrap().is_none());
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn an_application_close_code_ends_the_series() {
    for code in [4001, 1000, 1008] {
        let (addr, accepted) = scripted_server(vec![Then::Close(code)]).await;
        let mut connections = ClientBuilder::new(format!("ws://{addr}/"))
            .reconnecting()
            .backoff(quick());
        assert_eq!(drain(&mut connections).await.unwrap(), 1, "{code}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "{code}");
    }
}

#[tokio::test]
async fn closing_the_connection_ourselves_ends_the_series() {
    let (addr, accepted) =
        scripted_server(vec![Then::CloseAfter(Duration::from_secs(60), 1011)]).await;
    let mut connections = ClientBuilder::new(format!("ws://{addr}/"))
        .reconnecting()
        .backoff(quick());
    let ws = within(connections.next()).await.unwrap().unwrap();
    // Dropping the connection closes it with 1000: the application is done.
    drop(ws);
    assert!(within(connections.next()).await.unwrap().is_none());
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_end_the_series() {
    let script = vec![Then::Status(503), Then::Status(500), Then::Close(1000)];
    let (addr, accepted) = scripted_server(script).await;
    let retries = Retries::default();
    let mut connections = recorded_series(addr, &retries);
    assert_eq!(drain(&mut connections).await.unwrap(), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(reasons(&retries), ["status 503", "status 500"]);

    for status in [403, 404] {
        let (addr, accepted) = scripted_server(vec![Then::Status(status)]).await;
        let mut connections = ClientBuilder::new(format!("ws://{addr}/"))
            .reconnecting()
            .backoff(quick());
        let error = drain(&mut connections).await.unwrap_err();
        assert_eq!(
            error.handshake_error(),
            Some(&HandshakeError::UnexpectedStatus(
                http::StatusCode::from_u16(status).unwrap()
            ))
        );
        assert!(within(connections.next()).await.unwrap().is_none());
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "{status}");
    }
}

#[tokio::test]
async fn refused_connections_are_retried_until_the_server_is_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let retries = Retries::default();
    let mut connections = recorded_series(addr, &retries);
    let next = tokio::spawn(async move { within(connections.next()).await.map(|ws| ws.is_some()) });
    // Let a few attempts fail, then start the server on that port.
    while retries.lock().unwrap().len() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = sockjet::Server::bind(addr).await.unwrap();
    tokio::spawn(server.serve(|ws| async move {
        let _ = ws.close(sockjet::CloseCode::NORMAL_CLOSURE, "").await;
    }));
    assert!(within(next).await.unwrap().unwrap());
    assert!(retries.lock().unwrap().iter().all(|(why, _)| why == "Io"));
}

#[tokio::test]
async fn the_series_starts_over_after_a_long_enough_connection() {
    let long = Duration::from_millis(600);
    let script = vec![
        Then::Close(1011),
        Then::Close(1011),
        Then::CloseAfter(long, 1011),
        Then::Close(1011),
        Then::Close(1000),
    ];
    let (addr, _) = scripted_server(script).await;
    let retries = Retries::default();
    let backoff = Backoff::default()
        .initial_delay(Duration::from_millis(1))
        .min_delay(Duration::from_millis(10))
        .factor(2.0)
        .max_delay(Duration::from_millis(40))
        .reset_after(Duration::from_millis(300));
    let mut connections = ClientBuilder::new(format!("ws://{addr}/"))
        .reconnecting()
        .backoff(backoff)
        .on_retry(recording(&retries));
    assert_eq!(drain(&mut connections).await.unwrap(), 5);
    let delays: Vec<Duration> = retries
        .lock()
        .unwrap()
        .iter()
        .map(|(_, delay)| *delay)
        .collect();
    assert_eq!(delays.len(), 4);
    assert!(delays[0] <= Duration::from_millis(1), "{delays:?}");
    assert_eq!(delays[1], Duration::from_millis(10));
    // The third connection lived past reset_after: a new series, starting with the
    // random initial delay.
    assert!(delays[2] <= Duration::from_millis(1), "{delays:?}");
    assert_eq!(delays[3], Duration::from_millis(10));
}

/// With tokio's paused clock, each failed attempt (a missing Unix socket fails at once,
/// without waiting on the network) sleeps in virtual time: the delays and the times of
/// the attempts can be checked exactly.
#[cfg(unix)]
#[tokio::test(start_paused = true)]
async fn backoff_delays_grow_and_are_bounded() {
    use tokio::time::Instant;
    let missing = client_support::TempPath::new("nothing-listens.sock");
    let attempts = Arc::new(Mutex::new(Vec::<(Instant, Duration)>::new()));
    let record = attempts.clone();
    let mut connections = ClientBuilder::new("ws://localhost/")
        .unix_socket(&missing.0)
        .reconnecting()
        .on_retry(move |why, delay| {
            assert_eq!(why.kind(), ErrorKind::Io, "{why}");
            record.lock().unwrap().push((Instant::now(), delay));
        });
    let half_an_hour = Duration::from_secs(30 * 60);
    let outcome = tokio::time::timeout(half_an_hour, connections.next()).await;
    assert!(outcome.is_err(), "a missing socket is retried for ever");

    let attempts = attempts.lock().unwrap().clone();
    let delays: Vec<Duration> = attempts.iter().map(|(_, delay)| *delay).collect();
    let defaults = Backoff::default();
    assert!(delays.len() > 15, "{delays:?}");
    assert!(delays[0] <= defaults.initial_delay, "{delays:?}");
    assert_eq!(delays[1], Duration::from_millis(3100));
    for pair in delays[1..].windows(2) {
        let grown = pair[0].mul_f64(1.618).min(defaults.max_delay);
        let difference = pair[1].abs_diff(grown);
        assert!(difference < Duration::from_millis(1), "{pair:?}");
    }
    assert!(delays.iter().all(|delay| *delay <= defaults.max_delay));
    assert_eq!(*delays.last().unwrap(), defaults.max_delay);
    // Each attempt came one delay after the one before.
    for pair in attempts.windows(2) {
        let waited = pair[1].0 - pair[0].0;
        assert!(
            waited.abs_diff(pair[0].1) < Duration::from_millis(1),
            "{pair:?}"
        );
    }
}
