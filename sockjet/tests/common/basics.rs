//! The helpers every family of loopback tests needs: a bound on every wait, servers on
//! 127.0.0.1, and reading an HTTP head. `common`, `client_support` and `policy_common`
//! all include this one file.

use std::{future::Future, net::SocketAddr, time::Duration};

use sockjet::{Connection, ServerBuilder};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(10);

pub async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test step timed out")
}

/// Binds `builder` on loopback, serves `handler`, returns the address.
pub async fn start<H, F>(builder: ServerBuilder, handler: H) -> SocketAddr
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve(handler));
    addr
}

/// Binds `builder` on loopback with a handler that echoes every message.
pub async fn start_echo(builder: ServerBuilder) -> SocketAddr {
    start(builder, echo).await
}

/// Echoes every message until the connection ends.
pub async fn echo(mut ws: Connection) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// Reads an HTTP head (up to the blank line), byte by byte so nothing after it is lost.
pub async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match within(stream.read(&mut byte)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
        assert!(head.len() < 64 * 1024, "endless HTTP head");
    }
    String::from_utf8_lossy(&head).into_owned()
}
