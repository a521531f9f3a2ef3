//! [`ServerTls`]: the certificates a server presents, and the rustls configuration built
//! from them.

use std::{collections::HashMap, fmt, io, path::Path, sync::Arc};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// The protocol a WebSocket handshake runs over, announced with ALPN (RFC 7301): a client
/// that offers `h2` first still gets HTTP/1.1, which the opening handshake needs.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// TLS for a server (`wss://`): a certificate chain and its private key, optionally more
/// certificates chosen by the name the client asks for (SNI), or a whole rustls
/// configuration. Give it to [`ServerBuilder::tls`](crate::ServerBuilder::tls).
///
/// Configurations built here use rustls' *ring* provider (chosen explicitly, never the
/// process default), TLS 1.2 and 1.3, and announce ALPN `http/1.1`.
///
/// Cheap to clone: the configuration is shared.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use sockjet::{Server, tls::ServerTls};
/// let tls = ServerTls::from_pem_files("cert.pem", "key.pem")?
///     .with_sni_pem_files("api.example.com", "api-cert.pem", "api-key.pem")?;
/// let server = Server::builder().tls(tls).bind("0.0.0.0:443").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    /// The certificates, when sockjet built the configuration (so more can be added);
    /// `None` for a configuration given whole.
    certificates: Option<Certificates>,
}

impl ServerTls {
    /// Loads a PEM certificate chain (the server's certificate first, then any
    /// intermediates) and a PEM private key (PKCS #8, PKCS #1 or SEC1) from files.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] whose message names the file and says what is wrong: it cannot be
    /// read, holds no certificate or no private key, or the key does not match the
    /// certificate.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let tls = sockjet::tls::ServerTls::from_pem_files("cert.pem", "key.pem")?;
    /// # Ok(()) }
    /// ```
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> io::Result<Self> {
        Self::from_certified_key(certified_key_from_files(
            cert_chain_path.as_ref(),
            key_path.as_ref(),
        )?)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    ///
    /// No certificate or no private key in the text, or a key that does not match.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let cert = std::fs::read("cert.pem")?;
    /// let key = std::fs::read("key.pem")?;
    /// let tls = sockjet::tls::ServerTls::from_pem(&cert, &key)?;
    /// # Ok(()) }
    /// ```
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        Self::from_certified_key(certified_key(
            cert_pem,
            key_pem,
            &Source::Memory("certificate"),
            &Source::Memory("private key"),
        )?)
    }

    /// Uses a rustls configuration as it is: its certificates, protocol versions, ALPN
    /// protocols and crypto provider. Announce `http/1.1` in its `alpn_protocols` (or
    /// nothing): a client that negotiates `h2` cannot open a WebSocket over HTTP/1.1.
    ///
    /// ```no_run
    /// # fn f(config: std::sync::Arc<sockjet::tls::rustls::ServerConfig>) {
    /// let tls = sockjet::tls::ServerTls::from_rustls_config(config);
    /// # }
    /// ```
    pub fn from_rustls_config(config: Arc<ServerConfig>) -> Self {
        Self {
            config,
            certificates: None,
        }
    }

