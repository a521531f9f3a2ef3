//! [`RateLimit`]: a token bucket on the messages a connection receives (messages per
//! second and bytes per second, each with a burst), checked as the application takes each
//! message from [`Connection::recv`](crate::Connection::recv) or the `Stream`.

use tokio::time::Instant;

use crate::connection::Connection;

/// Limits how fast a peer may send messages: a token bucket for messages and one for
/// bytes (payload bytes, after decompression), each refilled continuously at its rate up
/// to its burst. A message passes if both buckets hold enough tokens for it; otherwise
/// the [`RateLimitAction`] applies: by default the connection is closed with 1008 (policy
/// violation) and the reason "rate limit exceeded".
///
/// The burst of a bucket defaults to one second's worth of its rate. A message larger
/// than the byte burst can never pass: keep [`bytes_burst`](Self::bytes_burst) at least
/// as large as the largest message accepted.
///
/// Set it with [`ConnectionConfig::rate_limit`](crate::ConnectionConfig::rate_limit).
///
/// ```
/// use sockjet::{ConnectionConfig, RateLimit, RateLimitAction};
/// let config = ConnectionConfig::default().rate_limit(Some(
///     RateLimit::messages_per_second(100).burst(200).bytes_per_second(1 << 20),
/// ));
/// let bytes_only = RateLimit::unlimited()
///     .bytes_per_second(64 * 1024)
///     .on_exceeded(RateLimitAction::Drop);
/// # drop((config, bytes_only));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    messages: Option<Rate>,
    bytes: Option<Rate>,
    action: RateLimitAction,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Rate {
    per_second: u64,
    burst: u64,
}

/// What happens to a message over the [`RateLimit`].
///
/// ```
/// assert_eq!(sockjet::RateLimitAction::default(), sockjet::RateLimitAction::Close);
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub enum RateLimitAction {
    /// Close the connection with 1008 (policy violation) and the reason "rate limit
    /// exceeded"; the message and any queued after it are dropped, and `recv` then
    /// returns the close as an error, as for any close other than 1000 and 1001.
    #[default]
    Close,
    /// Drop the message and go on; [`Connection::rate_limited`] counts the drops.
    Drop,
}

impl RateLimit {
    /// At most `per_second` messages per second, with a burst of as many.
    ///
    /// ```
    /// let _limit = sockjet::RateLimit::messages_per_second(50);
    /// ```
    pub fn messages_per_second(per_second: u64) -> Self {
        Self::unlimited().messages(per_second)
    }

    /// No limit yet: start here for a byte limit alone.
    ///
    /// ```
    /// let _limit = sockjet::RateLimit::unlimited().bytes_per_second(1 << 20);
    /// ```
    pub fn unlimited() -> Self {
        Self {
            messages: None,
            bytes: None,
            action: RateLimitAction::Close,
        }
    }

    /// Sets the message rate (the burst becomes as many, unless set after).
    ///
    /// ```
    /// let _limit = sockjet::RateLimit::unlimited().messages(10);
    /// ```
    pub fn messages(mut self, per_second: u64) -> Self {
        self.messages = Some(Rate {
            per_second,
            burst: per_second.max(1),
        });
        self
    }

    /// Sets the message burst: how many messages may arrive at once after a quiet spell
    /// (at least 1).
    ///
    /// ```
    /// let _limit = sockjet::RateLimit::messages_per_second(100).burst(500);
    /// ```
    pub fn burst(mut self, messages: u64) -> Self {
        if let Some(rate) = &mut self.messages {
            rate.burst = messages.max(1);
        }
        self
    }

    /// Sets the byte rate (the byte burst becomes as many, unless set after).
    ///
    /// ```
    /// let _limit = sockjet::RateLimit::messages_per_second(100).bytes_per_second(1 << 20);
    /// ```
    pub fn bytes_per_second(mut self, per_second: u64) -> Self {
        self.bytes = Some(Rate {
            per_second,
            burst: per_second.max(1),
        });
        self
    }

    /// Sets the byte burst (at least 1).
    ///
    /// ```
    /// let _limit = sockjet::RateLimit::unlimited().bytes_per_second(1 << 20).bytes_burst(4 << 20);
    /// ```
    pub fn bytes_burst(mut self, bytes: u64) -> Self {
        if let Some(rate) = &mut self.bytes {
            rate.burst = bytes.max(1);
        }
        self
    }

