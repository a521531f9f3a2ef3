//! WebSockets over streams that another HTTP server upgraded: `ServerBuilder::upgrade`
//! with a minimal HTTP server written here (standing in for hyper), and
//! `Connection::from_upgraded` over in-memory pipes and loopback TCP.

mod common;

use std::net::SocketAddr;

use common::within;
use sockjet::{
    Bytes, ClientBuilder, CloseCode, Connection, ConnectionConfig, Message, PendingUpgrade,
    Request, Server,
    proto::{
        ClientConfig, Side,
        http::{StatusCode, header},
    },
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Reads an HTTP/1.1 request head the way an HTTP server would (it is not sockjet's
/// parser), and returns it with the bytes read past it.
async fn read_request(stream: &mut TcpStream) -> (Request, Bytes) {
    let mut buffer = Vec::new();
    let end = loop {
        let mut chunk = [0; 1024];
        let read = within(stream.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "EOF before the request head ended");
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        assert!(buffer.len() < 16 * 1024, "request head too long");
    };
    let head = std::str::from_utf8(&buffer[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, target) = (request_line.next().unwrap(), request_line.next().unwrap());
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        builder = builder.header(name.trim(), value.trim());
    }
    let read_ahead = Bytes::copy_from_slice(&buffer[end..]);
    (builder.body(()).unwrap(), read_ahead)
}

/// Writes a response head and body the way an HTTP server would.
async fn write_response(stream: &mut TcpStream, response: &sockjet::Response) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status().as_str(),
        response.status().canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(response.body()).await.unwrap();
}

/// A stand-in for an HTTP server that hands upgrades to sockjet: answers one connection
/// with `builder.upgrade`, returns the pending upgrade and the stream, or sends the
/// refusal and returns its status.
async fn accept_one(
    listener: &TcpListener,
    builder: &sockjet::ServerBuilder,
    subprotocol: Option<&'static str>,
) -> Result<(PendingUpgrade, TcpStream, Bytes), StatusCode> {
    let (mut stream, peer) = within(listener.accept()).await.unwrap();
    let (request, read_ahead) = read_request(&mut stream).await;
    let mut upgrade = match builder.upgrade(&request) {
        Ok(upgrade) => upgrade,
        Err(refusal) => {
            write_response(&mut stream, &refusal).await;
            return Err(refusal.status());
        }
    };
    upgrade.set_peer_addr(Some(peer));
    if let Some(subprotocol) = subprotocol {
        upgrade
            .response_mut()
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, subprotocol.parse().unwrap());
    }
    let (response, pending) = upgrade.respond().unwrap();
    write_response(&mut stream, &response).await;
    Ok((pending, stream, read_ahead))
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Sends text and binary from `a`, echoes them from `b`, and checks they come back.
async fn round_trip(a: &mut Connection, b: &mut Connection) {
    for message in [Message::text("héllo"), Message::binary(vec![0u8, 1, 255])] {
        a.send(message.clone()).await.unwrap();
        let echoed = within(b.recv()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
        b.send(echoed).await.unwrap();
        assert_eq!(within(a.recv()).await.unwrap(), Some(message));
    }
}

/// Closes from `a` with 1000 and checks both ends saw a clean closing handshake.
async fn close_cleanly(a: &Connection, b: &mut Connection) {
    let (closed, received) =
        within(async { tokio::join!(a.close(CloseCode::NORMAL_CLOSURE, "bye"), b.recv()) }).await;
    closed.unwrap();
    assert_eq!(received.unwrap(), None);
    let closed = within(b.closed()).await;
    assert_eq!(closed.rcvd.unwrap().reason, "bye");
    assert_eq!(
        within(a.closed()).await.sent.unwrap().code,
        CloseCode::NORMAL_CLOSURE
    );
}

#[tokio::test]
async fn upgrade_then_finish_serves_a_sockjet_client() {
    let (listener, addr) = listener().await;
    let client = tokio::spawn(
        ClientBuilder::new(format!("ws://{addr}/chat/lobby?user=ann"))
            .handshake(ClientConfig::default().subprotocols(["v1", "v2"]))
            .connect(),
    );
    let builder = Server::builder();
    let (pending, stream, read_ahead) = accept_one(&listener, &builder, Some("v2")).await.unwrap();
    let mut server = pending.finish_tcp(stream, read_ahead);
    let mut client = within(client).await.unwrap().unwrap();

    assert_eq!(server.path(), "/chat/lobby");
    assert_eq!(server.request().uri().query(), Some("user=ann"));
    assert_eq!(server.response().status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(server.subprotocol(), Some("v2"));
    assert_eq!(client.subprotocol(), Some("v2"));
    assert_eq!(server.peer_addr(), Some(client_addr(&listener, &server)));
    // permessage-deflate is on by default on both sides, negotiated through `upgrade`.
    assert!(server.is_compressed());
    assert!(client.is_compressed());
    round_trip(&mut client, &mut server).await;
    close_cleanly(&client, &mut server).await;
}

/// The client's address as the server saw it (on loopback, the peer is 127.0.0.1).
fn client_addr(listener: &TcpListener, server: &Connection) -> SocketAddr {
    let peer = server.peer_addr().expect("the peer address was set");
    assert_eq!(peer.ip(), listener.local_addr().unwrap().ip());
    peer
}

#[tokio::test]
async fn finish_runs_over_any_transport_with_compression_off() {
    let (listener, addr) = listener().await;
    let client = tokio::spawn(ClientBuilder::new(format!("ws://{addr}/")).connect());
    let builder = Server::builder().connection(ConnectionConfig::default().compression(None));
    let (pending, stream, read_ahead) = accept_one(&listener, &builder, None).await.unwrap();
    assert!(read_ahead.is_empty(), "the client waits for the 101");
    // Boxed as any other transport (a TLS stream, hyper's `Upgraded`).
    let mut server = pending.finish(stream);
    let mut client = within(client).await.unwrap().unwrap();
    assert!(!server.is_compressed());
    assert!(!client.is_compressed());
    assert_eq!(server.subprotocol(), None);
    round_trip(&mut server, &mut client).await;
    close_cleanly(&server, &mut client).await;
}

#[tokio::test]
async fn bytes_read_past_the_head_reach_the_connection() {
    let (listener, addr) = listener().await;
    // A client that sends a frame right behind its request, in one write.
    let raw = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut bytes = common::REQUEST.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
        stream.write_all(&bytes).await.unwrap();
        let head = common::read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        stream
    });
    let builder = Server::builder();
    let (pending, stream, read_ahead) = accept_one(&listener, &builder, None).await.unwrap();
    assert!(!read_ahead.is_empty());
    let mut server = pending.finish_tcp(stream, read_ahead);
    assert_eq!(
        within(server.recv()).await.unwrap(),
        Some(Message::text("Hi"))
    );
    drop(within(raw).await.unwrap());
}

#[tokio::test]
async fn invalid_requests_get_the_refusal_to_send() {
    let (listener, addr) = listener().await;
    let builder = Server::builder();
    for (request, status) in [
        (
            common::REQUEST.replace("Version: 13", "Version: 8"),
            StatusCode::UPGRADE_REQUIRED,
        ),
        (
            common::REQUEST.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            common::read_head(&mut stream).await
        });
        let refused = accept_one(&listener, &builder, None).await.unwrap_err();
        assert_eq!(refused, status);
        let head = within(client).await.unwrap();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", status.as_str())),
            "{head}"
        );
        if status == StatusCode::UPGRADE_REQUIRED {
            assert!(
                head.to_ascii_lowercase()
                    .contains("sec-websocket-version: 13"),
                "{head}"
            );
        }
    }
}

