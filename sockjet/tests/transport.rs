//! Connections over transports other than the TCP sockets sockjet opens itself, and the
//! read path that lends idle connections' buffers to busy ones.

mod common;

use common::{echo_server, masked_frame, raw_client, within};
use sockjet::{ClientBuilder, CloseCode, ConnectionConfig, Message, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn server_and_client_run_over_an_in_memory_pipe() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut ws = Server::builder().accept(server_end).await.unwrap();
        assert_eq!(ws.path(), "/pipe");
        assert_eq!(ws.peer_addr(), None);
        // The server keeps the response it sent as bytes and parses them when asked.
        let response = ws.response();
        assert_eq!(response.status(), 101);
        assert_eq!(response.headers()["upgrade"], "websocket");
        assert!(response.headers().contains_key("sec-websocket-accept"));
        let extensions = response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap();
        assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
        assert_eq!(ws.subprotocol(), None);
        while let Ok(Some(message)) = ws.recv().await {
            ws.send(message).await.unwrap();
        }
        ws.closed().await.rcvd.map(|frame| frame.code)
    });
    let mut ws = within(ClientBuilder::new("ws://example.com/pipe").connect_on(client_end))
        .await
        .unwrap();
    // Compression is negotiated over any transport.
    assert!(ws.is_compressed());
    assert_eq!(ws.response().status(), 101);
    assert_eq!(ws.request().uri().path(), "/pipe");
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for message in [
        Message::text("hello"),
        Message::binary(vec![0u8, 1, 2]),
        Message::binary(big),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), Some(message));
    }
    ws.close(CloseCode::NORMAL_CLOSURE, "bye").await.unwrap();
    assert_eq!(
        within(server).await.unwrap(),
        Some(CloseCode::NORMAL_CLOSURE)
    );
}

#[tokio::test]
async fn a_failed_handshake_over_a_pipe_is_answered_and_reported() {
    let (mut client_end, server_end) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move { Server::builder().accept(server_end).await });
    client_end
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    within(client_end.read_to_end(&mut response)).await.unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(within(server).await.unwrap().is_err());
}

/// One connection waits in the middle of a frame while others come and go: the bytes it
/// holds must stay with it (only an empty buffer may serve another connection), and the
/// buffers that move between connections must not mix their data.
#[tokio::test(flavor = "current_thread")]
async fn buffers_lent_between_connections_keep_each_ones_data() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut waiting = raw_client(addr).await;
    let frame = masked_frame(0x82, &[0xAB; 3000]);
    waiting.write_all(&frame[..1500]).await.unwrap();
    for round in 0..20u8 {
        let mut busy = raw_client(addr).await;
        let payload = vec![round; 100 + usize::from(round) * 300];
        busy.write_all(&masked_frame(0x82, &payload)).await.unwrap();
        let echoed = within(read_binary_frame_from(&mut busy)).await;
        assert_eq!(echoed, payload, "round {round}");
    }
    waiting.write_all(&frame[1500..]).await.unwrap();
    assert_eq!(
        within(read_binary_frame_from(&mut waiting)).await,
        vec![0xAB; 3000]
    );
}

/// A burst larger than the 64 KiB that a read takes when nothing is buffered: frames
/// straddle the end of each read, and a large frame continues into the space reserved for
/// it. Every echo must come back whole and in order.
#[tokio::test]
async fn a_burst_larger_than_one_read_is_echoed_in_order() {
    let addr = echo_server(ConnectionConfig::default()).await;
    let mut stream = raw_client(addr).await;
    let mut payloads: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| vec![(i % 251) as u8; 1 + (i as usize * 7) % 60])
        .collect();
    payloads.insert(1500, vec![0x5A; 100_000]);
    let mut burst = Vec::new();
    for payload in &payloads {
        burst.extend(masked_frame(0x82, payload));
    }
    assert!(burst.len() > 3 * 64 * 1024);
    let (mut reader, mut writer) = stream.split();
    let write = async { writer.write_all(&burst).await.unwrap() };
    let read = async {
        for (i, payload) in payloads.iter().enumerate() {
            let echoed = read_binary_frame_from(&mut reader).await;
            assert!(echoed == *payload, "message {i} differs");
        }
    };
    within(async { tokio::join!(write, read) }).await;
}

/// Reads one unmasked binary frame (server to client) from any reader.
async fn read_binary_frame_from(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 0x82);
    let len = match head[1] {
        126 => {
            let mut extended = [0u8; 2];
            stream.read_exact(&mut extended).await.unwrap();
            usize::from(u16::from_be_bytes(extended))
        }
        127 => {
            let mut extended = [0u8; 8];
            stream.read_exact(&mut extended).await.unwrap();
            u64::from_be_bytes(extended) as usize
        }
        len => usize::from(len),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    payload
}