    /// Sets what happens to a message over the limit (default: close with 1008).
    ///
    /// ```
    /// use sockjet::{RateLimit, RateLimitAction};
    /// let _limit = RateLimit::messages_per_second(10).on_exceeded(RateLimitAction::Drop);
    /// ```
    pub fn on_exceeded(mut self, action: RateLimitAction) -> Self {
        self.action = action;
        self
    }

    /// What happens to a message over the limit.
    ///
    /// ```
    /// let limit = sockjet::RateLimit::messages_per_second(10);
    /// assert_eq!(limit.action(), sockjet::RateLimitAction::Close);
    /// ```
    pub fn action(&self) -> RateLimitAction {
        self.action
    }
}

/// The reason of the close frame sent to a peer over its [`RateLimit`].
pub(crate) const RATE_LIMIT_REASON: &str = "rate limit exceeded";

/// The buckets of one connection.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    last_refill: Instant,
    pub(crate) action: RateLimitAction,
    /// Messages dropped by [`RateLimitAction::Drop`].
    pub(crate) dropped: u64,
}

#[derive(Debug)]
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        // Starts full: a new connection may send its burst at once.
        Self {
            per_second: rate.per_second as f64,
            burst: rate.burst as f64,
            tokens: rate.burst as f64,
        }
    }

    fn refill(&mut self, elapsed: f64) {
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }
}

impl RateLimiter {
    pub(crate) fn new(limit: &RateLimit) -> Option<Self> {
        if limit.messages.is_none() && limit.bytes.is_none() {
            return None;
        }
        Some(Self {
            messages: limit.messages.map(Bucket::new),
            bytes: limit.bytes.map(Bucket::new),
            last_refill: Instant::now(),
            action: limit.action,
            dropped: 0,
        })
    }

    /// Whether a message of `len` bytes may pass now; takes its tokens if so. One clock
    /// read, no allocation.
    pub(crate) fn admit(&mut self, len: usize) -> bool {
        let now = Instant::now();
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.last_refill = now;
        let cost = len as f64;
        let messages_ok = self.messages.as_mut().is_none_or(|bucket| {
            bucket.refill(elapsed);
            bucket.tokens >= 1.0
        });
        let bytes_ok = self.bytes.as_mut().is_none_or(|bucket| {
            bucket.refill(elapsed);
            bucket.tokens >= cost
        });
        if !(messages_ok && bytes_ok) {
            return false;
        }
        if let Some(bucket) = &mut self.messages {
            bucket.tokens -= 1.0;
        }
        if let Some(bucket) = &mut self.bytes {
            bucket.tokens -= cost;
        }
        true
    }
}

impl Connection {
    /// How many received messages the [`RateLimit`] dropped (with
    /// [`RateLimitAction::Drop`]).
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// println!("{} messages dropped", ws.rate_limited());
    /// # }
    /// ```
    pub fn rate_limited(&self) -> u64 {
        self.shared().rate_limited()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn messages_refill_at_their_rate() {
        let mut limiter = RateLimiter::new(&RateLimit::messages_per_second(10).burst(3)).unwrap();
        assert!((0..3).all(|_| limiter.admit(1)));
        assert!(!limiter.admit(1));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(limiter.admit(1));
        assert!(!limiter.admit(1));
        // A long pause refills to the burst, no more.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!((0..3).all(|_| limiter.admit(1)));
        assert!(!limiter.admit(1));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_count_payload_length() {
        let limit = RateLimit::unlimited().bytes_per_second(1000);
        let mut limiter = RateLimiter::new(&limit).unwrap();
        assert!(limiter.admit(600));
        assert!(!limiter.admit(600));
        // A refused message takes no tokens.
        assert!(limiter.admit(400));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(limiter.admit(500));
        assert!(!limiter.admit(1001));
    }

    #[tokio::test(start_paused = true)]
    async fn both_buckets_must_agree() {
        let limit = RateLimit::messages_per_second(2).bytes_per_second(100);
        let mut limiter = RateLimiter::new(&limit).unwrap();
        assert!(limiter.admit(100));
        // Messages are left, bytes are not: refused, and the message token is kept.
        assert!(!limiter.admit(1));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(limiter.admit(10));
        assert!(!limiter.admit(0));
    }

    #[test]
    fn no_limit_means_no_limiter() {
        assert!(RateLimiter::new(&RateLimit::unlimited()).is_none());
        assert!(RateLimiter::new(&RateLimit::unlimited().burst(5)).is_none());
    }
}
