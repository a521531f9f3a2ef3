//! Proxies: a small HTTP CONNECT proxy and a small SOCKS5 proxy written here, and the
//! choice of a proxy from environment variables (through an injected lookup: the tests
//! never read or change the process environment).

mod client_support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use client_support::{
    Pki, handshake_failure, header, read_head, reported_request, request_reporting_server,
    tls_echo_server, within,
};
use sockjet::{ClientBuilder, ErrorKind, Message, Proxy, ProxyKind};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What a test proxy saw of each tunnel request.
type Seen = Arc<Mutex<Vec<String>>>;

/// An HTTP proxy that tunnels `CONNECT` requests, asking for `credentials`
/// (`Basic ...`) if given, and answering `status` instead of tunnelling if given.
async fn connect_proxy(
    credentials: Option<&'static str>,
    refuse_with: Option<u16>,
) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                record.lock().unwrap().push(head.clone());
                let mut request_line = head.lines().next().unwrap_or_default().split(' ');
                assert_eq!(request_line.next(), Some("CONNECT"), "{head}");
                let authority = request_line.next().unwrap().to_owned();
                if let Some(status) = refuse_with {
                    let answer = format!("HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n\r\n");
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                if let Some(expected) = credentials {
                    if header(&head, "proxy-authorization") != Some(expected) {
                        let _ = client
                            .write_all(
                                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                                  Proxy-Authenticate: Basic realm=\"test\"\r\n\
                                  Content-Length: 0\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                }
                let Ok(mut server) = TcpStream::connect(authority.as_str()).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, seen)
}

/// A SOCKS5 proxy (RFC 1928) that asks for `credentials` (RFC 1929) if given. It records
/// each request as `domain HOST:PORT` or `ip ADDR:PORT`, resolving names itself.
async fn socks5_proxy(credentials: Option<(&'static str, &'static str)>) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let _ = within(socks5_session(&mut client, credentials, &record)).await;
            });
        }
    });
    (addr, seen)
}

async fn socks5_session(
    client: &mut TcpStream,
    credentials: Option<(&str, &str)>,
    record: &Seen,
) -> std::io::Result<()> {
    // Greeting: VER NMETHODS METHODS.
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    assert_eq!(greeting[0], 5);
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods).await?;
    let method = if credentials.is_some() { 2 } else { 0 };
    if !methods.contains(&method) {
        client.write_all(&[5, 0xFF]).await?;
        return Ok(());
    }
    client.write_all(&[5, method]).await?;
    if let Some((user, password)) = credentials {
        // RFC 1929: VER ULEN UNAME PLEN PASSWD.
        let mut version_and_length = [0u8; 2];
        client.read_exact(&mut version_and_length).await?;
        let mut got_user = vec![0u8; version_and_length[1] as usize];
        client.read_exact(&mut got_user).await?;
        let password_length = client.read_u8().await?;
        let mut got_password = vec![0u8; password_length as usize];
        client.read_exact(&mut got_password).await?;
        let ok = got_user == user.as_bytes() && got_password == password.as_bytes();
        client.write_all(&[1, if ok { 0 } else { 1 }]).await?;
        if !ok {
            return Ok(());
        }
    }
    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    assert_eq!(&request[..3], &[5, 1, 0], "CONNECT");
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            format!("ip {}", std::net::Ipv4Addr::from(ip))
        }
        3 => {
            let length = client.read_u8().await?;
            let mut name = vec![0u8; length as usize];
            client.read_exact(&mut name).await?;
            format!("domain {}", String::from_utf8(name).unwrap())
        }
        other => panic!("address type {other}"),
    };
    let port = client.read_u16().await?;
    record.lock().unwrap().push(format!("{host}:{port}"));
    let name = host.split_once(' ').unwrap().1;
    let Ok(mut server) = TcpStream::connect((name, port)).await else {
        // Reply 5: connection refused.
        client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    let _ = tokio::io::copy_bidirectional(client, &mut server).await;
    Ok(())
}

