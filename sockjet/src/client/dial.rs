//! Opening the byte stream under a client connection: TCP to the server, a tunnel
//! through a proxy, or a Unix socket; then TLS for `wss://`.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::{ClientBuilder, ProxyChoice, proxy::Proxy, target::Target};
use crate::{connection::Transport, error::Error, socket::Socket};

impl ClientBuilder {
    /// Connects to `target` and returns the stream and the peer's address (`None`
    /// through a proxy or a Unix socket).
    pub(super) async fn dial(
        &self,
        target: &Target,
    ) -> Result<(Socket, Option<SocketAddr>), Error> {
        #[cfg(unix)]
        if let Some(path) = &self.unix_socket {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|error| {
                    Error::from(std::io::Error::new(
                        error.kind(),
                        format!("cannot connect to Unix socket {}: {error}", path.display()),
                    ))
                })?;
            return Ok((self.secure_if_wss(stream, target).await?, None));
        }
        let proxy = match &self.proxy {
            ProxyChoice::FromEnv => Proxy::from_process_env(target)?,
            ProxyChoice::Explicit(proxy) => Some(proxy.clone()),
            ProxyChoice::Direct => None,
        };
        let (stream, peer) = match proxy {
            Some(proxy) => {
                let user_agent = self.handshake.user_agent.as_deref();
                (proxy.open_tunnel(target, user_agent).await?, None)
            }
            None => {
                let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
                stream.set_nodelay(true)?;
                let peer = stream.peer_addr().ok();
                (stream, peer)
            }
        };
        if target.secure {
            Ok((self.secure_if_wss(stream, target).await?, peer))
        } else {
            // Plain TCP keeps the socket layer's fast path.
            Ok((Socket::from(stream), peer))
        }
    }

    /// Runs TLS over `stream` for a `wss://` target; without the `tls` feature,
    /// `wss://` cannot be reached.
    async fn secure_if_wss(
        &self,
        stream: impl Transport,
        target: &Target,
    ) -> Result<Socket, Error> {
        if !target.secure {
            return Ok(Socket::other(stream));
        }
        #[cfg(feature = "tls")]
        {
            let tls = match &self.tls {
                Some(tls) => tls.clone(),
                None => crate::tls::ClientTls::default_roots()?,
            };
            Ok(Socket::other(tls.connect(&target.host, stream).await?))
        }
        #[cfg(not(feature = "tls"))]
        Err(
            Error::new(crate::error::ErrorKind::InvalidUrl).with_source(format!(
                "{}: wss:// needs sockjet's `tls` feature",
                target.url()
            )),
        )
    }
}
