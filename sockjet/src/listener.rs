//! The listening socket of a [`Server`](crate::Server): TCP, or a Unix domain socket.

use std::{
    fmt, io,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use tokio::net::{TcpListener, TcpStream};

/// Where a [`Server`](crate::Server) listens; see
/// [`Server::listen_addr`](crate::Server::listen_addr).
///
/// Displays as `127.0.0.1:8765`, or `unix:/run/app.sock` for a Unix domain socket.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let server = sockjet::Server::bind("127.0.0.1:0").await?;
/// match server.listen_addr() {
///     sockjet::ListenAddr::Tcp(addr) => println!("ws://{addr}"),
///     other => println!("{other}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// The path of a Unix domain socket.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => addr.fmt(f),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    /// With whether the sockets it accepts come with `TCP_NODELAY` already set.
    Tcp(TcpListener, NoDelay),
    /// The path is removed when the listener is dropped, so that the next server can bind
    /// it again.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, UnlinkOnDrop),
}

/// Removes a Unix socket's file when the listener that made it goes away.
#[derive(Debug)]
pub(crate) struct UnlinkOnDrop(PathBuf);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether the sockets a TCP listener accepts have `TCP_NODELAY` set already.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum NoDelay {
    /// Set on the listening socket, and accepted sockets inherit it (Linux copies the
    /// listener's options into each accepted socket): a system call less per connection.
    Inherited,
    /// To be set on each accepted socket.
    PerConnection,
}

/// An accepted connection, before any handshake.
pub(crate) enum Accepted {
    Tcp(TcpStream, NoDelay),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// Wraps a TCP listener, setting `TCP_NODELAY` on it where accepted sockets inherit it.
    pub(crate) fn tcp(listener: TcpListener) -> Self {
        let nodelay = match set_listener_nodelay(&listener) {
            true => NoDelay::Inherited,
            false => NoDelay::PerConnection,
        };
        Self::Tcp(listener, nodelay)
    }

    #[cfg(unix)]
    pub(crate) fn bind_unix(path: &Path) -> io::Result<Self> {
        let listener = tokio::net::UnixListener::bind(path)?;
        Ok(Self::Unix(listener, UnlinkOnDrop(path.to_owned())))
    }

    pub(crate) fn listen_addr(&self) -> io::Result<ListenAddr> {
        match self {
            Self::Tcp(listener, _) => listener.local_addr().map(ListenAddr::Tcp),
            #[cfg(unix)]
            Self::Unix(_, path) => Ok(ListenAddr::Unix(path.0.clone())),
        }
    }

    /// Accepts one connection; the peer address is `None` for a Unix socket.
    pub(crate) async fn accept(&self) -> io::Result<(Accepted, Option<SocketAddr>)> {
        match self {
            Self::Tcp(listener, nodelay) => {
                let (stream, peer) = listener.accept().await?;
                Ok((Accepted::Tcp(stream, *nodelay), Some(peer)))
            }
            #[cfg(unix)]
            Self::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok((Accepted::Unix(stream), None))
            }
        }
    }
}

impl Accepted {
    /// Answers with `response` and closes, without a task or a buffer: for connections
    /// refused before any per-connection state exists.
    ///
    /// Bytes the client already sent are read and dropped first: closing a socket with
    /// unread input makes the kernel send a reset instead of a FIN, and some clients then
    /// drop the answer unread. The answer is short and the socket's send buffer empty, so
    /// one non-blocking write sends all of it.
    pub(crate) fn refuse(self, response: &[u8]) {
        // Through the standard library's socket: tokio's `try_read` and `try_write` do not
        // even try before the reactor has reported readiness, which a socket accepted a
        // moment ago has not had yet.
        match self {
            Self::Tcp(stream, _) => {
                if let Ok(stream) = stream.into_std() {
                    answer_and_close(stream, response);
                }
            }
            #[cfg(unix)]
            Self::Unix(stream) => {
                if let Ok(stream) = stream.into_std() {
                    answer_and_close(stream, response);
                }
            }
        }
    }
}

/// Reads what already arrived (a bounded amount), writes `response` once, and closes; the
/// socket is non-blocking, so nothing here waits.
fn answer_and_close<S>(mut stream: S, response: &[u8])
where
    S: io::Read + io::Write,
{
    let mut scratch = [0u8; 1024];
    for _ in 0..4 {
        if !matches!(stream.read(&mut scratch), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = stream.write(response);
}

/// Sets `TCP_NODELAY` on a listening socket, for the sockets it accepts to inherit;
/// returns whether they do. Linux copies a listener's socket options into each socket it
/// accepts, `TCP_NODELAY` among them. Elsewhere each accepted socket sets its own.
fn set_listener_nodelay(listener: &TcpListener) -> bool {
    cfg!(target_os = "linux")
        && socket2::SockRef::from(listener)
            .set_tcp_nodelay(true)
            .is_ok()
}

/// The address used to count connections per client: IPv4-mapped IPv6 addresses count as
/// the IPv4 address they carry.
pub(crate) fn client_ip(peer: Option<SocketAddr>) -> Option<IpAddr> {
    peer.map(|peer| peer.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every accepted TCP socket must end up with Nagle's algorithm off, whether by
    /// inheritance from the listener or set by the handshake: small frames would otherwise
    /// wait for the peer's delayed ACK.
    #[tokio::test]
    async fn accepted_sockets_come_with_nodelay_where_inherited() {
        let listener = Listener::tcp(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let ListenAddr::Tcp(addr) = listener.listen_addr().unwrap() else {
            panic!("a TCP listener");
        };
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        assert!(peer.is_some());
        let Accepted::Tcp(stream, nodelay) = accepted else {
            panic!("a TCP connection");
        };
        if cfg!(target_os = "linux") {
            assert_eq!(nodelay, NoDelay::Inherited);
            assert!(stream.nodelay().unwrap(), "TCP_NODELAY not inherited");
        } else {
            assert_eq!(nodelay, NoDelay::PerConnection);
        }
    }
}
