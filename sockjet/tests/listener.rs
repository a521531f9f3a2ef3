//! `ServerBuilder::listener`: serving on a TCP listener bound by the caller.

mod common;

use common::{REQUEST, echo, read_head, within};
use sockjet::{CloseCode, Message, Server, connect};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

/// The server answers on the caller's socket, with the builder's options, and closes
/// that socket when it shuts down.
#[tokio::test]
async fn a_server_serves_on_a_listener_bound_by_the_caller() {
    // Made from a standard listener, as one built with socket2 would be.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = TcpListener::from_std(std_listener).unwrap();
    let server = Server::builder().max_connections(1).listener(listener);
    assert_eq!(server.local_addr(), addr);
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(echo));

    let mut ws = within(connect(&format!("ws://{addr}/"))).await.unwrap();
    ws.send("on the given socket").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text("on the given socket"))
    );
    // The builder's limit applies: the only place is taken.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(REQUEST.as_bytes()).await.unwrap();
    let head = read_head(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");

    shutdown.shutdown();
    assert!(within(ws.recv()).await.unwrap().is_none());
    assert_eq!(within(ws.closed()).await.code(), CloseCode::GOING_AWAY);
    within(serving).await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}
