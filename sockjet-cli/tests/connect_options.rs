//! `sockjet connect` options: request headers, origin, subprotocols, TLS trust
//! (`--insecure`, `--ca-file`), `--proxy`, `--unix` and `--reconnect`, end to end
//! against servers run by the test on loopback or a Unix socket.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use common::{Sockjet, TempDir, TestCertificates, scripted_server, test_certificates};
use sockjet::{CloseCode, Connection, ServerBuilder};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};

/// Starts `sockjet connect ARGS`.
fn connect(args: &[&str]) -> Sockjet {
    Sockjet::start(&[&["connect"], args].concat())
}

async fn echo(mut ws: Connection) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// Types `hi`, expects it back, ends input and expects a clean exit; returns stderr.
fn echo_and_finish(mut client: Sockjet) -> String {
    client.type_line("hi");
    assert_eq!(client.line(), "< hi");
    client.close_stdin();
    let finished = client.finish();
    assert_eq!(
        finished.stdout.first().map(String::as_str),
        Some("Connection closed: 1000 (OK)."),
        "{finished:?}"
    );
    assert!(finished.status.success(), "{finished:?}");
    finished.stderr
}

#[test]
fn headers_origin_and_subprotocols_reach_the_server() {
    let (_runtime, url) = scripted_server(|ws| async move {
        let headers = ws.request().headers();
        let get = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .map(|value| value.to_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let report = format!(
            "origin={} x-one={} x-two={} protocols={}",
            get("origin"),
            get("x-one"),
            get("x-two"),
            get("sec-websocket-protocol")
        );
        let _ = ws.send(report).await;
        let _ = ws.close(CloseCode::NORMAL_CLOSURE, "").await;
    });
    let client = connect(&[
        "-H",
        "X-One: 1",
        "--header",
        "x-two:  two words ",
        "-H",
        "X-One: again",
        "--origin",
        "https://app.example",
        "--subprotocol",
        "v2.chat",
        "--subprotocol",
        "v1.chat",
        &url,
    ]);
    assert_eq!(client.line(), format!("Connected to {url}."));
    assert_eq!(
        client.line(),
        "< origin=https://app.example x-one=1,again x-two=two words protocols=v2.chat, v1.chat"
    );
    assert_eq!(client.line(), "Connection closed: 1000 (OK).");
}

#[test]
fn an_invalid_header_is_a_usage_error() {
    let finished = Sockjet::run(&["connect", "-H", "no colon here", "ws://127.0.0.1:9/"]);
    let stderr = finished.stderr;
    assert_eq!(finished.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not NAME: VALUE"), "{stderr}");
}

/// A test CA's PEM and a TLS acceptor with a certificate it signed for `localhost`.
fn test_tls() -> (String, tokio_rustls::TlsAcceptor) {
    let TestCertificates { ca, cert, key } = test_certificates();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A `wss://` echo server; returns its runtime and port.
fn tls_echo_server(acceptor: tokio_rustls::TlsAcceptor) -> (Runtime, u16) {
    let runtime = Runtime::new().unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    if let Ok(ws) = ServerBuilder::default().accept(tls).await {
                        echo(ws).await;
                    }
                }
            });
        }
    });
    (runtime, port)
}

