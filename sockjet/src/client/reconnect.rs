//! [`Reconnecting`]: a client that reconnects by itself, like Python `websockets`'
//! `async for websocket in connect(...)`.

use std::{fmt, time::Duration};

use sockjet_proto::{CloseCode, ConnectionClosed, HandshakeError};
use tokio::time::Instant;

use super::{ClientBuilder, backoff::Backoff};
use crate::{
    connection::{CloseWatch, Connection},
    error::{Error, ErrorKind},
};

/// Connections to one server, one after the other: each call to [`next`](Self::next)
/// waits for the previous connection to end, decides whether to reconnect, waits the
/// backoff delay and connects again. Made by [`ClientBuilder::reconnecting`].
///
/// ```no_run
/// # async fn f() -> Result<(), sockjet::Error> {
/// let mut connections = sockjet::ClientBuilder::new("wss://example.com/feed").reconnecting();
/// while let Some(mut ws) = connections.next().await? {
///     // Read until this connection ends; the loop then reconnects if it should.
///     while let Ok(Some(message)) = ws.recv().await {
///         println!("{message:?}");
///     }
/// }
/// # Ok(()) }
/// ```
///
/// # When it reconnects
///
/// A failed connection attempt is tried again after a delay if the failure may be
/// transient: a network error (refused, reset, unreachable, DNS, a proxy that could not
/// reach the server), a timeout, the server closing the connection before answering,
/// or an HTTP 5xx answer (a server or gateway in trouble). Anything else (an invalid URL,
/// a TLS certificate that does not verify, a proxy refusal, a 4xx answer such as 401 or
/// 404, too many redirects) ends the series: `next` returns that error, and `Ok(None)`
/// after it.
///
/// Once a connection was open, how it ended decides:
/// - closed by the server with 1001 (going away), 1011 (internal error), 1012 (service
///   restart) or 1013 (try again later), or without a close frame (1006: the TCP
///   connection dropped): reconnect;
/// - closed by the server with 1000 (normal closure), 1005 (no code), an application
///   code (3000-4999) or another protocol code: `next` returns `Ok(None)`, the server
///   meant it;
/// - closed by this side (with [`Connection::close`] or by dropping the connection,
///   which sends 1000, or after the server broke the protocol): `Ok(None)`, except after
///   a keepalive ping timeout (1011 sent, the server went silent), which reconnects.
///
/// The application sees the close itself in [`Connection::recv`]; `next` only decides
/// what comes after. It waits for the previous connection to end, so drop it or let it
/// close before calling `next` again.
///
/// # Delays
///
/// Every reconnection waits for the next [`Backoff`] delay (set with
/// [`backoff`](Self::backoff)); the series starts over once a connection stayed open
/// for [`Backoff::reset_after`]. [`on_retry`](Self::on_retry) sees each retry.
///
/// # Cancel safety
///
/// `next` is cancel-safe: a call dropped while waiting resumes the same wait, with the
/// same deadline, at the next call.
pub struct Reconnecting {
    builder: ClientBuilder,
    backoff: Backoff,
    delays: Option<Box<dyn Iterator<Item = Duration> + Send>>,
    previous: Option<Previous>,
    /// When a retry waits, the end of its delay.
    resume_at: Option<Instant>,
    on_retry: Option<RetryCallback>,
    finished: bool,
}

/// See [`Reconnecting::on_retry`].
type RetryCallback = Box<dyn FnMut(&Error, Duration) + Send>;

/// The last connection handed out.
struct Previous {
    watch: CloseWatch,
    opened: Instant,
}

impl ClientBuilder {
    /// Turns this builder into a series of connections that reconnects automatically;
    /// see [`Reconnecting`].
    ///
    /// ```
    /// let _connections = sockjet::ClientBuilder::new("ws://localhost:8765").reconnecting();
    /// ```
    pub fn reconnecting(self) -> Reconnecting {
        Reconnecting {
            builder: self,
            backoff: Backoff::default(),
            delays: None,
            previous: None,
            resume_at: None,
            on_retry: None,
            finished: false,
        }
    }
}

