//! `wss://`: the client against a sockjet server behind `tokio_rustls`, with a test CA.
#![cfg(feature = "tls")]

mod client_support;

use std::sync::Arc;

use client_support::{Pki, TempPath, handshake_failure, tls_echo_server, within};
use sockjet::{ClientBuilder, ErrorKind, Message, tls::ClientTls};

async fn hello_and_echo(url: &str, tls: ClientTls) -> String {
    let mut ws = within(ClientBuilder::new(url).tls(tls).connect())
        .await
        .unwrap();
    let hello = within(ws.recv()).await.unwrap().unwrap();
    ws.send("over TLS").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text("over TLS"))
    );
    hello.as_text().unwrap().to_owned()
}

#[tokio::test]
async fn wss_with_a_test_ca_offers_alpn_and_sni() {
    let pki = Pki::new(&["localhost"]);
    let addr = tls_echo_server(&pki).await;
    let tls = ClientTls::with_ca_pem(&pki.ca_pem).unwrap();
    let url = format!("wss://localhost:{}/", addr.port());
    assert_eq!(
        hello_and_echo(&url, tls).await,
        "alpn=http/1.1 sni=localhost"
    );
}

#[tokio::test]
async fn ip_address_hosts_are_checked_against_ip_names_without_sni() {
    let pki = Pki::new(&["127.0.0.1"]);
    let addr = tls_echo_server(&pki).await;
    let tls = ClientTls::with_ca_pem(&pki.ca_pem).unwrap();
    // RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
    assert_eq!(
        hello_and_echo(&format!("wss://{addr}/"), tls).await,
        "alpn=http/1.1 sni=none"
    );
}

#[tokio::test]
async fn a_ca_file_is_read() {
    let pki = Pki::new(&["localhost"]);
    let addr = tls_echo_server(&pki).await;
    let file = TempPath::new("ca.pem");
    std::fs::write(&file.0, &pki.ca_pem).unwrap();
    let tls = ClientTls::ca_file(&file.0).unwrap();
    let url = format!("wss://localhost:{}/", addr.port());
    hello_and_echo(&url, tls).await;
}

#[tokio::test]
async fn a_rustls_config_is_used_as_given() {
    let pki = Pki::new(&["localhost"]);
    let addr = tls_echo_server(&pki).await;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // No ALPN in this configuration: the server sees none.
    let tls = ClientTls::from_rustls_config(Arc::new(config));
    let url = format!("wss://localhost:{}/", addr.port());
    assert_eq!(hello_and_echo(&url, tls).await, "alpn=none sni=localhost");
}

#[tokio::test]
async fn another_ca_fails_with_a_clear_tls_error() {
    let pki = Pki::new(&["localhost"]);
    let addr = tls_echo_server(&pki).await;
    let stranger = Pki::new(&["localhost"]);
    let text = handshake_failure(
        ClientBuilder::new(format!("wss://localhost:{}/", addr.port()))
            .tls(ClientTls::with_ca_pem(&stranger.ca_pem).unwrap())
            .connect(),
    )
    .await;
    assert!(
        text.contains("TLS handshake with localhost failed") && text.contains("UnknownIssuer"),
        "{text}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_fails() {
    let pki = Pki::new(&["other.example"]);
    let addr = tls_echo_server(&pki).await;
    let text = handshake_failure(
        ClientBuilder::new(format!("wss://localhost:{}/", addr.port()))
            .tls(ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
            .connect(),
    )
    .await;
    assert!(text.contains("not valid for name \"localhost\""), "{text}");
}

#[tokio::test]
async fn the_default_roots_do_not_trust_a_test_ca() {
    let pki = Pki::new(&["localhost"]);
    let addr = tls_echo_server(&pki).await;
    // Either the system's roots loaded and do not include the test CA, or this machine
    // has none: both are TLS failures, not network errors.
    let text = handshake_failure(sockjet::connect(&format!(
        "wss://localhost:{}/",
        addr.port()
    )))
    .await;
    assert!(
        text.contains("UnknownIssuer") || text.contains("no root certificates"),
        "{text}"
    );
}

#[test]
fn pem_without_certificates_is_refused() {
    let error = ClientTls::with_ca_pem("-----BEGIN NOTHING-----\n").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    let error = ClientTls::ca_file("/nonexistent/sockjet-ca.pem").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(
        error.to_string().contains("/nonexistent/sockjet-ca.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_closing_tcp_without_close_notify_still_closes_cleanly() {
    // The test server (like sockjet's own after a closing handshake) closes TCP without a
    // TLS close_notify: the WebSocket close handshake already ended the stream.
    let pki = Pki::new(&["localhost"]);
    let addr = tls_echo_server(&pki).await;
    let mut ws = within(
        ClientBuilder::new(format!("wss://localhost:{}/", addr.port()))
            .tls(ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
            .connect(),
    )
    .await
    .unwrap();
    within(ws.recv()).await.unwrap().unwrap();
    ws.sender()
        .close(sockjet::CloseCode::NORMAL_CLOSURE, "bye")
        .await
        .unwrap();
    assert!(within(ws.recv()).await.unwrap().is_none());
    assert!(within(ws.closed()).await.is_ok());
}