    /// Adds a certificate for clients that ask for `server_name` with SNI (RFC 6066),
    /// from PEM files. `*.example.com` matches one label (`a.example.com`). The first
    /// certificate is the default: it answers clients that send no name or a name with
    /// no certificate of its own.
    ///
    /// # Errors
    ///
    /// As [`from_pem_files`](Self::from_pem_files), and for a `ServerTls` made with
    /// [`from_rustls_config`](Self::from_rustls_config), whose certificates are rustls'
    /// to choose.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let tls = sockjet::tls::ServerTls::from_pem_files("default.pem", "default.key")?
    ///     .with_sni_pem_files("chat.example.com", "chat.pem", "chat.key")?;
    /// # Ok(()) }
    /// ```
    pub fn with_sni_pem_files(
        self,
        server_name: &str,
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> io::Result<Self> {
        let key = certified_key_from_files(cert_chain_path.as_ref(), key_path.as_ref())?;
        self.with_sni_key(server_name, key)
    }

    /// Like [`with_sni_pem_files`](Self::with_sni_pem_files), from PEM text in memory.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Self::from_pem), and for a `ServerTls` made with
    /// [`from_rustls_config`](Self::from_rustls_config).
    ///
    /// ```no_run
    /// # fn f(tls: sockjet::tls::ServerTls, cert: &[u8], key: &[u8]) -> std::io::Result<()> {
    /// let tls = tls.with_sni_pem("chat.example.com", cert, key)?;
    /// # Ok(()) }
    /// ```
    pub fn with_sni_pem(
        self,
        server_name: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> io::Result<Self> {
        let key = certified_key(
            cert_pem,
            key_pem,
            &Source::Memory("certificate"),
            &Source::Memory("private key"),
        )?;
        self.with_sni_key(server_name, key)
    }

    /// The rustls configuration in use.
    ///
    /// ```no_run
    /// # fn f(tls: &sockjet::tls::ServerTls) {
    /// assert_eq!(tls.rustls_config().alpn_protocols, [b"http/1.1".to_vec()]);
    /// # }
    /// ```
    pub fn rustls_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the server side of the TLS handshake over `stream`.
    pub(crate) async fn accept<T>(
        &self,
        stream: T,
    ) -> io::Result<tokio_rustls::server::TlsStream<T>>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
            .accept(stream)
            .await
    }

    fn from_certified_key(key: CertifiedKey) -> io::Result<Self> {
        let certificates = Certificates {
            default: Arc::new(key),
            by_name: Arc::new(HashMap::new()),
        };
        Ok(Self {
            config: certificates.config()?,
            certificates: Some(certificates),
        })
    }

    fn with_sni_key(self, server_name: &str, key: CertifiedKey) -> io::Result<Self> {
        let Some(mut certificates) = self.certificates else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot add an SNI certificate to a rustls configuration given whole \
                 (ServerTls::from_rustls_config): add it to its certificate resolver",
            ));
        };
        let name = normalize_name(server_name);
        if name.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an SNI certificate needs a server name",
            ));
        }
        Arc::make_mut(&mut certificates.by_name).insert(name, Arc::new(key));
        Ok(Self {
            config: certificates.config()?,
            certificates: Some(certificates),
        })
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ServerTls");
        match &self.certificates {
            Some(certificates) => {
                let mut names: Vec<&str> =
                    certificates.by_name.keys().map(String::as_str).collect();
                names.sort_unstable();
                debug.field("sni_names", &names)
            }
            None => debug.field("config", &"rustls::ServerConfig"),
        }
        .finish_non_exhaustive()
    }
}

/// The default certificate and the ones chosen by SNI name.
#[derive(Clone, Debug)]
struct Certificates {
    default: Arc<CertifiedKey>,
    by_name: Arc<HashMap<String, Arc<CertifiedKey>>>,
}

impl Certificates {
    fn config(&self) -> io::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| io::Error::other(format!("TLS configuration: {error}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = client_hello.server_name().and_then(|name| {
            let name = normalize_name(name);
            self.by_name.get(&name).or_else(|| {
                // `*.example.com` covers exactly one more label.
                let (_, parent) = name.split_once('.')?;
                self.by_name.get(&format!("*.{parent}"))
            })
        });
        Some(chosen.unwrap_or(&self.default).clone())
    }
}

/// DNS names compare without case and without a trailing dot.
fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// rustls' *ring* provider, named explicitly rather than taken from the process default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where PEM text came from, for error messages.
enum Source<'a> {
    File(&'a Path),
    Memory(&'static str),
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Memory(what) => write!(f, "the {what} PEM"),
        }
    }
}

fn certified_key_from_files(cert_path: &Path, key_path: &Path) -> io::Result<CertifiedKey> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot read the TLS {what} file {}: {error}",
                    path.display()
                ),
            )
        })
    };
    let cert_pem = read(cert_path, "certificate")?;
    let key_pem = read(key_path, "private key")?;
    certified_key(
        &cert_pem,
        &key_pem,
        &Source::File(cert_path),
        &Source::File(key_path),
    )
}

fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_source: &Source<'_>,
    key_source: &Source<'_>,
) -> io::Result<CertifiedKey> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("{cert_source}: invalid PEM: {error}")))?;
    if chain.is_empty() {
        return Err(invalid(format!(
            "{cert_source}: no certificate found (expected a PEM \"BEGIN CERTIFICATE\" block)"
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => invalid(format!(
            "{key_source}: no private key found (expected a PEM \"BEGIN PRIVATE KEY\", \
             \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)"
        )),
        error => invalid(format!("{key_source}: invalid PEM: {error}")),
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => invalid(format!(
            "the private key in {key_source} does not match the certificate in {cert_source}"
        )),
        rustls::Error::InvalidCertificate(error) => {
            invalid(format!("{cert_source}: invalid certificate: {error}"))
        }
        error => invalid(format!("{key_source}: unusable private key: {error}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_without_case_or_trailing_dot() {
        assert_eq!(normalize_name("Chat.Example.COM."), "chat.example.com");
    }

    #[test]
    fn missing_pieces_are_named() {
        let error = ServerTls::from_pem(b"", b"").unwrap_err();
        assert!(
            error.to_string().contains("no certificate found"),
            "{error}"
        );
        let error =
            ServerTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/cert.pem"),
            "{error}"
        );
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