impl Reconnecting {
    /// Sets the delays between attempts.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _connections = sockjet::ClientBuilder::new("ws://localhost:8765")
    ///     .reconnecting()
    ///     .backoff(sockjet::Backoff::default().max_delay(Duration::from_secs(10)));
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self.delays = None;
        self
    }

    /// Calls `callback` before each wait with why the client reconnects (the failed
    /// attempt's error, or an [`ErrorKind::Closed`] error whose
    /// [`closed`](Error::closed) says how the connection ended) and the delay before
    /// the next attempt. Retries are also logged at the `info` level.
    ///
    /// ```
    /// let _connections = sockjet::ClientBuilder::new("ws://localhost:8765")
    ///     .reconnecting()
    ///     .on_retry(|why, delay| eprintln!("{why}; reconnecting in {delay:.1?}"));
    /// ```
    pub fn on_retry(mut self, callback: impl FnMut(&Error, Duration) + Send + 'static) -> Self {
        self.on_retry = Some(Box::new(callback));
        self
    }

    /// The next connection: after the previous one ended in a way that calls for a
    /// reconnection, and after the backoff delay. `Ok(None)` when the series is over.
    ///
    /// # Errors
    ///
    /// The error of a connection attempt that trying again would not fix; the series is
    /// then over.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sockjet::Error> {
    /// let mut connections = sockjet::ClientBuilder::new("ws://localhost:8765").reconnecting();
    /// if let Some(ws) = connections.next().await? {
    ///     ws.send("hello").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Result<Option<Connection>, Error> {
        if self.finished {
            return Ok(None);
        }
        if let Some(previous) = &self.previous {
            let closed = previous.watch.closed().await;
            let lived = previous.opened.elapsed();
            self.previous = None;
            if !reconnects_after(&closed) {
                self.finished = true;
                return Ok(None);
            }
            if lived >= self.backoff.reset_after {
                self.delays = None;
            }
            self.schedule(&Error::new(ErrorKind::Closed).with_closed(closed));
        }
        loop {
            if let Some(resume_at) = self.resume_at {
                tokio::time::sleep_until(resume_at).await;
                self.resume_at = None;
            }
            match self.builder.clone().connect().await {
                Ok(connection) => {
                    self.previous = Some(Previous {
                        watch: connection.close_watch(),
                        opened: Instant::now(),
                    });
                    return Ok(Some(connection));
                }
                Err(error) if is_transient(&error) => self.schedule(&error),
                Err(error) => {
                    self.finished = true;
                    return Err(error);
                }
            }
        }
    }

    /// Sets the time of the next attempt, after the next delay of the series.
    fn schedule(&mut self, reason: &Error) {
        let backoff = &self.backoff;
        let delay = self
            .delays
            .get_or_insert_with(|| Box::new(backoff.delays()))
            .next()
            .unwrap_or(backoff.max_delay);
        tracing::info!("{reason}; reconnecting in {:.1} s", delay.as_secs_f64());
        if let Some(callback) = &mut self.on_retry {
            callback(reason, delay);
        }
        self.resume_at = Some(Instant::now() + delay);
    }
}

impl fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnecting")
            .field("builder", &self.builder)
            .field("backoff", &self.backoff)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Whether a failed attempt may succeed if tried again; see [`Reconnecting`].
fn is_transient(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::Io | ErrorKind::Timeout => true,
        ErrorKind::Handshake => match error.handshake_error() {
            Some(HandshakeError::UnexpectedStatus(status)) => status.is_server_error(),
            Some(HandshakeError::UnexpectedEof) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Whether to reconnect after a connection ended so; see [`Reconnecting`].
fn reconnects_after(closed: &ConnectionClosed) -> bool {
    let closed_by_us = match (&closed.rcvd, &closed.sent) {
        (Some(_), Some(_)) => closed.rcvd_then_sent == Some(false),
        (None, Some(_)) => true,
        _ => false,
    };
    if closed_by_us {
        // Only a keepalive timeout is the network's doing, not the application's.
        return closed.rcvd.is_none()
            && closed
                .sent
                .as_ref()
                .is_some_and(|sent| sent.code == CloseCode::INTERNAL_ERROR);
    }
    matches!(
        closed.code(),
        CloseCode::GOING_AWAY
            | CloseCode::ABNORMAL_CLOSURE
            | CloseCode::INTERNAL_ERROR
            | CloseCode::SERVICE_RESTART
            | CloseCode::TRY_AGAIN_LATER
    )
}

#[cfg(test)]
mod tests {
    use sockjet_proto::CloseFrame;

    use super::*;

    fn closed(rcvd: Option<u16>, sent: Option<u16>, rcvd_first: Option<bool>) -> ConnectionClosed {
        ConnectionClosed {
            rcvd: rcvd.map(|code| CloseFrame::new(CloseCode::from(code), "")),
            sent: sent.map(|code| CloseFrame::new(CloseCode::from(code), "")),
            rcvd_then_sent: rcvd_first,
        }
    }

    #[test]
    fn server_closes_decide_by_code() {
        for code in [1001, 1011, 1012, 1013] {
            assert!(
                reconnects_after(&closed(Some(code), Some(code), Some(true))),
                "{code}"
            );
            assert!(reconnects_after(&closed(Some(code), None, None)), "{code}");
        }
        for code in [1000, 1002, 1005, 1008, 3000, 4001, 4999] {
            assert!(
                !reconnects_after(&closed(Some(code), Some(code), Some(true))),
                "{code}"
            );
        }
        // No close frame at all: the TCP connection dropped.
        assert!(reconnects_after(&closed(None, None, None)));
    }

    #[test]
    fn our_closes_end_the_series_except_keepalive_timeouts() {
        assert!(!reconnects_after(&closed(
            Some(1000),
            Some(1000),
            Some(false)
        )));
        assert!(!reconnects_after(&closed(None, Some(1000), None)));
        assert!(!reconnects_after(&closed(None, Some(1002), None)));
        assert!(reconnects_after(&closed(None, Some(1011), None)));
    }

    #[test]
    fn transient_failures_are_network_timeouts_and_5xx() {
        use http::StatusCode;
        let io = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_transient(&io));
        for (status, transient) in [(500, true), (503, true), (404, false), (401, false)] {
            let error = Error::from(HandshakeError::UnexpectedStatus(
                StatusCode::from_u16(status).unwrap(),
            ));
            assert_eq!(is_transient(&error), transient, "{status}");
        }
        assert!(!is_transient(&Error::new(ErrorKind::InvalidUrl)));
        assert!(is_transient(&Error::from(HandshakeError::UnexpectedEof)));
    }
}
