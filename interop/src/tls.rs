//! `sockjet serve --tls-cert --tls-key` against peers over `wss://`, with a certificate
//! authority made for the test (rcgen): the peer trusts only that CA.
//!
//! The peer (`peers/python_wss_client.py`) opens `/echo`, reports the TLS version and the
//! ALPN protocol, checks three echoes and closes with 1000; then opens `/stay` and waits
//! while the test sends SIGTERM to the server, which must close it with 1001 "server
//! shutting down" and exit with status 0.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData as _,
};
use serde_json::{Value, json};
use sockjet::Message;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::timeout,
};

use crate::{
    deps,
    process::{PeerCommand, PeerProcess},
    scenario::{message_observation, pattern},
};

/// Files of a test CA and a server certificate it signed, in a temporary directory that
/// is removed on drop.
pub struct TestPki {
    dir: PathBuf,
    /// The CA certificate (PEM), for the peer to trust.
    pub ca: PathBuf,
    /// The server's certificate (PEM), for `localhost` and `127.0.0.1`.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The base64 SHA-256 of the server's public key (SubjectPublicKeyInfo), for
    /// Chromium's `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: String,
}

impl TestPki {
    /// Makes a CA and a server certificate, and writes them under the system's temporary
    /// directory.
    ///
    /// # Panics
    ///
    /// If a key cannot be generated or a file written.
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("sockjet-interop-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test PKI directory");

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sockjet interop test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let write = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("write a PEM file");
            path
        };
        let spki = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
        Self {
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki.as_ref()),
            ca: write("ca.pem", &ca_cert.pem()),
            cert: write("cert.pem", &cert.pem()),
            key: write("key.pem", &key.serialize_pem()),
            dir,
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds the `sockjet` binary (a no-op when it is up to date) and returns its path:
/// `cargo test -p sockjet-interop` does not build other packages' binaries by itself.
///
/// # Panics
///
/// If the build fails.
pub fn sockjet_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        // With sockjet-interop selected too, dependencies get the same features as in
        // this test's own build, so the two builds share them instead of rebuilding
        // each other's.
        .args([
            "build",
            "--quiet",
            "-p",
            "sockjet-cli",
            "-p",
            "sockjet-interop",
            "--bin",
            "sockjet",
        ])
        .current_dir(deps::repo_root())
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build -p sockjet-cli");
    assert!(status.success(), "cargo build -p sockjet-cli failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| deps::repo_root().join("target"));
    let binary = target.join("debug/sockjet");
    assert!(binary.is_file(), "{} is missing", binary.display());
    binary
}

/// A `sockjet serve` child in its own process group, killed on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    async fn start(binary: &Path, args: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(binary)
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start sockjet serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("sockjet serve prints its URL in time")
            .expect("read sockjet serve's stdout")
            .expect("a line from sockjet serve");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    /// SIGTERM, then the exit status within 20 s.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running").to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("run kill");
        assert!(killed.success());
        timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("sockjet serve exits in time")
            .expect("wait for sockjet serve")
    }
}

/// Runs `peer` (called as `PEER wss://127.0.0.1:PORT CA.pem`) against `sockjet serve` with
/// TLS, and checks what it reports.
///
/// # Panics
///
/// On any difference, with the peer's output.
pub async fn sockjet_serve_wss_with(peer: PeerCommand) {
    let pki = TestPki::new(&peer.name.replace(' ', "-"));
    let binary = sockjet_binary();
    let mut server = Serve::start(
        &binary,
        &[
            "127.0.0.1:0".as_ref(),
            "--tls-cert".as_ref(),
            pki.cert.as_os_str(),
            "--tls-key".as_ref(),
            pki.key.as_os_str(),
        ],
    )
    .await;
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let mut process = PeerProcess::spawn(&peer.arg(&server.url).arg(&pki.ca));
    let expected_echoes = [
        Message::text("héllo over wss ✓"),
        Message::binary((0..=255).collect::<Vec<u8>>()),
        Message::binary(pattern(1 << 20, 31, 7, 251)),
    ]
    .map(|message| message_observation(&message));
    let checks = async |process: &mut PeerProcess| {
        let open = process.next_event().await?;
        expect(&open["event"], "open", &open)?;
        expect(&open["alpn"], "http/1.1", &open)?;
        if !matches!(open["tls_version"].as_str(), Some("TLSv1.2" | "TLSv1.3")) {
            return Err(format!("TLS version: {open}"));
        }
        for expected in &expected_echoes {
            let echo = process.next_event().await?;
            if &echo != expected {
                return Err(format!("echo {echo}, expected {expected}"));
            }
        }
        let closed = process.next_event().await?;
        if closed != json!({"event": "closed", "code": 1000, "reason": "done"}) {
            return Err(format!("normal close: {closed}"));
        }
        let open = process.next_event().await?;
        expect(&open["path"], "/stay", &open)?;
        let waiting = process.next_event().await?;
        expect(&waiting["event"], "waiting", &waiting)?;
        Ok(())
    };
    // Every observation is awaited within `EVENT_TIMEOUT`.
    if let Err(error) = checks(&mut process).await {
        process.fail(error);
    }
    // Graceful shutdown: the waiting connection is closed with 1001.
    let status = server.terminate().await;
    let checks = async |process: &mut PeerProcess| {
        let closed = process.next_event().await?;
        if closed != json!({"event": "closed", "code": 1001, "reason": "server shutting down"}) {
            return Err(format!("shutdown close: {closed}"));
        }
        let done = process.next_event().await?;
        expect(&done["event"], "done", &done)
    };
    if let Err(error) = checks(&mut process).await {
        process.fail(error);
    }
    if let Err(error) = process.finish().await {
        process.fail(error);
    }
    assert!(status.success(), "sockjet serve exited with {status}");
}

fn expect(value: &Value, expected: &str, event: &Value) -> Result<(), String> {
    match value.as_str() == Some(expected) {
        true => Ok(()),
        false => Err(format!("expected {expected:?} in {event}")),
    }
}
