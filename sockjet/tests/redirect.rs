//! Redirects during the opening handshake: small raw HTTP servers answer 301, 302, 303,
//! 307 and 308, and a sockjet server at the end of the chain reports what it received.

mod client_support;

use client_support::{
    HttpServer, Pki, header, read_head, redirect, reported_request, request_reporting_server,
    target_of, within,
};
use sockjet::{ClientBuilder, ErrorKind, proto::HandshakeError};
use tokio::{io::AsyncWriteExt, net::TcpListener};

#[tokio::test]
async fn a_chain_of_every_status_is_followed_and_credentials_stay_within_the_origin() {
    let websocket = request_reporting_server().await;
    let final_url = format!("ws://localhost:{}/final?from=chain", websocket.port());
    let chain = HttpServer::start(move |head| match target_of(head) {
        "/a" => redirect(301, "/b"),
        "/b" => redirect(302, "c"),
        "/c" => redirect(303, "./d/../e?x=1"),
        "/e?x=1" => redirect(307, "/f"),
        "/f" => redirect(308, &final_url),
        other => panic!("unexpected request for {other}"),
    })
    .await;
    let url = format!("ws://us%3Aer:pa%20ss@127.0.0.1:{}/a", chain.addr.port());
    let report = reported_request(
        ClientBuilder::new(url)
            .header("Cookie", "session=42")
            .header("X-Trace", "kept"),
    )
    .await;

    let heads = chain.heads();
    let targets: Vec<&str> = heads.iter().map(|head| target_of(head)).collect();
    assert_eq!(targets, ["/a", "/b", "/c", "/e?x=1", "/f"]);
    for head in &heads {
        // The same origin all along: the URL's credentials (percent-decoded "us:er" and
        // "pa ss", RFC 7617) and the cookie go with every request.
        assert_eq!(
            header(head, "authorization"),
            Some("Basic dXM6ZXI6cGEgc3M="),
            "{head}"
        );
        assert_eq!(header(head, "cookie"), Some("session=42"), "{head}");
        let host = format!("127.0.0.1:{}", chain.addr.port());
        assert_eq!(header(head, "host"), Some(host.as_str()), "{head}");
    }
    // The last hop changed origin: credentials and cookie were dropped, nothing else.
    assert!(report.starts_with("/final?from=chain"), "{report}");
    assert_eq!(header(&report, "authorization"), None, "{report}");
    assert_eq!(header(&report, "cookie"), None, "{report}");
    assert_eq!(header(&report, "x-trace"), Some("kept"), "{report}");
    let host = format!("localhost:{}", websocket.port());
    assert_eq!(header(&report, "host"), Some(host.as_str()), "{report}");
}

#[tokio::test]
async fn an_explicit_authorization_header_follows_the_same_rules() {
    let websocket = request_reporting_server().await;
    let port = websocket.port();
    let chain =
        HttpServer::start(move |_| redirect(302, &format!("ws://127.0.0.1:{port}/ws"))).await;
    let report = reported_request(
        ClientBuilder::new(format!("ws://127.0.0.1:{}/start", chain.addr.port()))
            .header("Authorization", "Bearer t0ken"),
    )
    .await;
    // Another port is another origin (RFC 6454): the header is gone.
    assert_eq!(header(&report, "authorization"), None, "{report}");

    let report = reported_request(
        ClientBuilder::new(format!("ws://user:pw@127.0.0.1:{port}/direct"))
            .header("Authorization", "Bearer t0ken"),
    )
    .await;
    // An explicit Authorization header wins over the URL's credentials.
    assert_eq!(
        header(&report, "authorization"),
        Some("Bearer t0ken"),
        "{report}"
    );
}

#[tokio::test]
async fn eleven_redirects_are_too_many() {
    let looping = HttpServer::start(|head| {
        let hop: u32 = target_of(head)
            .trim_start_matches("/hop")
            .parse()
            .unwrap_or(0);
        redirect(302, &format!("/hop{}", hop + 1))
    })
    .await;
    let url = format!("ws://127.0.0.1:{}/hop0", looping.addr.port());
    let error = within(ClientBuilder::new(url.as_str()).connect())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    let text = error.to_string();
    assert!(
        text.contains("too many redirects") && text.contains("after following 10"),
        "{text}"
    );
    // The first request and ten redirects followed.
    assert_eq!(looping.heads().len(), 11);

    let error = within(ClientBuilder::new(url.as_str()).max_redirects(2).connect())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("after following 2"), "{error}");
    assert_eq!(looping.heads().len(), 11 + 3);

    // Disabled: the redirect is an HTTP status like any other.
    let error = within(ClientBuilder::new(url.as_str()).max_redirects(0).connect())
        .await
        .unwrap_err();
    assert_eq!(
        error.handshake_error(),
        Some(&HandshakeError::UnexpectedStatus(http::StatusCode::FOUND))
    );
}

#[tokio::test]
async fn other_answers_keep_their_status() {
    let server = HttpServer::start(|head| match target_of(head) {
        "/missing" => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
        // A redirect without a Location cannot be followed.
        _ => "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
    })
    .await;
    for (path, status) in [("/missing", 404), ("/nowhere", 302)] {
        let url = format!("ws://127.0.0.1:{}{path}", server.addr.port());
        let error = within(sockjet::connect(&url)).await.unwrap_err();
        assert_eq!(
            error.handshake_error(),
            Some(&HandshakeError::UnexpectedStatus(
                http::StatusCode::from_u16(status).unwrap()
            )),
            "{path}"
        );
    }
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn a_redirect_from_wss_to_ws_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let acceptor = pki.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plain = request_reporting_server().await;
    let location = format!("ws://localhost:{}/", plain.port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            read_head(&mut tls).await;
            let _ = tls.write_all(redirect(301, &location).as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    let error = within(
        ClientBuilder::new(format!("wss://localhost:{port}/"))
            .tls(sockjet::tls::ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
            .connect(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    assert!(
        error.to_string().contains("leaves TLS (wss:// to ws://)"),
        "{error}"
    );
}
