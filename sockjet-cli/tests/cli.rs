//! End-to-end tests of the `sockjet` binary: what a user sees on stdout and stderr, and
//! the exit status. Everything talks to 127.0.0.1 and every wait is bounded, so a broken
//! build fails a test instead of hanging the suite; children are killed on drop.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    thread,
    time::Duration,
};

use common::{Finished, Serve, Sockjet, TIMEOUT, scripted_server};
use sockjet::CloseCode;

/// Starts `sockjet serve` on a free port and returns it with its URL.
fn serve(options: &[&str]) -> (Sockjet, String) {
    let Serve { process, url } = Serve::start(&[&["127.0.0.1:0"], options].concat());
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");
    (process, url)
}

/// Asserts that stderr is exactly one `sockjet: ...` line and returns it.
fn one_error_line(finished: &Finished) -> &str {
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    let line = finished
        .stderr
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("stderr ends with a newline: {finished:?}"));
    assert!(!line.contains('\n'), "one line: {finished:?}");
    assert!(line.starts_with("sockjet: "), "{finished:?}");
    line
}

#[test]
fn echo_session_between_serve_and_connect() {
    let (server, url) = serve(&["--echo", "--ping-interval", "0.2", "--ping-timeout", "5"]);
    let url = format!("{url}/chat");
    let mut client = Sockjet::start(&["connect", &url]);
    assert_eq!(client.line(), format!("Connected to {url}."));

    client.type_line("hello");
    assert_eq!(client.line(), "< hello");
    client.type_line("tab\there, wörld");
    assert_eq!(client.line(), r"< tab\there, wörld");
    // Longer than a keepalive interval: pings must not disturb the session.
    thread::sleep(Duration::from_millis(500));
    client.type_line("");
    assert_eq!(client.line(), "< ");

    client.close_stdin();
    let finished = client.finish();
    assert!(finished.status.success(), "{finished:?}");
    assert_eq!(finished.stdout, ["Connection closed: 1000 (OK)."]);
    assert_eq!(finished.stderr, "", "connect logs only problems by default");

    #[cfg(unix)]
    {
        let mut server = server;
        server.terminate();
        let finished = server.finish();
        assert!(finished.status.success(), "{finished:?}");
        let log = &finished.stderr;
        assert!(log.contains("connection open"), "{log}");
        assert!(log.contains("path=\"/chat\""), "{log}");
        assert!(log.contains("peer=127.0.0.1:"), "{log}");
        assert!(log.contains("connection closed"), "{log}");
        assert!(log.contains("code=1000"), "{log}");
    }
    #[cfg(not(unix))]
    drop(server);
}

#[cfg(unix)]
#[test]
fn sigterm_closes_connections_with_1001_and_exits_cleanly() {
    let (server, url) = serve(&[]);
    let mut client = Sockjet::start(&["connect", &url]);
    assert_eq!(client.line(), format!("Connected to {url}."));
    // An echo proves the connection is open on the server's side too.
    client.type_line("ready");
    assert_eq!(client.line(), "< ready");

    server.terminate();
    let finished = client.finish();
    assert!(
        finished.status.success(),
        "1001 is a normal close: {finished:?}"
    );
    assert_eq!(
        finished.stdout,
        ["Connection closed: 1001 (going away) server shutting down."]
    );
    let mut server = server;
    let finished = server.finish();
    assert!(finished.status.success(), "{finished:?}");
    assert!(finished.stderr.contains("shutting down"), "{finished:?}");
}

#[test]
fn server_messages_are_escaped_and_its_close_reported() {
    let (_runtime, url) = scripted_server(|ws| async move {
        let _ = ws.send("a\nb\x1b").await;
        let _ = ws.send(vec![1u8, 2, 3]).await;
        let _ = ws.close(CloseCode::GOING_AWAY, "done").await;
    });
    let mut client = Sockjet::start(&["connect", &url]);
    let finished = client.finish();
    assert!(finished.status.success(), "{finished:?}");
    assert_eq!(
        finished.stdout,
        [
            format!("Connected to {url}."),
            r"< a\nb\x1b".to_owned(),
            "< (binary) 3 bytes: 01 02 03".to_owned(),
            "Connection closed: 1001 (going away) done.".to_owned(),
        ]
    );
    assert_eq!(finished.stderr, "");
}

