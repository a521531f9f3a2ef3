//! Options of a connection: timeouts, keepalive, queues and protocol limits.

use std::time::Duration;

use sockjet_proto::Config;

use crate::SlowReceiver;
use crate::rate_limit::RateLimit;

/// Options shared by client and server connections.
///
/// The defaults are Python `websockets`' (ping every 20 s, 20 s to answer, 10 s to open
/// and to close, 16 queued messages) with a 64 KiB write buffer high-water mark.
///
/// ```
/// use std::time::Duration;
/// use sockjet::ConnectionConfig;
/// let config = ConnectionConfig::default()
///     .ping_interval(Some(Duration::from_secs(5)))
///     .max_message_size(Some(16 * 1024 * 1024));
/// assert_eq!(config.ping_timeout, Some(Duration::from_secs(20)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Limits of the protocol core (message and frame sizes).
    pub protocol: Config,
    /// Send a keepalive ping this often; `None` disables keepalive.
    pub ping_interval: Option<Duration>,
    /// Fail the connection with 1011 if a keepalive pong does not arrive in this time.
    pub ping_timeout: Option<Duration>,
    /// Time allowed for the opening handshake.
    pub open_timeout: Option<Duration>,
    /// Time allowed for the closing handshake and the end of the TCP connection.
    pub close_timeout: Option<Duration>,
    /// Messages received but not yet taken by `recv`; above it, reading pauses.
    pub max_queue: usize,
    /// `send` waits while more than this many bytes are waiting to be written; a
    /// [`broadcast`](crate::broadcast) finds the connection's queue full above it.
    pub write_limit: usize,
    /// What a [`broadcast`](crate::broadcast) does when this connection's queue is full.
    pub slow_receiver: SlowReceiver,
    /// Limits how fast the peer may send messages; `None` (the default) for no limit.
    pub rate_limit: Option<RateLimit>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            protocol: Config::default(),
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            open_timeout: Some(Duration::from_secs(10)),
            close_timeout: Some(Duration::from_secs(10)),
            max_queue: 16,
            write_limit: 64 * 1024,
            slow_receiver: SlowReceiver::Drop,
            rate_limit: None,
        }
    }
}

impl ConnectionConfig {
    /// Sets [`ping_interval`](Self::ping_interval).
    ///
    /// ```
    /// let config = sockjet::ConnectionConfig::default().ping_interval(None);
    /// assert!(config.ping_interval.is_none());
    /// ```
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`ping_timeout`](Self::ping_timeout).
    ///
    /// ```
    /// let config = sockjet::ConnectionConfig::default().ping_timeout(None);
    /// assert!(config.ping_timeout.is_none());
    /// ```
    pub fn ping_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`open_timeout`](Self::open_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = sockjet::ConnectionConfig::default().open_timeout(Some(Duration::from_secs(1)));
    /// assert_eq!(config.open_timeout, Some(Duration::from_secs(1)));
    /// ```
    pub fn open_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = sockjet::ConnectionConfig::default().close_timeout(Some(Duration::from_secs(1)));
    /// assert_eq!(config.close_timeout, Some(Duration::from_secs(1)));
    /// ```
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`max_queue`](Self::max_queue) (at least 1).
    ///
    /// ```
    /// let config = sockjet::ConnectionConfig::default().max_queue(64);
    /// assert_eq!(config.max_queue, 64);
    /// ```
    pub fn max_queue(mut self, messages: usize) -> Self {
        self.max_queue = messages.max(1);
        self
    }

    /// Sets [`write_limit`](Self::write_limit).
    ///
    /// ```
    /// let config = sockjet::ConnectionConfig::default().write_limit(1 << 20);
    /// assert_eq!(config.write_limit, 1 << 20);
    /// ```
    pub fn write_limit(mut self, bytes: usize) -> Self {
        self.write_limit = bytes;
        self
    }

    /// Sets [`slow_receiver`](Self::slow_receiver).
    ///
    /// ```
    /// use sockjet::{CloseCode, ConnectionConfig, SlowReceiver};
    /// let config = ConnectionConfig::default()
    ///     .slow_receiver(SlowReceiver::Close(CloseCode::POLICY_VIOLATION));
    /// assert_eq!(config.slow_receiver, SlowReceiver::Close(CloseCode::POLICY_VIOLATION));
    /// ```
    pub fn slow_receiver(mut self, policy: SlowReceiver) -> Self {
        self.slow_receiver = policy;
        self
    }

    /// Sets [`rate_limit`](Self::rate_limit): a token bucket on received messages, checked
    /// as the application takes each one; over it, the connection is closed with 1008 (or
    /// the message dropped, as the [`RateLimit`] says).
    ///
    /// ```
    /// use sockjet::{ConnectionConfig, RateLimit};
    /// let config = ConnectionConfig::default()
    ///     .rate_limit(Some(RateLimit::messages_per_second(100).burst(200)));
    /// assert!(config.rate_limit.is_some());
    /// ```
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// Sets permessage-deflate (RFC 7692) options; `None` turns compression off. On by
    /// default on both sides, with memory-friendly parameters.
    ///
    /// ```
    /// let config = sockjet::ConnectionConfig::default().compression(None);
    /// assert!(config.protocol.deflate.is_none());
    /// ```
    pub fn compression(mut self, deflate: Option<sockjet_proto::DeflateConfig>) -> Self {
        self.protocol = self.protocol.deflate(deflate);
        self
    }

    /// Sets the largest message accepted (default 1 MiB); `None` for no limit. Frames are
    /// limited to the same size.
    ///
    /// ```
    /// let config = sockjet::ConnectionConfig::default().max_message_size(Some(1024));
    /// assert_eq!(config.protocol.max_message_size, Some(1024));
    /// ```
    pub fn max_message_size(mut self, limit: Option<usize>) -> Self {
        self.protocol = self.protocol.max_message_size(limit).max_frame_size(limit);
        self
    }
}
