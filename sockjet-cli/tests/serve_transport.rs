//! `sockjet serve` over TLS and Unix sockets, with connection limits and the handshake
//! timeout, and its graceful shutdown under load. Everything talks to 127.0.0.1 or a Unix
//! socket in a temporary directory; every wait is bounded and children are killed on drop.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sockjet::{ClientBuilder, CloseCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Upper bound for any single wait; generous because CI machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A `sockjet serve` child, killed on drop.
struct Serve {
    child: Child,
    /// What follows `listening on ` in its first line.
    url: String,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Serve {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sockjet"))
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockjet serve");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (lines, receiver) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let line = match receiver.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no URL printed; stderr: {}",
                    stderr.join().unwrap_or_default()
                );
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self {
            child,
            url,
            stderr: Some(stderr),
        }
    }

    /// The `host:port` of a TCP URL.
    fn host_port(&self) -> &str {
        self.url.split_once("://").expect("a URL").1
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the exit; returns whether it succeeded, and stderr.
    fn finish(&mut self) -> (bool, String) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "sockjet serve did not exit in time"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.take().expect("once").join().expect("stderr");
        (status.success(), stderr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A directory for one test's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sockjet-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA and a `localhost` certificate signed by it: (CA DER, cert PEM, key PEM).
fn test_certificates() -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "sockjet CLI test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.der().clone(), cert.pem(), key.serialize_pem())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("timed out")
}

#[test]
fn tls_cert_and_key_serve_wss() {
    let (ca, cert, key) = test_certificates();
    let dir = TempDir::new("tls");
    let cert_path = dir.write("cert.pem", &cert);
    let key_path = dir.write("key.pem", &key);
    let mut server = Serve::start(&[
        "127.0.0.1:0",
        "--tls-cert",
        &cert_path,
        "--tls-key",
        &key_path,
    ]);
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = within(tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp))
            .await
            .unwrap();
        let mut ws = within(ClientBuilder::new("ws://localhost/secure").connect_on(tls))
            .await
            .unwrap();
        ws.send("over TLS").await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap().as_text(),
            Some("over TLS")
        );
        within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
            .await
            .unwrap();
    });
    server.terminate();
    let (success, log) = server.finish();
    assert!(success, "{log}");
    assert!(log.contains("path=\"/secure\""), "{log}");
}

#[test]
fn bad_tls_files_are_one_line() {
    let dir = TempDir::new("bad-tls");
    let empty = dir.write("empty.pem", "");
    let output = Command::new(env!("CARGO_BIN_EXE_sockjet"))
        .args([
            "serve",
            "127.0.0.1:0",
            "--tls-cert",
            &empty,
            "--tls-key",
            &empty,
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run sockjet serve");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "sockjet: TLS: {empty}: no certificate found (expected a PEM \"BEGIN CERTIFICATE\" block)"
        )
    );
    // --tls-cert needs --tls-key.
    let output = Command::new(env!("CARGO_BIN_EXE_sockjet"))
        .args(["serve", "--tls-cert", &empty])
        .output()
        .expect("run sockjet serve");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn max_connections_answers_503_and_the_handshake_timeout_drops_silent_clients() {
    let server = Serve::start(&[
        "127.0.0.1:0",
        "--max-connections",
        "1",
        "--handshake-timeout",
        "0.5",
    ]);
    let addr = server.host_port().to_owned();
    runtime().block_on(async {
        // Holds the only place, silently, until the handshake timeout drops it.
        let mut silent = TcpStream::connect(&addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut refused = TcpStream::connect(&addr).await.unwrap();
        let _ = refused
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = within(refused.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nRetry-After: "), "{answer}");

        let mut buf = [0u8; 16];
        let read = within(silent.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // Its place is free again.
        let mut served = false;
        for _ in 0..100 {
            if let Ok(Ok(mut ws)) =
                tokio::time::timeout(TIMEOUT, sockjet::connect(&format!("ws://{addr}"))).await
            {
                ws.send("in").await.unwrap();
                assert!(within(ws.recv()).await.unwrap().is_some());
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served);
    });
}

#[test]
fn max_connections_per_ip_answers_429() {
    let server = Serve::start(&["127.0.0.1:0", "--max-connections-per-ip", "1"]);
    let url = server.url.clone();
    runtime().block_on(async {
        let _first = within(sockjet::connect(&url)).await.unwrap();
        let error = within(sockjet::connect(&url)).await.unwrap_err();
        assert!(error.to_string().contains("429"), "{error}");
    });
}

#[cfg(unix)]
#[test]
fn unix_socket_echo_and_removal_on_exit() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("serve.sock");
    let mut server = Serve::start(&["--unix", &path.display().to_string()]);
    assert_eq!(server.url, format!("ws+unix://{}", path.display()));
    runtime().block_on(async {
        let stream = within(tokio::net::UnixStream::connect(&path))
            .await
            .unwrap();
        let mut ws = within(ClientBuilder::new("ws://localhost/local").connect_on(stream))
            .await
            .unwrap();
        ws.send("over a Unix socket").await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap().as_text(),
            Some("over a Unix socket")
        );
        within(ws.close(CloseCode::NORMAL_CLOSURE, ""))
            .await
            .unwrap();
    });
    server.terminate();
    let (success, log) = server.finish();
    assert!(success, "{log}");
    assert!(log.contains("peer=unix"), "{log}");
    assert!(!path.exists(), "the socket file is removed on exit");
}

#[cfg(unix)]
#[test]
fn sigterm_under_load_delivers_every_echo_before_1001() {
    let mut server = Serve::start(&["127.0.0.1:0"]);
    let url = server.url.clone();
    let (started, running) = mpsc::channel();
    let client = thread::spawn(move || {
        runtime().block_on(async {
            let (mut ws, sender) = within(sockjet::connect(&url)).await.unwrap().split();
            let streaming = tokio::spawn(async move {
                for number in 0u64..10_000_000 {
                    if sender.send(number.to_string()).await.is_err() {
                        break;
                    }
                }
            });
            let mut received = 0u64;
            loop {
                match within(ws.recv()).await {
                    Ok(Some(message)) => {
                        assert_eq!(message.as_text(), Some(received.to_string().as_str()));
                        received += 1;
                        if received == 100 {
                            started.send(()).unwrap();
                        }
                    }
                    Ok(None) => break,
                    Err(error) => panic!("after {received}: {error}"),
                }
            }
            streaming.abort();
            (received, within(ws.closed()).await)
        })
    });
    running.recv_timeout(TIMEOUT).expect("echoes flowing");
    server.terminate();
    let (received, closed) = client.join().expect("client thread");
    assert!(received >= 100);
    // Echoes arrived in order without a gap, up to the close frame (checked in the loop).
    assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{closed}");
    let (success, log) = server.finish();
    assert!(success, "{log}");
    assert!(log.contains("shutting down"), "{log}");
}
