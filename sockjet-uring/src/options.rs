//! The engine's settings.

use std::time::Duration;

use sockjet_proto::ServerConfig;

/// How a [`Server`](crate::Server) runs.
///
/// ```
/// use std::time::Duration;
/// let options = sockjet_uring::Options {
///     threads: 2,
///     max_connections: Some(10_000),
///     ping_interval: None,
///     ..Default::default()
/// };
/// assert_eq!(options.handshake_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// Worker threads, each with its own ring, accepting from the same socket.
    pub threads: usize,
    /// The protocol's limits and compression (`max_message_size`, `deflate`...).
    pub config: ServerConfig,
    /// Answer new connections with 503 while this many are open (all workers together).
    pub max_connections: Option<usize>,
    /// Drop a client that has not completed its opening handshake in this time.
    pub handshake_timeout: Duration,
    /// How long to wait for the peer to end TCP once the closing handshake is done, or
    /// for its close frame once ours is sent, before closing the socket anyway.
    pub close_timeout: Duration,
    /// Send a keepalive ping after this long; `None`: never.
    pub ping_interval: Option<Duration>,
    /// Close with 1011 a connection whose pong has not come this long after the ping;
    /// `None`: wait forever.
    pub ping_timeout: Option<Duration>,
    /// Stop reading from a connection while this many bytes wait to be sent to it (the
    /// peer reads too slowly); resume once half have gone.
    pub write_limit: usize,
    /// How long shutting down waits for the closing handshakes before it closes the
    /// sockets that remain.
    pub shutdown_timeout: Duration,
    /// While a worker is busy (its thread used over half of the last 2 ms, with 32 or
    /// more connections receiving steadily), each of its waits gathers completions for
    /// up to this long before handling them, so that a pass handles more and each
    /// connection's replies leave together (Linux 6.12 and later; older kernels answer
    /// at once). Adds at most this much latency, and only under load. `None`: answer
    /// every completion at once.
    pub busy_gather_wait: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: 1,
            config: ServerConfig::default(),
            max_connections: None,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            write_limit: 4 << 20,
            shutdown_timeout: Duration::from_secs(10),
            busy_gather_wait: Some(Duration::from_micros(50)),
        }
    }
}
