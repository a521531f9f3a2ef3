//! sockjet's client over `wss://` against another implementation's TLS server, with a
//! test CA generated here: the TLS handshake (certificate chain to the test CA, name
//! `localhost`, SNI, ALPN `http/1.1`), then echoes and a clean close.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use sockjet::{ClientBuilder, CloseCode, Message, tls::ClientTls};

use crate::{
    process::PeerCommand,
    scenario::{beside_peer, check_events, spawn_listening, step},
};

/// A test CA and a server certificate for `localhost` it signed, as PEM files in a
/// directory of their own, removed on drop.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
    /// The CA's certificate, PEM.
    pub ca_pem: String,
}

impl TestCertificates {
    /// Generates the CA and the server certificate and writes `cert.pem` (the server's
    /// certificate) and `key.pem` (its PKCS#8 key).
    ///
    /// # Panics
    ///
    /// If generating or writing fails.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sockjet interop test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca_params
            .self_signed(&ca_key)
            .expect("CA certificate")
            .pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("server params")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        let dir = std::env::temp_dir().join(format!(
            "sockjet-interop-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key.pem");
        Self { dir, ca_pem }
    }

    /// The server certificate's PEM file.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The server key's PEM file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs sockjet's client against `server` (a peer that serves one `wss://` connection
/// with the certificate and key of `certificates`, first sends `alpn=... sni=...`, then
/// echoes, and reports the close it received): checks what TLS negotiated, echoes text,
/// binary and a compressed 256 KiB message, closes with 1000; also checks that a client
/// trusting another CA is refused with a certificate error.
pub async fn sockjet_wss_client_with(server: PeerCommand, certificates: &TestCertificates) {
    let started = std::time::Instant::now();
    let (mut peer, port) = spawn_listening(&server).await;
    let url = format!("wss://localhost:{port}/secure");
    let run = async {
        // Another CA: the certificate must not verify. The server sees a failed TLS
        // handshake, not a connection.
        let stranger = TestCertificates::new();
        let untrusted = ClientTls::with_ca_pem(&stranger.ca_pem).map_err(|e| e.to_string())?;
        let refused = step(
            "connecting with another CA",
            ClientBuilder::new(url.as_str()).tls(untrusted).connect(),
        )
        .await?;
        match refused {
            Err(error) if error.to_string().contains("invalid peer certificate") => {}
            Err(error) => return Err(format!("another CA: unexpected error {error}")),
            Ok(_) => return Err("a client trusting another CA connected".to_owned()),
        }

        let tls = ClientTls::with_ca_pem(&certificates.ca_pem).map_err(|e| e.to_string())?;
        let mut ws = step(
            "connecting",
            ClientBuilder::new(url.as_str()).tls(tls).connect(),
        )
        .await?
        .map_err(|error| format!("connecting to {url}: {error}"))?;
        let hello = step("hello", ws.recv()).await?.map_err(|e| e.to_string())?;
        let expected = Message::text("alpn=http/1.1 sni=localhost");
        if hello.as_ref() != Some(&expected) {
            return Err(format!("TLS negotiated {hello:?}, expected {expected:?}"));
        }
        let big = "wss ".repeat(64 * 1024);
        for message in [
            Message::text("hello over TLS"),
            Message::binary(vec![0u8, 1, 2, 255]),
            Message::text(big),
        ] {
            step("sending", ws.send(message.clone()))
                .await?
                .map_err(|e| e.to_string())?;
            let echoed = step("echo", ws.recv()).await?.map_err(|e| e.to_string())?;
            if echoed.as_ref() != Some(&message) {
                return Err(format!("echo of a {}-byte message differs", message.len()));
            }
        }
        step("closing", ws.close(CloseCode::NORMAL_CLOSURE, "done"))
            .await?
            .map_err(|e| e.to_string())?;
        let closed = step("closed", ws.closed()).await?;
        if !closed.is_ok() {
            return Err(format!("the close was not clean: {closed}"));
        }
        Ok::<_, String>(format!("compressed: {}", ws.is_compressed()))
    };
    let limit = Duration::from_secs(60);
    let (summary, events) = beside_peer(&mut peer, limit, Some("sockjet wss client"), run).await;
    check_events(
        &peer,
        &events[1..],
        &[
            json!({"event": "closed", "code": 1000, "reason": "done"}),
            json!({"event": "done"}),
        ],
    );
    println!(
        "{} ↔ sockjet wss client: ok in {:?} ({summary})",
        peer.name(),
        started.elapsed()
    );
}
