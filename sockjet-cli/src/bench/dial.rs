//! Opening connections: the target's address, TCP connect from the right source address,
//! and the opening handshake with `sockjet_proto`'s [`ClientProtocol`].

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use sockjet_proto::{
    ClientConfig, ClientProtocol, Config, DeflateConfig, Event,
    http::{Uri, header::SEC_WEBSOCKET_EXTENSIONS},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

use super::frames::Compression;
use crate::{Failure, connect::invalid_url, io_message};

/// Connections per source address: a source address has about 28,000 ephemeral ports
/// (32768-60999 by default on Linux), and some are in use.
const CONNECTIONS_PER_SOURCE: usize = 20_000;

/// The server to load, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The URL as given.
    pub(crate) url: String,
    uri: Uri,
    addr: SocketAddr,
}

impl Target {
    /// Checks `url` (`ws://host[:port][/path][?query]`) and resolves its host.
    ///
    /// # Errors
    ///
    /// A bad URL, or a host that does not resolve, as a one-line failure.
    pub(crate) async fn resolve(url: &str) -> Result<Self, Failure> {
        let uri = sockjet::parse_url(url).map_err(|error| invalid_url(url, &error))?;
        // The load generator drives raw TCP sockets itself.
        if uri.scheme_str() == Some("wss") {
            return Err(Failure::new(format!(
                "invalid URL {url:?}: wss:// (TLS) is not supported by bench"
            )));
        }
        let host = uri
            .host()
            .expect("parse_url checked the host")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| {
                Failure::new(format!("cannot resolve {host}: {}", io_message(&error)))
            })?
            .next()
            .ok_or_else(|| Failure::new(format!("cannot resolve {host}: no address")))?;
        Ok(Self {
            url: url.to_owned(),
            uri,
            addr,
        })
    }

    /// The source address for connection `index` of `total`: beyond 20,000 connections to
    /// a loopback address, the ports of one source address run out, so connections are
    /// spread over 127.0.0.2, 127.0.0.3, ... (all of 127/8 is local on Linux). `None`
    /// lets the kernel choose.
    pub(crate) fn source_for(&self, index: usize, total: usize) -> Option<IpAddr> {
        match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() && total > CONNECTIONS_PER_SOURCE => {
                // 127.0.0.2 to 127.0.0.254: 5 million connections before wrapping round.
                let host = 2 + (index / CONNECTIONS_PER_SOURCE) % 253;
                Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host as u8)))
            }
            _ => None,
        }
    }
}

/// An open WebSocket connection, handed over right after the handshake.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The socket, with TCP_NODELAY set.
    pub(crate) stream: TcpStream,
    /// Bytes the server sent right behind its 101 response: the start of its frames.
    pub(crate) leftover: Vec<u8>,
    /// permessage-deflate, if the server accepted it.
    pub(crate) compression: Option<Compression>,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    pub(crate) extensions: Option<String>,
    /// Time from the start of the TCP connect to the end of the handshake.
    pub(crate) connect_time: Duration,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum DialError {
    /// TCP connect, read or write failed.
    Io(io::Error),
    /// The server's answer was not a valid 101.
    Handshake(String),
    /// Connect and handshake took longer than the timeout.
    Timeout(Duration),
}

impl DialError {
    /// A short description that groups like failures, e.g. `connection refused`.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Io(error) => io_message(error),
            Self::Handshake(why) => format!("handshake failed: {why}"),
            Self::Timeout(_) => "timed out".to_owned(),
        }
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => f.write_str(&io_message(error)),
            Self::Handshake(why) => write!(f, "handshake failed: {why}"),
            Self::Timeout(after) => write!(
                f,
                "connect and handshake timed out after {}",
                super::report::format_duration(*after)
            ),
        }
    }
}

impl From<io::Error> for DialError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Connects to `target` from `source` (if given) and runs the opening handshake, offering
/// `deflate` if given, all within `timeout`.
///
/// # Errors
///
/// See [`DialError`].
pub(crate) async fn dial(
    target: &Target,
    source: Option<IpAddr>,
    deflate: Option<&DeflateConfig>,
    timeout: Duration,
) -> Result<Opened, DialError> {
    let start = Instant::now();
    let attempt = async {
        let stream = connect(target.addr, source).await?;
        handshake(stream, &target.uri, deflate, start).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(DialError::Timeout(timeout)))
}

/// A TCP connection to `addr` from `source`, with Nagle's algorithm off: small frames
/// must leave at once, or latency measures the kernel's delays.
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The client's opening handshake on `stream`.
async fn handshake(
    mut stream: TcpStream,
    uri: &Uri,
    deflate: Option<&DeflateConfig>,
    start: Instant,
) -> Result<Opened, DialError> {
    let config = ClientConfig::default().protocol(Config::default().deflate(deflate.cloned()));
    let mut client = ClientProtocol::new(uri, config);
    client
        .send_request(client.connect_request())
        .map_err(|error| DialError::Handshake(error.to_string()))?;
    let mut request = Vec::new();
    client.outgoing().drain_into(&mut request);
    stream.write_all(&request).await?;
    loop {
        let read = stream.read_buf(client.receive_buffer()).await?;
        if read == 0 {
            client.receive_eof();
        }
        if let Some(Event::Response(response)) = client.next_event() {
            let connect_time = start.elapsed();
            let answers: Vec<&str> = response
                .headers()
                .get_all(SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            let extensions = (!answers.is_empty()).then(|| answers.join(", "));
            // The core checked the answer already; asking again gives the parameters,
            // which it keeps to itself.
            let compression = match deflate {
                Some(config) if client.protocol().is_compressing() => {
                    let params = config
                        .client_accept(&answers)
                        .map_err(|error| DialError::Handshake(error.to_string()))?;
                    Some(Compression {
                        params,
                        config: config.clone(),
                    })
                }
                _ => None,
            };
            // The core has not parsed what followed the response head (it would on the
            // next `next_event`): take those bytes raw, as the start of the frame stream.
            let leftover = client.receive_buffer().split().to_vec();
            return Ok(Opened {
                stream,
                leftover,
                compression,
                extensions,
                connect_time,
            });
        }
        if let Some(error) = client.handshake_error() {
            return Err(DialError::Handshake(error.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_checked() {
        for (url, why) in [
            ("foo", "missing ws://"),
            ("http://localhost", "scheme must be ws://"),
            ("wss://localhost", "not supported"),
        ] {
            let Err(Failure(message)) = Target::resolve(url).await else {
                panic!("{url} accepted");
            };
            assert!(message.starts_with("invalid URL"), "{message}");
            assert!(message.contains(why), "{message}");
        }
        let target = Target::resolve("ws://127.0.0.1:9/x?y").await.unwrap();
        assert_eq!(target.addr, "127.0.0.1:9".parse().unwrap());
    }

    #[tokio::test]
    async fn loopback_connections_spread_over_source_addresses_past_20k() {
        let target = Target::resolve("ws://127.0.0.1:9").await.unwrap();
        assert_eq!(target.source_for(5, 100), None);
        let source = |index| target.source_for(index, 50_000).unwrap().to_string();
        assert_eq!(source(0), "127.0.0.2");
        assert_eq!(source(19_999), "127.0.0.2");
        assert_eq!(source(20_000), "127.0.0.3");
        assert_eq!(source(49_999), "127.0.0.4");
        let remote = Target::resolve("ws://[::1]:9").await.unwrap();
        assert_eq!(remote.source_for(30_000, 50_000), None);
    }
}
