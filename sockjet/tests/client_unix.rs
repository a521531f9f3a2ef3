//! The client over Unix domain sockets: the URL still gives `Host`, the request target
//! and the TLS server name.
#![cfg(unix)]

mod client_support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use client_support::{
    Pki, TempPath, answer, describe_request, echo_after, handshake_failure, header, read_head,
    redirect, within,
};
use sockjet::{ClientBuilder, ErrorKind, ServerBuilder};
use tokio::net::UnixListener;

/// A sockjet server on a Unix socket that reports each request (see `describe_request`).
fn reporting_unix_server(path: &std::path::Path) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(ws) = ServerBuilder::default().accept(stream).await {
                    let _ = ws.send(describe_request(ws.request())).await;
                    let _ = ws.close(sockjet::CloseCode::NORMAL_CLOSURE, "").await;
                }
            });
        }
    });
}

async fn report(builder: ClientBuilder) -> String {
    let mut ws = within(builder.connect()).await.unwrap();
    assert_eq!(ws.peer_addr(), None);
    within(ws.recv())
        .await
        .unwrap()
        .unwrap()
        .as_text()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_url_gives_host_and_target_over_a_unix_socket() {
    let path = TempPath::new("ws.sock");
    reporting_unix_server(&path.0);
    let mut ws =
        within(ClientBuilder::new("ws://app.internal:8080/chat?room=1").connect_unix(&path.0))
            .await
            .unwrap();
    let report = within(ws.recv()).await.unwrap().unwrap();
    let report = report.as_text().unwrap();
    assert!(report.starts_with("/chat?room=1"), "{report}");
    assert_eq!(
        header(report, "host"),
        Some("app.internal:8080"),
        "{report}"
    );
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_over_a_unix_socket_checks_the_url_host() {
    let path = TempPath::new("wss.sock");
    let pki = Pki::new(&["localhost"]);
    let acceptor = pki.acceptor();
    let listener = UnixListener::bind(&path.0).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let sni = tls.get_ref().1.server_name().unwrap_or("none").to_owned();
            if let Ok(ws) = ServerBuilder::default().accept(tls).await {
                tokio::spawn(echo_after(ws, format!("sni={sni}")));
            }
        }
    });
    let builder = ClientBuilder::new("wss://localhost/")
        .tls(sockjet::tls::ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
        .unix_socket(&path.0);
    let mut ws = within(builder.clone().connect()).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap().as_text(),
        Some("sni=localhost")
    );

    // The certificate is checked against the URL's host.
    handshake_failure(
        ClientBuilder::new("wss://elsewhere.example/")
            .tls(sockjet::tls::ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
            .connect_unix(&path.0),
    )
    .await;
}

#[tokio::test]
async fn redirects_stay_on_the_unix_socket_within_the_origin() {
    let path = TempPath::new("redirect.sock");
    let listener = UnixListener::bind(&path.0).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            match count.fetch_add(1, Ordering::SeqCst) {
                0 => {
                    read_head(&mut stream).await;
                    answer(stream, &redirect(307, "/moved")).await;
                }
                1 => {
                    if let Ok(ws) = ServerBuilder::default().accept(stream).await {
                        let _ = ws.send(describe_request(ws.request())).await;
                    }
                }
                _ => {
                    read_head(&mut stream).await;
                    answer(stream, &redirect(302, "ws://other.example/")).await;
                }
            }
        }
    });
    let report = report(ClientBuilder::new("ws://localhost/start").unix_socket(&path.0)).await;
    assert!(report.starts_with("/moved"), "{report}");

    let error = within(ClientBuilder::new("ws://localhost/start").connect_unix(&path.0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("over a Unix socket"), "{error}");
}

#[tokio::test]
async fn a_missing_socket_names_its_path() {
    let path = TempPath::new("absent.sock");
    let error = within(ClientBuilder::new("ws://localhost/").connect_unix(&path.0))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(
        error.to_string().contains(&path.0.display().to_string()),
        "{error}"
    );
}