#[test]
fn insecure_skips_certificate_checks_with_a_warning() {
    let (_ca_pem, acceptor) = test_tls();
    let (_runtime, port) = tls_echo_server(acceptor);
    let url = format!("wss://localhost:{port}/");

    // The test CA is not trusted: a one-line TLS error.
    let refused = Sockjet::run(&["connect", &url]);
    let stderr = refused.stderr;
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("sockjet: handshake failed: TLS handshake with localhost failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("UnknownIssuer") || stderr.contains("no root certificates"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let client = connect(&["--insecure", &url]);
    assert_eq!(client.line(), format!("Connected to {url}."));
    let stderr = echo_and_finish(client);
    assert!(stderr.contains("warning: --insecure"), "{stderr}");
}

#[test]
fn a_ca_file_is_trusted() {
    let (ca_pem, acceptor) = test_tls();
    let (_runtime, port) = tls_echo_server(acceptor);
    let dir = TempDir::new("ca-file");
    let ca_file = dir.write("ca.pem", &ca_pem);
    let url = format!("wss://localhost:{port}/");
    let client = connect(&["--ca-file", &ca_file, &url]);
    assert_eq!(client.line(), format!("Connected to {url}."));
    assert_eq!(echo_and_finish(client), "");
}

#[test]
fn the_proxy_option_tunnels_through_http_connect() {
    let runtime = Runtime::new().unwrap();
    let server = runtime
        .block_on(sockjet::Server::bind("127.0.0.1:0"))
        .unwrap();
    let server_addr = server.local_addr();
    runtime.spawn(server.serve(echo));
    let (proxy_addr, seen) = runtime.block_on(connect_proxy());
    let url = format!("ws://{server_addr}/");
    let client = connect(&["--proxy", &format!("http://u:p@{proxy_addr}"), &url]);
    assert_eq!(client.line(), format!("Connected to {url}."));
    echo_and_finish(client);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with(&format!("CONNECT {server_addr} HTTP/1.1\r\n")),
        "{}",
        seen[0]
    );
    assert!(
        seen[0].contains("Proxy-Authorization: Basic dTpw\r\n"),
        "{}",
        seen[0]
    );
}

/// An HTTP CONNECT proxy that records each request head.
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let Ok(byte) = client.read_u8().await else {
                    break;
                };
                head.push(byte);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            record.lock().unwrap().push(head.clone());
            let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(target.as_str()).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, seen)
}

#[cfg(unix)]
#[test]
fn the_unix_option_connects_to_a_unix_socket() {
    let runtime = Runtime::new().unwrap();
    let dir = TempDir::new("connect-unix");
    let path = dir.path("connect.sock");
    let listener = {
        let _guard = runtime.enter();
        tokio::net::UnixListener::bind(&path).unwrap()
    };
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(ws) = ServerBuilder::default().accept(stream).await {
                let path = ws.path().to_owned();
                let host = ws.request().headers()["host"].to_str().unwrap().to_owned();
                let _ = ws.send(format!("{host} {path}")).await;
                tokio::spawn(echo(ws));
            }
        }
    });
    let client = connect(&["--unix", path.to_str().unwrap(), "ws://app.local/chat"]);
    assert_eq!(client.line(), "Connected to ws://app.local/chat.");
    assert_eq!(client.line(), "< app.local /chat");
    echo_and_finish(client);
}

#[test]
fn reconnect_prints_a_line_and_comes_back() {
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let (_runtime, url) = scripted_server(move |ws| {
        let first = count.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                let _ = ws.close(CloseCode::SERVICE_RESTART, "restarting").await;
            } else {
                echo(ws).await;
            }
        }
    });
    let client = connect(&["--reconnect", "--max-reconnect-delay", "0.05", &url]);
    assert_eq!(client.line(), format!("Connected to {url}."));
    assert_eq!(
        client.line(),
        "Connection closed: 1012 (service restart) restarting."
    );
    let retry = client.line();
    assert!(
        retry.starts_with("Reconnecting in 0.") && retry.ends_with(" s."),
        "{retry}"
    );
    assert_eq!(client.line(), format!("Connected to {url}."));
    echo_and_finish(client);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[test]
fn reconnect_retries_a_refused_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    let client = connect(&["--reconnect", "--max-reconnect-delay", "0.01", &url]);
    for _ in 0..3 {
        let line = client.line();
        assert!(
            line.starts_with(&format!("cannot connect to {url}: ")),
            "{line}"
        );
        assert!(
            line.ends_with(" s.") && line.contains("; reconnecting in 0.0 s"),
            "{line}"
        );
    }
}