/// Connects and checks one echo; `hello` is the first message a TLS test server sends.
async fn echo_once_after(builder: ClientBuilder, hello: Option<&str>) {
    let mut ws = within(builder.connect()).await.unwrap();
    if let Some(expected) = hello {
        let hello = within(ws.recv()).await.unwrap().unwrap();
        assert_eq!(hello.as_text(), Some(expected));
    }
    ws.send("through the proxy").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Some(Message::text("through the proxy"))
    );
}

async fn echo_once(builder: ClientBuilder) {
    echo_once_after(builder, None).await;
}

async fn echo_server() -> SocketAddr {
    let server = sockjet::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve(|mut ws| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    addr
}

#[tokio::test]
async fn http_connect_carries_basic_proxy_credentials() {
    let (proxy_addr, seen) = connect_proxy(Some("Basic YWxpY2U6c0BjcmV0"), None).await;
    let websocket = request_reporting_server().await;
    // The password is percent-encoded in the URL: "s@cret".
    let proxy = Proxy::parse(&format!("http://alice:s%40cret@{proxy_addr}")).unwrap();
    let report =
        reported_request(ClientBuilder::new(format!("ws://{websocket}/via-proxy")).proxy(proxy))
            .await;
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1);
    let connect_line = format!("CONNECT {websocket} HTTP/1.1");
    assert!(heads[0].starts_with(&connect_line), "{}", heads[0]);
    assert_eq!(
        header(&heads[0], "host"),
        Some(websocket.to_string().as_str())
    );
    // The proxy's credentials are for the proxy only.
    assert!(report.starts_with("/via-proxy"), "{report}");
    assert_eq!(header(&report, "proxy-authorization"), None, "{report}");
}

#[tokio::test]
async fn a_407_or_another_refusal_is_a_clear_error() {
    let (proxy_addr, _) = connect_proxy(Some("Basic YWxpY2U6c0BjcmV0"), None).await;
    let websocket = echo_server().await;
    for (proxy_url, expected) in [
        (
            format!("http://{proxy_addr}"),
            "407 Proxy Authentication Required (the proxy wants credentials",
        ),
        (
            format!("http://alice:wrong@{proxy_addr}"),
            "407 Proxy Authentication Required (the proxy refused the credentials)",
        ),
    ] {
        let text = handshake_failure(
            ClientBuilder::new(format!("ws://{websocket}/"))
                .proxy(Proxy::parse(&proxy_url).unwrap())
                .connect(),
        )
        .await;
        assert!(
            text.contains(&format!("refused CONNECT {websocket}")),
            "{text}"
        );
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("wrong"), "the password leaked: {text}");
    }

    let (refusing, _) = connect_proxy(None, Some(403)).await;
    let error = within(
        ClientBuilder::new(format!("ws://{websocket}/"))
            .proxy(Proxy::parse(&format!("http://{refusing}")).unwrap())
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("HTTP 403 Refused"), "{error}");
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_runs_tls_through_the_tunnel() {
    let (proxy_addr, seen) = connect_proxy(None, None).await;
    let pki = Pki::new(&["localhost"]);
    let server = tls_echo_server(&pki).await;
    let url = format!("wss://localhost:{}/", server.port());
    echo_once_after(
        ClientBuilder::new(url)
            .tls(sockjet::tls::ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
            .proxy(Proxy::parse(&format!("http://{proxy_addr}")).unwrap()),
        Some("alpn=http/1.1 sni=localhost"),
    )
    .await;
    let heads = seen.lock().unwrap().clone();
    let connect_line = format!("CONNECT localhost:{} HTTP/1.1", server.port());
    assert!(heads[0].starts_with(&connect_line), "{}", heads[0]);
}

#[tokio::test]
async fn socks5_sends_the_host_name_unresolved() {
    let (proxy_addr, seen) = socks5_proxy(None).await;
    let websocket = echo_server().await;
    for scheme in ["socks5h", "socks5"] {
        let proxy = Proxy::parse(&format!("{scheme}://{proxy_addr}")).unwrap();
        assert_eq!(proxy.kind(), ProxyKind::Socks5);
        echo_once(ClientBuilder::new(format!("ws://localhost:{}/", websocket.port())).proxy(proxy))
            .await;
    }
    // An IP address is sent as one.
    let proxy = Proxy::parse(&format!("socks5h://{proxy_addr}")).unwrap();
    echo_once(ClientBuilder::new(format!("ws://{websocket}/")).proxy(proxy)).await;
    let port = websocket.port();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("domain localhost:{port}"),
            format!("domain localhost:{port}"),
            format!("ip 127.0.0.1:{port}"),
        ]
    );
}

