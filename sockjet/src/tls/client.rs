//! [`ClientTls`]: the TLS settings of a `wss://` client.

use std::{
    fmt, io,
    path::Path,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use rustls::{ClientConfig, RootCertStore, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::{
    connection::Transport,
    error::{Error, ErrorKind},
};

/// The TLS settings of a `wss://` client: which certificate authorities it trusts.
///
/// Without [`ClientBuilder::tls`](crate::ClientBuilder::tls), a `wss://` connection
/// trusts the system's root certificates ([`native_roots`](Self::native_roots)), loaded
/// once per process.
///
/// Every configuration built here verifies the server's certificate chain and its name
/// (the URL's host, a DNS name or an IP address), uses the *ring* provider and offers ALPN
/// `http/1.1`. There is deliberately no switch to turn verification off: a program that
/// really wants that (a test tool, like `sockjet connect --insecure`) builds its own
/// [`rustls::ClientConfig`] and passes it to [`from_rustls_config`](Self::from_rustls_config).
///
/// ```no_run
/// # async fn f() -> Result<(), sockjet::Error> {
/// use sockjet::{ClientBuilder, tls::ClientTls};
/// // A private CA, e.g. for a staging server:
/// let tls = ClientTls::ca_file("ca.pem")?;
/// let ws = ClientBuilder::new("wss://staging.example:8443/feed").tls(tls).connect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts the operating system's root certificates, read by [`rustls-native-certs`]:
    /// on Linux the distribution's CA bundle (e.g. `/etc/ssl/certs/ca-certificates.crt`),
    /// on macOS the keychain, on Windows the system store.
    ///
    /// The `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (a directory of PEM files)
    /// environment variables, when set, replace the system's locations, as with OpenSSL.
    /// Certificates that cannot be parsed are skipped.
    ///
    /// The system's roots were chosen over a compiled-in list (`webpki-roots`) so that the
    /// client trusts what the rest of the machine trusts, including a company's private CA
    /// installed there, and follows the system's updates and removals.
    ///
    /// [`rustls-native-certs`]: https://docs.rs/rustls-native-certs
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Handshake`] if no root certificate could be loaded (a minimal container
    /// without a CA bundle: install one, e.g. Debian's `ca-certificates`, or set
    /// `SSL_CERT_FILE`, or use [`ca_file`](Self::ca_file)).
    ///
    /// ```no_run
    /// let tls = sockjet::tls::ClientTls::native_roots().expect("system CA certificates");
    /// ```
    pub fn native_roots() -> Result<Self, Error> {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            let why = match errors.is_empty() {
                true => String::new(),
                false => format!(" ({})", errors.join("; ")),
            };
            return Err(tls_error(format!(
                "no root certificates found in the system's store{why}; install a CA \
                 bundle, set SSL_CERT_FILE or SSL_CERT_DIR, or give a CA file"
            )));
        }
        Ok(Self::with_roots(roots))
    }

    /// Trusts only the certificate authorities of `pem` (one or more `CERTIFICATE`
    /// blocks), instead of the system's roots: for a private PKI or a test CA, like
    /// `curl --cacert`. To trust both, build a [`rustls::ClientConfig`] with both sets
    /// and use [`from_rustls_config`](Self::from_rustls_config).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Handshake`] if the PEM holds no certificate or one that cannot be used
    /// as a trust anchor.
    ///
    /// ```
    /// let error = sockjet::tls::ClientTls::with_ca_pem("not a certificate").unwrap_err();
    /// assert!(error.to_string().contains("no certificate"));
    /// ```
    pub fn with_ca_pem(pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        Self::from_pem(pem.as_ref(), "the PEM data")
    }

    /// Trusts only the certificate authorities of the PEM file at `path`; see
    /// [`with_ca_pem`](Self::with_ca_pem).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the file cannot be read, else as
    /// [`with_ca_pem`](Self::with_ca_pem).
    ///
    /// ```
    /// assert!(sockjet::tls::ClientTls::ca_file("/nonexistent/ca.pem").is_err());
    /// ```
    pub fn ca_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|error| {
            Error::from(io::Error::new(
                error.kind(),
                format!("cannot read CA file {}: {error}", path.display()),
            ))
        })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// Uses a rustls configuration as it is: client certificates, other roots, a custom
    /// verifier. Its crypto provider and ALPN list are its own (set `alpn_protocols` to
    /// `[b"http/1.1"]` to offer ALPN like the other constructors).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let config = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()
    /// .unwrap()
    /// .with_root_certificates(rustls::RootCertStore::empty())
    /// .with_no_client_auth();
    /// let _tls = sockjet::tls::ClientTls::from_rustls_config(Arc::new(config));
    /// ```
    pub fn from_rustls_config(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }

    /// The rustls configuration in use.
    ///
    /// ```no_run
    /// let tls = sockjet::tls::ClientTls::native_roots().unwrap();
    /// assert_eq!(tls.rustls_config().alpn_protocols, [b"http/1.1".to_vec()]);
    /// ```
    pub fn rustls_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The system's roots, loaded on first use and shared by every connection of the
    /// process that was not given other settings.
    pub(crate) fn default_roots() -> Result<Self, Error> {
        static DEFAULT: OnceLock<Result<ClientTls, String>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Self::native_roots().map_err(|error| error.to_string()))
            .clone()
            .map_err(tls_error)
    }

    /// Runs the TLS handshake over `stream` for the server `host` (SNI and certificate
    /// name; an IP address is checked against the certificate's IP addresses and sent
    /// without SNI, as RFC 6066 §3 requires).
    pub(crate) async fn connect<S: Transport>(
        &self,
        host: &str,
        stream: S,
    ) -> Result<ClientTlsStream<S>, Error> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            Error::new(ErrorKind::InvalidUrl)
                .with_source(format!("{host} is not a valid TLS server name"))
        })?;
        TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
            .map(ClientTlsStream)
            .map_err(|error| handshake_failure(host, error))
    }

    fn from_pem(pem: &[u8], origin: &str) -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate
                .map_err(|error| tls_error(format!("invalid PEM in {origin}: {error}")))?;
            roots.add(certificate).map_err(|error| {
                tls_error(format!("unusable CA certificate in {origin}: {error}"))
            })?;
        }
        if roots.is_empty() {
            return Err(tls_error(format!("no certificate found in {origin}")));
        }
        Ok(Self::with_roots(roots))
    }

    fn with_roots(roots: RootCertStore) -> Self {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::from_rustls_config(Arc::new(with_alpn(config)))
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// A client TLS stream that takes a TCP end without TLS `close_notify` as the end of the
/// stream.
///
/// `close_notify` protects protocols whose messages could be cut short undetected;
/// WebSocket frames carry their lengths and the connection ends with a close frame
/// (RFC 6455 §5.5.1), so a truncated stream still shows as an abnormal closure (1006).
/// Many servers close TCP right after the closing handshake without `close_notify`:
/// taking that as an error would turn clean closes into failures.
pub(crate) struct ClientTlsStream<S>(TlsStream<S>);

impl<S: Transport> AsyncRead for ClientTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: Transport> AsyncWrite for ClientTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The *ring* provider, chosen explicitly for every configuration.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// RFC 6455 §4.1: the opening handshake is an HTTP/1.1 request, so ALPN offers
/// `http/1.1` (a server that also speaks HTTP/2 must not pick `h2` for it).
fn with_alpn(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A TLS setup error: no usable trust anchors.
fn tls_error(message: String) -> Error {
    Error::new(ErrorKind::Handshake).with_source(TlsError(message))
}

/// A failed TLS handshake. A rustls error (a certificate that does not verify, a
/// protocol alert) is a [`ErrorKind::Handshake`] failure that trying again will not fix;
/// an I/O error during the handshake stays a network error.
fn handshake_failure(host: &str, error: io::Error) -> Error {
    let is_tls = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    let message = format!("TLS handshake with {host} failed: {error}");
    if is_tls {
        tls_error(message)
    } else {
        Error::from(io::Error::new(error.kind(), message))
    }
}

/// A TLS failure that is not a network error.
#[derive(Debug)]
pub(crate) struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}
