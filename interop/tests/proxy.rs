//! sockjet's client through a real HTTP CONNECT proxy: Debian's `tinyproxy`, started by
//! the test on a free loopback port, with and without Basic proxy authentication.

use std::{net::TcpListener, path::PathBuf, process::Stdio, time::Duration};

use sockjet::{ClientBuilder, ConnectionConfig, ErrorKind, Message, Proxy, Server};
use sockjet_interop::deps;
use tokio::{
    process::{Child, Command},
    time::{sleep, timeout},
};

const LIMIT: Duration = Duration::from_secs(10);

/// A tinyproxy of the test's own, killed on drop.
struct Tinyproxy {
    port: u16,
    _child: Child,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tinyproxy {
    /// Starts one; `credentials` turns on Basic authentication (`BasicAuth user pass`).
    async fn start(credentials: Option<(&str, &str)>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = TempDir(
            std::env::temp_dir().join(format!("sockjet-tinyproxy-{}-{port}", std::process::id())),
        );
        std::fs::create_dir_all(&dir.0).unwrap();
        // No ConnectPort line: CONNECT is allowed to any port (tinyproxy's default
        // configuration allows only 443 and 563).
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 20\nLogLevel Info\n"
        );
        if let Some((user, pass)) = credentials {
            config.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let path = dir.0.join("tinyproxy.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(deps::tinyproxy())
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start tinyproxy");
        // Ready when it accepts connections.
        timeout(LIMIT, async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("tinyproxy listens");
        Self {
            port,
            _child: child,
            _dir: dir,
        }
    }
}

async fn echo_server() -> String {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/through-proxy", server.local_addr());
    tokio::spawn(server.serve(|mut ws| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    url
}

fn client(url: &str, proxy: &str) -> ClientBuilder {
    ClientBuilder::new(url)
        .connection(ConnectionConfig::default().open_timeout(Some(LIMIT)))
        .proxy(Proxy::parse(proxy).unwrap())
}

#[tokio::test]
async fn client_goes_through_tinyproxy() {
    let proxy = Tinyproxy::start(None).await;
    let url = echo_server().await;
    let mut ws = client(&url, &format!("http://127.0.0.1:{}", proxy.port))
        .connect()
        .await
        .expect("connect through tinyproxy");
    ws.send("through the proxy").await.unwrap();
    let echoed = timeout(LIMIT, ws.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Some(Message::text("through the proxy")));
    let big = Message::binary(vec![7u8; 300_000]);
    ws.send(big.clone()).await.unwrap();
    assert_eq!(timeout(LIMIT, ws.recv()).await.unwrap().unwrap(), Some(big));
}

#[tokio::test]
async fn tinyproxy_basic_auth_is_sent_and_a_refusal_is_clear() {
    let proxy = Tinyproxy::start(Some(("sock", "jet"))).await;
    let url = echo_server().await;
    let mut ws = client(&url, &format!("http://sock:jet@127.0.0.1:{}", proxy.port))
        .connect()
        .await
        .expect("connect with the right proxy credentials");
    ws.send("authenticated").await.unwrap();
    assert_eq!(
        timeout(LIMIT, ws.recv()).await.unwrap().unwrap(),
        Some(Message::text("authenticated"))
    );

    let refused = client(&url, &format!("http://sock:wrong@127.0.0.1:{}", proxy.port))
        .connect()
        .await
        .expect_err("wrong proxy credentials are refused");
    // tinyproxy 1.11 answers a wrong password with 401 rather than RFC 9110's 407.
    let text = refused.to_string();
    assert!(
        text.contains("refused CONNECT") && (text.contains("407") || text.contains("401")),
        "the error names the proxy's refusal and its status: {text}"
    );
    assert_ne!(refused.kind(), ErrorKind::Timeout);
}