#[tokio::test]
async fn socks5_authenticates_with_username_and_password() {
    let (proxy_addr, seen) = socks5_proxy(Some(("bob", "p@ss"))).await;
    let websocket = echo_server().await;
    let url = format!("ws://localhost:{}/", websocket.port());
    let proxy = Proxy::parse(&format!("socks5h://bob:p%40ss@{proxy_addr}")).unwrap();
    echo_once(ClientBuilder::new(url.as_str()).proxy(proxy)).await;
    assert_eq!(seen.lock().unwrap().len(), 1);

    for proxy_url in [
        format!("socks5h://bob:wrong@{proxy_addr}"),
        format!("socks5h://{proxy_addr}"),
    ] {
        let text = handshake_failure(
            ClientBuilder::new(url.as_str())
                .proxy(Proxy::parse(&proxy_url).unwrap())
                .connect(),
        )
        .await;
        assert!(text.contains("SOCKS5 proxy"), "{text}");
        assert!(text.contains("refused"), "{text}");
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_runs_tls_through_socks5() {
    let (proxy_addr, seen) = socks5_proxy(None).await;
    let pki = Pki::new(&["localhost"]);
    let server = tls_echo_server(&pki).await;
    echo_once_after(
        ClientBuilder::new(format!("wss://localhost:{}/", server.port()))
            .tls(sockjet::tls::ClientTls::with_ca_pem(&pki.ca_pem).unwrap())
            .proxy(Proxy::parse(&format!("socks5h://{proxy_addr}")).unwrap()),
        Some("alpn=http/1.1 sni=localhost"),
    )
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("domain localhost:{}", server.port())]
    );
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_network_error_naming_it() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let error = within(
        ClientBuilder::new("ws://localhost:9/")
            .proxy(Proxy::parse(&format!("http://{addr}")).unwrap())
            .connect(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(
        error
            .to_string()
            .contains(&format!("cannot reach proxy http://{addr}")),
        "{error}"
    );
}

// ----- environment variables -----

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// The proxy chosen for `url` with `vars`, as `scheme://host:port`, or "direct".
fn chosen(url: &str, vars: &[(&str, &str)]) -> String {
    match Proxy::from_env_with(url, env(vars)).unwrap() {
        Some(proxy) => proxy.to_string(),
        None => "direct".to_owned(),
    }
}

#[test]
fn each_scheme_reads_its_variables_in_order() {
    let all = [
        ("wss_proxy", "http://wss:1"),
        ("ws_proxy", "http://ws:1"),
        ("socks_proxy", "socks5h://socks:1"),
        ("https_proxy", "http://https:1"),
        ("http_proxy", "http://http:1"),
        ("all_proxy", "http://all:1"),
    ];
    assert_eq!(chosen("wss://example.com/", &all), "http://wss:1");
    assert_eq!(chosen("ws://example.com/", &all), "http://ws:1");
    assert_eq!(chosen("wss://example.com/", &all[2..]), "socks5h://socks:1");
    assert_eq!(chosen("wss://example.com/", &all[3..]), "http://https:1");
    // http_proxy is for ws:// only.
    assert_eq!(chosen("wss://example.com/", &all[4..]), "http://all:1");
    assert_eq!(chosen("ws://example.com/", &all[4..]), "http://http:1");
    assert_eq!(chosen("ws://example.com/", &all[5..]), "http://all:1");
    assert_eq!(chosen("ws://example.com/", &[]), "direct");
}

#[test]
fn lower_case_wins_and_empty_values_are_unset() {
    let vars = [
        ("https_proxy", "http://lower:1"),
        ("HTTPS_PROXY", "http://upper:1"),
    ];
    assert_eq!(chosen("wss://example.com/", &vars), "http://lower:1");
    assert_eq!(chosen("wss://example.com/", &vars[1..]), "http://upper:1");
    let vars = [("https_proxy", " "), ("HTTPS_PROXY", "http://upper:1")];
    assert_eq!(chosen("wss://example.com/", &vars), "http://upper:1");
    // httpoxy: in a CGI script, HTTP_PROXY may come from a request's Proxy header.
    let vars = [("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")];
    assert_eq!(chosen("ws://example.com/", &vars), "direct");
    assert_eq!(chosen("ws://example.com/", &vars[..1]), "http://evil:1");
}

#[test]
fn values_without_a_scheme_and_credentials_are_understood() {
    assert_eq!(
        chosen("ws://example.com/", &[("http_proxy", "proxy.corp:3128")]),
        "http://proxy.corp:3128"
    );
    assert_eq!(
        chosen("ws://example.com/", &[("socks_proxy", "gw:1080")]),
        "socks5h://gw:1080"
    );
    let proxy = Proxy::from_env_with(
        "ws://example.com/",
        env(&[("all_proxy", "socks5://u:p%3Aw@gw")]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (proxy.kind(), proxy.port(), proxy.username()),
        (ProxyKind::Socks5, 1080, Some("u"))
    );
    assert_eq!(proxy.to_string(), "socks5h://u@gw:1080");
}

#[test]
fn no_proxy_and_loopback_go_direct() {
    let proxy = ("https_proxy", "http://proxy.corp:3128");
    let cases = [
        ("wss://example.com/", "example.com", "direct"),
        ("wss://api.example.com/", "example.com", "direct"),
        ("wss://api.example.com/", ".example.com", "direct"),
        ("wss://api.example.com/", "*.example.com", "direct"),
        (
            "wss://notexample.com/",
            "example.com",
            "http://proxy.corp:3128",
        ),
        ("wss://anything.org/", "*", "direct"),
        ("wss://example.com/", "example.com:443", "direct"),
        (
            "wss://example.com:8443/",
            "example.com:443",
            "http://proxy.corp:3128",
        ),
        ("wss://10.1.2.3/", "10.1.2.3", "direct"),
        ("wss://[2001:db8::1]/", "2001:db8::1", "direct"),
        ("wss://[2001:db8::1]:8443/", "[2001:db8::1]:8443", "direct"),
        ("wss://other.org/", "a.org, b.org ,other.org", "direct"),
        ("wss://EXAMPLE.com/", "Example.COM", "direct"),
    ];
    for (url, no_proxy, expected) in cases {
        assert_eq!(
            chosen(url, &[proxy, ("no_proxy", no_proxy)]),
            expected,
            "{url} with no_proxy={no_proxy}"
        );
        assert_eq!(
            chosen(url, &[proxy, ("NO_PROXY", no_proxy)]),
            expected,
            "{url} with NO_PROXY={no_proxy}"
        );
    }
    // Loopback never goes through an environment proxy: a proxy elsewhere cannot reach it.
    for url in [
        "ws://127.0.0.1:8765/",
        "ws://127.1.2.3/",
        "ws://[::1]:80/",
        "ws://localhost/",
        "ws://app.localhost/",
    ] {
        assert_eq!(
            chosen(url, &[("all_proxy", "http://proxy.corp:3128")]),
            "direct",
            "{url}"
        );
    }
}

#[test]
fn an_invalid_variable_is_named_in_the_error() {
    let error = Proxy::from_env_with(
        "wss://example.com/",
        env(&[("HTTPS_PROXY", "ftp://proxy.corp")]),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    assert!(error.to_string().contains("HTTPS_PROXY"), "{error}");
    assert!(error.to_string().contains("ftp://"), "{error}");
}

#[test]
fn proxy_urls_are_checked() {
    for url in [
        "https://proxy.corp",
        "socks4://proxy.corp",
        "proxy.corp:3128",
        "http://",
        "http://proxy.corp/path",
        "http://proxy.corp?query",
        "http://user@proxy.corp",
        "http://proxy.corp:99999",
    ] {
        assert_eq!(
            Proxy::parse(url).unwrap_err().kind(),
            ErrorKind::InvalidUrl,
            "{url}"
        );
    }
    let proxy = Proxy::parse("HTTP://[::1]:3128/").unwrap();
    assert_eq!((proxy.host(), proxy.port()), ("::1", 3128));
    assert_eq!(format!("{proxy:?}"), "Proxy(\"http://[::1]:3128\")");
}
