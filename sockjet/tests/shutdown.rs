//! Graceful shutdown over loopback TCP: 1001 to every connection after everything the
//! server had sent, the listening socket closed, the shutdown timeout enforced against
//! clients that never answer and handlers that never return, and handshakes that finish
//! during shutdown.

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{REQUEST, close_code_in, masked_frame, raw_client, read_to_end, within};
use sockjet::{CloseCode, Connection, ConnectionConfig, Server, ServerBuilder, ShutdownHandle};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

/// A server with its shutdown handle and the task running `serve`.
struct Running {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    serving: JoinHandle<std::io::Result<()>>,
}

async fn start<H, F>(builder: ServerBuilder, handler: H) -> Running
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(handler));
    Running {
        addr,
        shutdown,
        serving,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_message_sent_arrives_before_1001() {
    const CLIENTS: usize = 4;
    // Per client tag: how many echoes the server's handler sent successfully.
    let sent: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let record = sent.clone();
    let running = start(Server::builder(), move |mut ws: Connection| {
        let record = record.clone();
        async move {
            let Ok(Some(tag)) = ws.recv().await else {
                return;
            };
            let tag = tag.as_text().unwrap_or_default().to_owned();
            let mut count = 0;
            while let Ok(Some(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
                count += 1;
                record.lock().unwrap().insert(tag.clone(), count);
            }
        }
    })
    .await;

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let addr = running.addr;
        clients.push(tokio::spawn(async move {
            let (mut ws, sender) = within(sockjet::connect(&format!("ws://{addr}")))
                .await
                .unwrap()
                .split();
            sender.send(format!("client {client}")).await.unwrap();
            // Streams numbered messages until the connection closes.
            let streaming = tokio::spawn(async move {
                for number in 0u64..1_000_000 {
                    if sender.send(number.to_string()).await.is_err() {
                        break;
                    }
                    if number % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
            let mut received = 0u64;
            let end = loop {
                match within(ws.recv()).await {
                    Ok(Some(message)) => {
                        assert_eq!(message.as_text(), Some(received.to_string().as_str()));
                        received += 1;
                    }
                    Ok(None) => break None,
                    Err(error) => break Some(error),
                }
            };
            assert!(end.is_none(), "client {client}: {end:?}");
            let closed = within(ws.closed()).await;
            streaming.abort();
            (format!("client {client}"), received, closed)
        }));
    }
    // Let the load run, with every client well past its first echoes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    running.shutdown.shutdown();
    within(running.serving).await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "serve returned after {took:?}"
    );

    for client in clients {
        let (tag, received, closed) = within(client).await.unwrap();
        let rcvd = closed.rcvd.clone().expect("a close frame from the server");
        assert_eq!(rcvd.code, CloseCode::GOING_AWAY, "{tag}: {closed}");
        assert_eq!(rcvd.reason, "server shutting down", "{tag}");
        let sent = sent.lock().unwrap().get(&tag).copied().unwrap_or(0);
        assert!(received > 0, "{tag}: no load before the shutdown");
        assert_eq!(received, sent, "{tag}: sent {sent}, received {received}");
    }
}

#[tokio::test]
async fn listening_socket_closes_and_serve_returns_with_no_connection() {
    let running = start(Server::builder(), |ws| async move { drop(ws) }).await;
    running.shutdown.shutdown();
    within(running.serving).await.unwrap().unwrap();
    let refused = TcpStream::connect(running.addr).await;
    assert!(refused.is_err(), "still accepting: {refused:?}");
}

#[tokio::test]
async fn shutdown_before_serving_starts_and_a_signal_future_both_work() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let handle = server.shutdown_handle();
    handle.shutdown();
    handle.clone().shutdown();
    within(server.serve(|ws| async move { drop(ws) }))
        .await
        .unwrap();

    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(
        |mut ws: Connection| async move { while let Ok(Some(_)) = ws.recv().await {} },
        async {
            let _ = signalled.await;
        },
    ));
    let mut ws = within(sockjet::connect(&format!("ws://{addr}")))
        .await
        .unwrap();
    signal.send(()).unwrap();
    assert!(within(ws.recv()).await.unwrap().is_none());
    assert_eq!(within(ws.closed()).await.code(), CloseCode::GOING_AWAY);
    within(serving).await.unwrap().unwrap();
}

#[tokio::test]
async fn client_that_never_answers_the_close_is_cut_at_the_shutdown_timeout() {
    let timeout = Duration::from_millis(500);
    let running = start(
        // The close timeout alone would wait 10 s.
        Server::builder()
            .shutdown_timeout(timeout)
            .connection(ConnectionConfig::default().close_timeout(Some(Duration::from_secs(10)))),
        |mut ws: Connection| async move { while let Ok(Some(_)) = ws.recv().await {} },
    )
    .await;
    // Completes the handshake, then never reads nor writes.
    let mut mute = raw_client(running.addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    running.shutdown.shutdown();
    within(running.serving).await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
    // It got the close frame, then the connection ended.
    let rest = read_to_end(&mut mute).await;
    assert_eq!(close_code_in(&rest), Some(1001), "{rest:?}");
}

#[tokio::test]
async fn handler_that_never_returns_is_dropped_at_the_shutdown_timeout() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let running = start(
        Server::builder().shutdown_timeout(Duration::from_millis(300)),
        move |ws: Connection| {
            let guard = SetOnDrop(flag.clone());
            async move {
                let _guard = guard;
                let _ws = ws;
                std::future::pending::<()>().await;
            }
        },
    )
    .await;
    let mut ws = within(sockjet::connect(&format!("ws://{}", running.addr)))
        .await
        .unwrap();
    running.shutdown.shutdown();
    // The client answers the close at once; the handler still does not return.
    assert!(within(ws.recv()).await.unwrap().is_none());
    within(running.serving).await.unwrap().unwrap();
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler was never dropped"
    );
}

#[tokio::test]
async fn handshake_finishing_during_shutdown_is_closed_with_1001_without_the_handler() {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    let running = start(Server::builder(), move |ws: Connection| {
        count.fetch_add(1, Ordering::SeqCst);
        async move { drop(ws) }
    })
    .await;
    let mut late = TcpStream::connect(running.addr).await.unwrap();
    let (first, rest) = REQUEST.split_at(20);
    late.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.shutdown.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Shutdown waits for this connection, which is still in its handshake.
    assert!(!running.serving.is_finished());
    late.write_all(rest.as_bytes()).await.unwrap();
    let head = common::read_head(&mut late).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut frames = Vec::new();
    while close_code_in(&frames).is_none() {
        let mut buf = [0u8; 256];
        let read = within(late.read(&mut buf)).await.unwrap();
        assert!(read > 0, "EOF before a close frame: {frames:?}");
        frames.extend_from_slice(&buf[..read]);
    }
    assert_eq!(close_code_in(&frames), Some(1001), "{frames:?}");
    // Answer the close, as a client does.
    late.write_all(&masked_frame(0x88, &1001u16.to_be_bytes()))
        .await
        .unwrap();
    within(running.serving).await.unwrap().unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}
