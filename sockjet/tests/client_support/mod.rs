//! Helpers of the client tests: a test PKI, a TLS WebSocket server, raw TCP servers.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

#[path = "../common/basics.rs"]
mod basics;
#[path = "../common/test_ca.rs"]
mod test_ca;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

pub use basics::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sockjet::{Connection, ServerBuilder};
pub use test_ca::TestCa;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;

/// A test certificate authority and a server certificate it signed.
pub struct Pki {
    pub ca_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    /// A fresh CA, and a server certificate for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> Self {
        let ca = TestCa::new();
        let cert = ca.server_cert(names);
        Self {
            ca_pem: ca.pem,
            chain: vec![cert.der],
            key: cert.key,
        }
    }

    /// A TLS acceptor with this server certificate, offering ALPN `http/1.1`.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key.clone_key())
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A `wss://` server: TLS by `tokio_rustls`, then sockjet. Each connection first gets a
/// text message `alpn=... sni=...` (what TLS negotiated), then its messages echoed.
pub async fn tls_echo_server(pki: &Pki) -> SocketAddr {
    let acceptor = pki.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = within(acceptor.accept(tcp)).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let alpn = session
                    .alpn_protocol()
                    .map(|alpn| String::from_utf8_lossy(alpn).into_owned());
                let sni = session.server_name().map(str::to_owned);
                let hello = format!(
                    "alpn={} sni={}",
                    alpn.as_deref().unwrap_or("none"),
                    sni.as_deref().unwrap_or("none")
                );
                let Ok(ws) = ServerBuilder::default().accept(tls).await else {
                    return;
                };
                echo_after(ws, hello).await;
            });
        }
    });
    addr
}

/// Sends `hello`, then echoes until the connection ends.
pub async fn echo_after(ws: Connection, hello: String) {
    if ws.send(hello).await.is_ok() {
        echo(ws).await;
    }
}

/// Awaits a connection attempt that must fail in the handshake; returns the error's text.
pub async fn handshake_failure(
    attempt: impl std::future::Future<Output = Result<Connection, sockjet::Error>>,
) -> String {
    let error = within(attempt).await.unwrap_err();
    assert_eq!(error.kind(), sockjet::ErrorKind::Handshake, "{error}");
    error.to_string()
}

/// A sockjet server that sends each client one text message describing its request: the
/// request target on the first line, then `name: value` for each header; then closes.
pub async fn request_reporting_server() -> SocketAddr {
    let server = sockjet::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve(|ws| async move {
        let _ = ws.send(describe_request(ws.request())).await;
        let _ = ws.close(sockjet::CloseCode::NORMAL_CLOSURE, "").await;
    }));
    addr
}

/// The request target, then one `name: value` line per header.
pub fn describe_request(request: &sockjet::Request) -> String {
    let mut text = request.uri().to_string();
    for (name, value) in request.headers() {
        text.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or("?")));
    }
    text
}

/// Connects with `builder` and returns the description a [`request_reporting_server`]
/// sent.
pub async fn reported_request(builder: sockjet::ClientBuilder) -> String {
    let mut ws = within(builder.connect()).await.unwrap();
    let message = within(ws.recv()).await.unwrap().unwrap();
    message.as_text().unwrap().to_owned()
}

/// The value of header `name` in an HTTP head (or a request description), if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Writes `response` and closes.
pub async fn answer(mut stream: impl tokio::io::AsyncWrite + Unpin, response: &str) {
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A raw HTTP server: each connection's request head is recorded and answered with
/// `respond(head)`, then the connection is closed.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpServer {
    pub async fn start(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = heads.clone();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let head = read_head(&mut stream).await;
                recorded.lock().unwrap().push(head.clone());
                answer(stream, &respond(&head)).await;
            }
        });
        Self { addr, heads }
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The request target of a request head: `GET /path HTTP/1.1` gives `/path`.
pub fn target_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or_default()
}

/// A redirect response.
pub fn redirect(status: u16, location: &str) -> String {
    format!("HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
}

/// A fresh path in the temporary directory, removed when dropped.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sockjet-client-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
