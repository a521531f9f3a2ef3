//! `wss://` on the server: a TLS handshake against a certificate authority made in the
//! test with rcgen, ALPN, SNI, certificate errors, and TLS under the connection limit
//! and the handshake timeout. The client side is tokio-rustls trusting the test CA, with
//! sockjet's client running over the TLS stream.
#![cfg(feature = "tls")]

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{start_echo, test_ca::TestCa, within};
use rustls::pki_types::ServerName;
use sockjet::{ClientBuilder, CloseCode, Server, tls::ServerTls};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::client::TlsStream;

/// A directory for one test's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sockjet-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn tls_connect(
    ca: &TestCa,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    within(ca.connector().connect(name, tcp)).await
}

#[tokio::test]
async fn wss_echo_over_pem_files_with_alpn_http_1_1() {
    let ca = TestCa::new();
    let cert = ca.server_cert(&["localhost"]);
    let dir = TempDir::new("echo");
    let cert_path = dir.write("cert.pem", &cert.cert_pem);
    let key_path = dir.write("key.pem", &cert.key_pem);
    let tls = ServerTls::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(tls.rustls_config().alpn_protocols, [b"http/1.1".to_vec()]);
    let addr = start_echo(Server::builder().tls(tls)).await;

    let stream = tls_connect(&ca, addr, "localhost").await.unwrap();
    // The client offered h2 first: the server picks the protocol the handshake needs.
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(stream.get_ref().1.peer_certificates().unwrap()[0], cert.der);
    let mut ws = within(ClientBuilder::new("ws://localhost/tls").connect_on(stream))
        .await
        .unwrap();
    // Big enough to span many TLS records, and compressed by default.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for message in [
        sockjet::Message::text("hello over TLS"),
        sockjet::Message::binary(big),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap().unwrap(), message);
    }
    // Many small messages in a burst: nothing stays behind in a TLS buffer.
    for i in 0..200 {
        ws.send(format!("burst {i}")).await.unwrap();
    }
    for i in 0..200 {
        let message = within(ws.recv()).await.unwrap().unwrap();
        assert_eq!(message.as_text(), Some(format!("burst {i}").as_str()));
    }
    within(ws.close(CloseCode::NORMAL_CLOSURE, "bye"))
        .await
        .unwrap();
    let closed = within(ws.closed()).await;
    assert_eq!(closed.code(), CloseCode::NORMAL_CLOSURE, "{closed}");
}

#[tokio::test]
async fn sni_picks_the_certificate_and_the_first_is_the_default() {
    let ca = TestCa::new();
    let default = ca.server_cert(&["localhost", "127.0.0.1", "other.test"]);
    let chat = ca.server_cert(&["chat.test"]);
    let wildcard = ca.server_cert(&["*.api.test"]);
    let tls = ServerTls::from_pem(default.cert_pem.as_bytes(), default.key_pem.as_bytes())
        .unwrap()
        .with_sni_pem(
            "Chat.Test",
            chat.cert_pem.as_bytes(),
            chat.key_pem.as_bytes(),
        )
        .unwrap()
        .with_sni_pem(
            "*.api.test",
            wildcard.cert_pem.as_bytes(),
            wildcard.key_pem.as_bytes(),
        )
        .unwrap();
    let addr = start_echo(Server::builder().tls(tls)).await;

    // An IP address is never sent as SNI: no name, so the default certificate.
    for (name, expected) in [
        ("chat.test", &chat.der),
        ("eu.api.test", &wildcard.der),
        ("localhost", &default.der),
        ("other.test", &default.der),
        ("127.0.0.1", &default.der),
    ] {
        let stream = tls_connect(&ca, addr, name)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let presented = &stream.get_ref().1.peer_certificates().unwrap()[0];
        assert_eq!(presented, expected, "certificate for {name}");
        let mut ws = within(ClientBuilder::new(format!("ws://{name}/")).connect_on(stream))
            .await
            .unwrap();
        ws.send(name).await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap().as_text(),
            Some(name)
        );
    }
}