#[tokio::test]
async fn a_refusal_made_by_editing_the_response_is_returned() {
    let request = Request::builder()
        .uri("/")
        .header("host", "localhost")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let mut upgrade = Server::builder().upgrade(&request).unwrap();
    *upgrade.response_mut().status_mut() = StatusCode::FORBIDDEN;
    assert_eq!(
        upgrade.respond().unwrap_err().status(),
        StatusCode::FORBIDDEN
    );
}

/// Runs both ends with `from_upgraded` over `a` and `b`.
async fn from_upgraded_pair<T>(a: T, b: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = ConnectionConfig::default;
    let mut client = Connection::from_upgraded(a, Side::Client, config());
    let mut server = Connection::from_upgraded(b, Side::Server, config());
    assert!(!client.is_compressed());
    assert_eq!(server.path(), "/");
    assert_eq!(server.peer_addr(), None);
    round_trip(&mut client, &mut server).await;
    round_trip(&mut server, &mut client).await;
    close_cleanly(&client, &mut server).await;
}

#[tokio::test]
async fn from_upgraded_over_a_duplex_pipe() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    from_upgraded_pair(a, b).await;
}

#[tokio::test]
async fn from_upgraded_over_loopback_tcp() {
    let (listener, addr) = listener().await;
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    from_upgraded_pair(a.unwrap(), b.unwrap().0).await;
}

#[tokio::test]
async fn from_upgraded_sides_must_match_the_peer() {
    // Two "servers": neither masks, so each fails the other with 1002 (RFC 6455 §5.1: a
    // server "MUST close the connection upon receiving a frame that is not masked").
    let (a, b) = tokio::io::duplex(4096);
    let first = Connection::from_upgraded(a, Side::Server, ConnectionConfig::default());
    let mut second = Connection::from_upgraded(b, Side::Server, ConnectionConfig::default());
    first.send("unmasked").await.unwrap();
    let error = within(second.recv()).await.unwrap_err();
    assert_eq!(
        error.closed().unwrap().sent.as_ref().unwrap().code,
        CloseCode::PROTOCOL_ERROR
    );
}

#[tokio::test]
async fn from_protocol_keeps_a_negotiated_extension() {
    use sockjet::proto::{Config, DeflateConfig, DeflateParams, PerMessageDeflate, Protocol};
    let deflate = |side| {
        let mut protocol = Protocol::new(side, Config::default());
        protocol.enable_permessage_deflate(PerMessageDeflate::new(
            side,
            DeflateParams::default(),
            &DeflateConfig::default(),
        ));
        protocol
    };
    let (a, b) = tokio::io::duplex(64 * 1024);
    let config = ConnectionConfig::default;
    let mut client = Connection::from_protocol(a, deflate(Side::Client), config());
    let mut server = Connection::from_protocol(b, deflate(Side::Server), config());
    assert!(client.is_compressed() && server.is_compressed());
    let text = "compressible ".repeat(1000);
    client.send(text.as_str()).await.unwrap();
    assert_eq!(
        within(server.recv()).await.unwrap(),
        Some(Message::text(text))
    );
    round_trip(&mut server, &mut client).await;
    close_cleanly(&server, &mut client).await;
}
