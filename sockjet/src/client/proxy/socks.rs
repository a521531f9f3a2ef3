//! SOCKS5 tunnels (RFC 1928, username/password authentication of RFC 1929), with
//! `tokio-socks`.

use tokio::net::TcpStream;
use tokio_socks::{Error as SocksError, tcp::Socks5Stream};

use super::{super::target::Target, Proxy, proxy_error};
use crate::error::{Error, ErrorKind};

/// Asks the SOCKS5 proxy on `stream` to connect to `target`. A host name is sent as a
/// name (address type 3, RFC 1928 §5), for the proxy to resolve; an IP address as one.
pub(super) async fn tunnel(
    stream: TcpStream,
    proxy: &Proxy,
    target: &Target,
) -> Result<TcpStream, Error> {
    let destination = (target.host.as_str(), target.port);
    let result = match &proxy.credentials {
        Some(credentials) => {
            Socks5Stream::connect_with_password_and_socket(
                stream,
                destination,
                &credentials.user,
                &credentials.password,
            )
            .await
        }
        None => Socks5Stream::connect_with_socket(stream, destination).await,
    };
    match result {
        Ok(tunnel) => Ok(tunnel.into_inner()),
        Err(error) => Err(socks_error(proxy, target, error)),
    }
}

/// A SOCKS failure: the proxy could not reach the server (a network error, worth trying
/// again), or it refused us (a handshake failure).
fn socks_error(proxy: &Proxy, target: &Target, error: SocksError) -> Error {
    let authority = target.host_port();
    match error {
        SocksError::Io(io) => Error::from(std::io::Error::new(
            io.kind(),
            format!("SOCKS5 proxy {proxy}, connecting to {authority}: {io}"),
        )),
        SocksError::GeneralSocksServerFailure
        | SocksError::NetworkUnreachable
        | SocksError::HostUnreachable
        | SocksError::ConnectionRefused
        | SocksError::TtlExpired => proxy_error(
            ErrorKind::Io,
            format!("SOCKS5 proxy {proxy} could not connect to {authority}: {error}"),
        ),
        SocksError::NoAcceptableAuthMethods if proxy.credentials.is_none() => proxy_error(
            ErrorKind::Handshake,
            format!(
                "SOCKS5 proxy {proxy} refused to connect to {authority}: it wants credentials (user:password@ in the proxy URL)"
            ),
        ),
        error => proxy_error(
            ErrorKind::Handshake,
            format!("SOCKS5 proxy {proxy} refused to connect to {authority}: {error}"),
        ),
    }
}