#[test]
fn bad_certificate_and_key_files_give_clear_errors() {
    let ca = TestCa::new();
    let cert = ca.server_cert(&["localhost"]);
    let other = ca.server_cert(&["localhost"]);
    let dir = TempDir::new("errors");
    let cert_path = dir.write("cert.pem", &cert.cert_pem);
    let key_path = dir.write("key.pem", &cert.key_pem);
    let other_key_path = dir.write("other-key.pem", &other.key_pem);
    let empty_path = dir.write("empty.pem", "");
    let missing_path = dir.0.join("missing.pem");
    let message = |result: std::io::Result<ServerTls>| result.unwrap_err().to_string();
    let shown = |path: &Path| path.display().to_string();

    let error = message(ServerTls::from_pem_files(&missing_path, &key_path));
    assert!(error.contains(&shown(&missing_path)), "{error}");
    assert!(error.contains("cannot read"), "{error}");

    let error = message(ServerTls::from_pem_files(&empty_path, &key_path));
    assert!(error.contains(&shown(&empty_path)), "{error}");
    assert!(error.contains("no certificate found"), "{error}");

    // Swapped arguments: the key file holds no certificate.
    let error = message(ServerTls::from_pem_files(&key_path, &cert_path));
    assert!(error.contains(&shown(&key_path)), "{error}");
    assert!(error.contains("no certificate found"), "{error}");

    let error = message(ServerTls::from_pem_files(&cert_path, &cert_path));
    assert!(error.contains("no private key found"), "{error}");

    let error = message(ServerTls::from_pem_files(&cert_path, &other_key_path));
    assert!(error.contains("does not match"), "{error}");
    assert!(error.contains(&shown(&other_key_path)), "{error}");
    assert!(error.contains(&shown(&cert_path)), "{error}");

    let garbage = dir.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    let error = message(ServerTls::from_pem_files(&garbage, &key_path));
    assert!(error.contains(&shown(&garbage)), "{error}");

    // A configuration given whole takes no SNI certificates from sockjet.
    let config = ServerTls::from_pem_files(&cert_path, &key_path)
        .unwrap()
        .rustls_config()
        .clone();
    let error = message(
        ServerTls::from_rustls_config(config).with_sni_pem_files("x.test", &cert_path, &key_path),
    );
    assert!(error.contains("from_rustls_config"), "{error}");
}

#[tokio::test]
async fn silent_tls_client_does_not_delay_others_and_is_dropped_at_the_timeout() {
    let ca = TestCa::new();
    let cert = ca.server_cert(&["localhost"]);
    let tls = ServerTls::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let addr = start_echo(
        Server::builder()
            .tls(tls)
            .handshake_timeout(Duration::from_millis(500)),
    )
    .await;
    // Connects and never sends its ClientHello.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Another client is served meanwhile.
    let stream = tls_connect(&ca, addr, "localhost").await.unwrap();
    let mut ws = within(ClientBuilder::new("ws://localhost/").connect_on(stream))
        .await
        .unwrap();
    ws.send("served").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some("served")
    );
    // The silent one is dropped: EOF or a reset, and no byte of TLS.
    let mut buf = [0u8; 64];
    let read = within(silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn full_tls_server_refuses_with_a_tls_alert_then_serves_again() {
    let ca = TestCa::new();
    let cert = ca.server_cert(&["localhost"]);
    let tls = ServerTls::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let addr = start_echo(Server::builder().tls(tls).max_connections(1)).await;
    let stream = tls_connect(&ca, addr, "localhost").await.unwrap();
    let ws = within(ClientBuilder::new("ws://localhost/").connect_on(stream))
        .await
        .unwrap();

    let error = tls_connect(&ca, addr, "localhost").await.unwrap_err();
    assert!(
        format!("{error:?}").contains("InternalError"),
        "a fatal internal_error alert: {error:?}"
    );

    within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
        .await
        .unwrap();
    drop(ws);
    // The place is released once the server's side of the connection is over.
    let mut served = false;
    for _ in 0..100 {
        if let Ok(stream) = tls_connect(&ca, addr, "localhost").await {
            if let Ok(mut ws) =
                within(ClientBuilder::new("ws://localhost/").connect_on(stream)).await
            {
                ws.send("again").await.unwrap();
                assert_eq!(
                    within(ws.recv()).await.unwrap().unwrap().as_text(),
                    Some("again")
                );
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the server never took a connection again");
}

#[tokio::test]
async fn plain_http_to_a_tls_port_is_not_served() {
    let ca = TestCa::new();
    let cert = ca.server_cert(&["localhost"]);
    let tls = ServerTls::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let addr = start_echo(Server::builder().tls(tls)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(common::REQUEST.as_bytes()).await.unwrap();
    let answer = common::read_to_end(&mut stream).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}