#[test]
fn abnormal_server_close_exits_with_status_1() {
    let (_runtime, url) = scripted_server(|ws| async move {
        let _ = ws.close(CloseCode::INTERNAL_ERROR, "oops").await;
    });
    let mut client = Sockjet::start(&["connect", &url]);
    let finished = client.finish();
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert_eq!(
        finished.stdout,
        [
            format!("Connected to {url}."),
            "Connection closed: 1011 (internal error) oops.".to_owned(),
        ]
    );
}

#[test]
fn connect_max_size_rejects_bigger_messages() {
    let (_runtime, url) = scripted_server(|mut ws| async move {
        let _ = ws.send("x".repeat(100)).await;
        // Wait for the client's close frame.
        while let Ok(Some(_)) = ws.recv().await {}
    });
    let mut client = Sockjet::start(&["connect", "--max-size", "10", &url]);
    let finished = client.finish();
    let line = one_error_line(&finished);
    assert!(line.contains("100 bytes over the limit of 10"), "{line}");
    assert_eq!(finished.stdout[0], format!("Connected to {url}."));
    // The client fails the connection with 1009; whether the server's reply arrives
    // before the socket closes is a race, so only the code is checked.
    assert_eq!(finished.stdout.len(), 2, "{finished:?}");
    assert!(
        finished.stdout[1].starts_with("Connection closed: ")
            && finished.stdout[1].contains("1009 (message too big)"),
        "{finished:?}"
    );
}

#[test]
fn serve_max_size_rejects_bigger_messages() {
    let (_server, url) = serve(&["--max-size", "10"]);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let closed = runtime.block_on(async {
        let mut ws = sockjet::connect(&url).await.expect("connect");
        ws.send("small").await.expect("send");
        assert_eq!(
            ws.recv().await.expect("echo").unwrap().as_text(),
            Some("small")
        );
        ws.send("x".repeat(11)).await.expect("send");
        let _ = tokio::time::timeout(TIMEOUT, ws.recv()).await;
        tokio::time::timeout(TIMEOUT, ws.closed())
            .await
            .expect("closed in time")
    });
    assert_eq!(closed.code(), CloseCode::MESSAGE_TOO_BIG, "{closed}");
}

#[test]
fn bad_url_is_one_line() {
    let finished = Sockjet::run(&["connect", "foo"]);
    assert_eq!(
        one_error_line(&finished),
        r#"sockjet: invalid URL "foo": missing ws:// or wss:// scheme"#
    );
    assert!(finished.stdout.is_empty(), "{finished:?}");
}

#[test]
fn refused_connection_is_one_line() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let finished = Sockjet::run(&["connect", &url]);
    let line = one_error_line(&finished);
    assert!(
        line.starts_with(&format!("sockjet: cannot connect to {url}: ")),
        "{line}"
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(!line.contains("os error"), "{line}");
}

#[test]
fn rejected_handshake_shows_the_http_status() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/missing", listener.local_addr().expect("address"));
    let http = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        // Read the request head before answering, as a real HTTP server would.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        );
        String::from_utf8_lossy(&head).into_owned()
    });
    let finished = Sockjet::run(&["connect", &url]);
    let request = http.join().expect("HTTP thread");
    assert!(
        request.starts_with("GET /missing HTTP/1.1\r\n"),
        "{request}"
    );
    assert_eq!(
        one_error_line(&finished),
        "sockjet: handshake failed: server rejected WebSocket connection: HTTP 404 Not Found"
    );
}

#[test]
fn address_in_use_is_one_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let finished = Sockjet::run(&["serve", &addr]);
    let line = one_error_line(&finished);
    assert!(
        line.starts_with(&format!("sockjet: cannot listen on {addr}: ")),
        "{line}"
    );
    assert!(line.to_lowercase().contains("in use"), "{line}");
    assert!(finished.stdout.is_empty(), "{finished:?}");
}

#[test]
fn invalid_option_values_are_rejected_by_the_parser() {
    let finished = Sockjet::run(&["serve", "--ping-interval", "soon"]);
    assert_eq!(finished.status.code(), Some(2), "usage error: {finished:?}");
    assert!(
        finished.stderr.contains("not a number of seconds"),
        "{finished:?}"
    );
}
