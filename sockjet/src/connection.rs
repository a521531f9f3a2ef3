//! [`Connection`] and [`Sender`]: the application's side of an open WebSocket.
//!
//! # Design
//!
//! The socket and the [`Protocol`] live together behind one short-held `std` mutex
//! ([`Inner`]). The hot path has no task hop and no channel: `recv()` reads and parses the
//! socket itself when nothing is queued, and `send()` encodes and writes straight to the
//! socket. A per-connection driver task (see `driver.rs`) does what must happen when
//! nobody is calling: it answers pings and reads close frames when the application is
//! not in `recv()`, flushes deferred or blocked writes, sends keepalive pings and enforces
//! the close timeout.
//!
//! Replies are coalesced: while `recv()` still has queued messages, `send()` only encodes,
//! and the bytes go out in one vectored write when the queue is empty (or when the driver
//! runs, if the application stops reading), as tokio-tungstenite's `forward` does.

use std::{
    collections::VecDeque,
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use sockjet_proto::{
    CloseCode, ConnectionClosed, Event, Message, Outgoing, Protocol, Request, Response, Side, State,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::oneshot,
    time::Instant,
};
use tokio_util::io::poll_write_buf;

use crate::{
    config::ConnectionConfig,
    error::{Error, ErrorKind},
    rate_limit::{RATE_LIMIT_REASON, RateLimitAction, RateLimiter},
    socket::Socket,
};

/// A byte stream a WebSocket can run over: TCP, TLS, a Unix socket, an in-memory pipe.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Identifies a connection within the process, for logs and maps.
///
/// ```
/// # fn f(conn: &sockjet::Connection) {
/// let id: sockjet::ConnectionId = conn.id();
/// println!("{id}");
/// # }
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ConnectionId(u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the handshake established; immutable for the connection's life.
#[derive(Debug)]
pub(crate) struct Handshake {
    /// Boxed: moved into the connection from the handshake without copying it.
    pub(crate) request: Box<Request>,
    pub(crate) response: HandshakeResponse,
    pub(crate) peer_addr: Option<SocketAddr>,
}

/// The handshake response as a client received it, or as a server sent it.
#[derive(Debug)]
pub(crate) enum HandshakeResponse {
    /// Boxed: a server's connections all hold the `Sent` form, which is much smaller.
    Received(Box<Response>),
    /// The bytes of the response head, parsed on first use: a server keeps one per
    /// connection, and parsed headers take several times their size.
    Sent {
        head: BytesMut,
        parsed: OnceLock<Box<Response>>,
    },
}

impl HandshakeResponse {
    pub(crate) fn sent(head: BytesMut) -> Self {
        Self::Sent {
            head,
            parsed: OnceLock::new(),
        }
    }

    fn get(&self) -> &Response {
        match self {
            Self::Received(response) => response,
            Self::Sent { head, parsed } => parsed.get_or_init(|| {
                // sockjet wrote these bytes from a valid response, so they parse back.
                Box::new(
                    sockjet_proto::handshake::parse_response_head(head).unwrap_or_else(|_| {
                        let mut response = Response::default();
                        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                        response
                    }),
                )
            }),
        }
    }
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub(crate) config: Arc<ConnectionConfig>,
    pub(crate) id: ConnectionId,
    pub(crate) handshake: Handshake,
}

pub(crate) struct Inner {
    stream: Option<Socket>,
    pub(crate) proto: Protocol,
    inbound: VecDeque<Message>,
    /// Bytes being written; refilled from the protocol's output when empty.
    outbox: Outgoing,
    /// Set while a `recv()` waits for the socket: it owns the read registration, and the
    /// driver must not read.
    recv_waiting: bool,
    /// The task that last waited in `recv()`, kept to avoid a clone per wait.
    recv_waker: Option<Waker>,
    /// Counts `recv()` polls, so the driver can tell whether the application is reading.
    pub(crate) recv_polls: u64,
    /// Something waits for input while nobody is in `recv()`: the driver must read.
    pub(crate) read_wanted: bool,
    /// The driver's watchdog timer runs (see `driver.rs`).
    pub(crate) watchdog_armed: bool,
    driver_waker: Option<Waker>,
    drain_waiters: Vec<Waker>,
    close_waiters: Vec<Waker>,
    pub(crate) pings: VecDeque<PendingPing>,
    pub(crate) latency: Option<Duration>,
    read_done: bool,
    shutdown: ShutdownState,
    io_error: Option<io::Error>,
    terminated: bool,
    /// Live `Connection` and `Sender` handles; at zero the driver closes with 1000.
    pub(crate) handles: usize,
    flush_deferred: bool,
    /// The application called `close()`: messages beyond the queue are dropped.
    pub(crate) discard_messages: bool,
    max_queue: usize,
    pub(crate) timed_out: Option<&'static str>,
    /// Broadcast messages skipped because the outgoing queue was full.
    pub(crate) dropped_messages: u64,
    /// Broadcast output waits for the current burst's writer (see `broadcast.rs`).
    pub(crate) in_burst: bool,
    /// The token buckets of `ConnectionConfig::rate_limit`, if any. Boxed: most
    /// connections have none, and each would otherwise carry its room.
    rate_limiter: Option<Box<RateLimiter>>,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum ShutdownState {
    NotYet,
    Pending,
    Done,
}

pub(crate) struct PendingPing {
    pub(crate) payload: [u8; 4],
    pub(crate) sent: Instant,
    pub(crate) waiter: Option<oneshot::Sender<Duration>>,
}

impl Shared {
    pub(crate) fn new(
        stream: Socket,
        proto: Protocol,
        config: Arc<ConnectionConfig>,
        handshake: Handshake,
    ) -> Arc<Self> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = ConnectionId(NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        Arc::new(Self {
            inner: Mutex::new(Inner {
                stream: Some(stream),
                proto,
                inbound: VecDeque::new(),
                outbox: Outgoing::default(),
                recv_waiting: false,
                recv_waker: None,
                recv_polls: 0,
                read_wanted: false,
                watchdog_armed: true,
                driver_waker: None,
                drain_waiters: Vec::new(),
                close_waiters: Vec::new(),
                pings: VecDeque::new(),
                latency: None,
                read_done: false,
                shutdown: ShutdownState::NotYet,
                io_error: None,
                terminated: false,
                handles: 1,
                flush_deferred: false,
                discard_messages: false,
                max_queue: config.max_queue,
                timed_out: None,
                dropped_messages: 0,
                in_burst: false,
                rate_limiter: (config.rate_limit.as_ref())
                    .and_then(RateLimiter::new)
                    .map(Box::new),
            }),
            config,
            id,
            handshake,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock can only come from a bug in this crate; the
        // state is still usable for closing, so recover the guard.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>, Error>> {
        let mut inner = self.lock();
        inner.recv_polls = inner.recv_polls.wrapping_add(1);
        // Bounded so one busy connection cannot starve its runtime thread.
        for _ in 0..RECV_BUDGET {
            let message = match inner.inbound.pop_front() {
                Some(message) => Some(message),
                None if inner.terminated => {
                    inner.recv_waiting = false;
                    return Poll::Ready(inner.final_status());
                }
                None => inner.parse_message(),
            };
            if let Some(message) = message {
                let admitted = (inner.rate_limiter.as_mut())
                    .is_none_or(|limiter| limiter.admit(message.len()));
                if !admitted {
                    inner.on_rate_limited();
                    continue;
                }
                inner.recv_waiting = false;
                if !inner.watchdog_armed {
                    // The driver stopped watching while we waited; if the application does
                    // not come back to recv(), it must notice and take over reading.
                    inner.watchdog_armed = true;
                    inner.wake_driver();
                }
                return Poll::Ready(Ok(Some(message)));
            }
            // Nothing to return: send the replies coalesced so far before waiting.
            inner.flush_with_driver_waker();
            if inner.check_terminated() {
                continue;
            }
            if inner.read_done {
                // The stream ended; the driver finishes the shutdown and wakes us.
                inner.set_recv_waiting(cx.waker());
                inner.wake_driver();
                return Poll::Pending;
            }
            if inner.pending_write_len() > self.config.write_limit {
                // The peer does not read what we owe it (pongs, a close): stop reading
                // until it does, or a ping flood would grow the output without bound.
                inner.add_drain_waiter(cx.waker());
                inner.set_recv_waiting(cx.waker());
                return Poll::Pending;
            }
            match inner.poll_read_socket(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => {
                    inner.set_recv_waiting(cx.waker());
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    pub(crate) fn rate_limited(&self) -> u64 {
        self.lock()
            .rate_limiter
            .as_ref()
            .map_or(0, |limiter| limiter.dropped)
    }

    fn cancel_recv(&self) {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.recv_waiting) {
            // The read registration was ours: hand reading over to the driver.
            inner.read_wanted = true;
            inner.wake_driver();
        }
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut inner = self.lock();
        inner.poll_send_ready(cx, self.config.write_limit)
    }

    fn start_send(&self, message: Message) -> Result<(), Error> {
        let mut inner = self.lock();
        if inner.terminated {
            return Err(inner.closed_error());
        }
        inner.send_now(message, true)
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        message: &mut Option<Message>,
        compress: bool,
    ) -> Poll<Result<(), Error>> {
        let mut inner = self.lock();
        match inner.poll_send_ready(cx, self.config.write_limit) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        let message = message.take().expect("send polled after completion");
        Poll::Ready(inner.send_now(message, compress))
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut inner = self.lock();
        if inner.terminated {
            return Poll::Ready(match inner.io_error.is_some() {
                true => Err(inner.closed_error()),
                false => Ok(()),
            });
        }
        inner.flush_with_driver_waker();
        if inner.pending_write_len() == 0 {
            return Poll::Ready(Ok(()));
        }
        inner.add_drain_waiter(cx.waker());
        Poll::Pending
    }

    /// Waits until the connection is closed and returns how it ended.
    pub(crate) async fn closed(&self) -> ConnectionClosed {
        std::future::poll_fn(|cx| self.poll_closed(cx)).await
    }

    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<ConnectionClosed> {
        let mut inner = self.lock();
        if inner.terminated {
            return Poll::Ready(inner.proto.connection_closed());
        }
        if !inner.close_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            inner.close_waiters.push(cx.waker().clone());
            // The close frame and EOF must be read even if nobody is in recv().
            inner.read_wanted = true;
            inner.wake_driver();
        }
        Poll::Pending
    }

    pub(crate) fn start_close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.lock().start_close(code, reason)
    }

    /// Ends the connection now: closes the socket without a closing handshake (a server
    /// shutdown that ran out of time).
    pub(crate) fn abort(&self, why: &'static str) {
        let mut inner = self.lock();
        inner.timed_out.get_or_insert(why);
        inner.terminate();
        inner.wake_driver();
    }

    fn start_ping(&self, payload: Option<[u8; 4]>) -> Result<oneshot::Receiver<Duration>, Error> {
        let mut inner = self.lock();
        if inner.terminated || inner.proto.state() != State::Open {
            return Err(inner.closed_error());
        }
        let (tx, rx) = oneshot::channel();
        inner.send_ping(payload.unwrap_or_else(random_ping_payload), Some(tx))?;
        inner.flush_with_driver_waker();
        // The pong must be read even if the application is not in recv().
        inner.read_wanted = true;
        inner.wake_driver();
        Ok(rx)
    }

    fn add_handle(&self) {
        self.lock().handles += 1;
    }

    /// Adds a handle unless the last one is gone (the connection is closing then) or the
    /// connection is over: what upgrading a [`WeakSender`](crate::WeakSender) needs.
    pub(crate) fn try_add_handle(&self) -> bool {
        let mut inner = self.lock();
        if inner.handles == 0 || inner.is_terminated() {
            return false;
        }
        inner.handles += 1;
        true
    }

    fn drop_handle(&self) {
        let mut inner = self.lock();
        inner.handles -= 1;
        if inner.handles == 0 {
            inner.read_wanted = true;
            inner.wake_driver();
        }
    }
}

impl Inner {
    // ----- socket I/O -----

    /// Reads once from the socket into the protocol. `Ready` means progress (data, EOF or
    /// an error); `Pending` registers `cx` for readability.
    pub(crate) fn poll_read_socket(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.read_done {
            return Poll::Ready(());
        }
        let Some(stream) = self.stream.as_mut() else {
            self.read_done = true;
            return Poll::Ready(());
        };
        match stream.poll_read_into(cx, &mut self.proto) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => {
                self.read_done = true;
                self.proto.receive_eof();
                Poll::Ready(())
            }
            Poll::Ready(Ok(_)) => Poll::Ready(()),
            Poll::Ready(Err(error)) => {
                self.read_done = true;
                self.io_error.get_or_insert(error);
                self.proto.receive_eof();
                Poll::Ready(())
            }
        }
    }

    /// Writes pending output; `Pending` registers `cx` for writability. Afterwards, if
    /// the protocol asks for it, half-closes the stream.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.outbox.is_empty() {
                std::mem::swap(&mut self.outbox, self.proto.outgoing());
                if self.outbox.is_empty() {
                    break;
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                self.outbox = Outgoing::default();
                break;
            };
            // One contiguous chunk (the common case) goes out with write(2): the kernel's
            // writev path costs measurably more per call for a single small buffer.
            let written = if self.outbox.chunk().len() == self.outbox.len() {
                Pin::new(stream)
                    .poll_write(cx, self.outbox.chunk())
                    .map_ok(|n| {
                        self.outbox.advance(n);
                        n
                    })
            } else {
                poll_write_buf(Pin::new(stream), cx, &mut self.outbox)
            };
            match written {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    self.on_write_error(io::ErrorKind::WriteZero.into());
                    break;
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => {
                    self.on_write_error(error);
                    break;
                }
            }
        }
        // A transport that buffers (TLS) may keep bytes it accepted until it is flushed;
        // they must reach the socket before anything waits on the peer. Plain TCP has
        // nothing to flush.
        if let Some(Socket::Other(transport)) = self.stream.as_mut() {
            match Pin::new(transport).poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => self.on_write_error(error),
            }
        }
        self.wake_drain_waiters();
        if self.proto.eof_to_send() {
            let closed = self.proto.connection_closed();
            if self.proto.side() == Side::Server && closed.rcvd.is_some() && closed.sent.is_some() {
                // RFC 6455 §7.1.1: the server closes the TCP connection first. After both
                // close frames nothing the client sends can matter, so close the socket now
                // (a FIN, as a half-close would send) rather than half-close and wait for
                // the client's FIN: a system call and a wakeup less per connection.
                self.read_done = true;
                self.proto.receive_eof();
                self.wake_driver();
            } else {
                self.shutdown = ShutdownState::Pending;
            }
        }
        if self.shutdown == ShutdownState::Pending {
            let Some(stream) = self.stream.as_mut() else {
                self.shutdown = ShutdownState::Done;
                return Poll::Ready(());
            };
            match Pin::new(stream).poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                // A failed half-close changes nothing for the peer: the socket closes soon.
                Poll::Ready(_) => self.shutdown = ShutdownState::Done,
            }
        }
        Poll::Ready(())
    }

    /// Flushes with the driver's waker, so that if the socket is full the driver, not the
    /// caller, is woken to finish the write.
    pub(crate) fn flush_with_driver_waker(&mut self) {
        self.flush_deferred = false;
        if self.nothing_to_flush() {
            return;
        }
        let waker = self
            .driver_waker
            .clone()
            .unwrap_or_else(|| Waker::noop().clone());
        let _ = self.poll_flush(&mut Context::from_waker(&waker));
    }

    /// Whether a flush would do nothing: no bytes, no close of the stream, nobody waiting
    /// for the buffer to drain, and a transport that buffers nothing itself. Most flushes
    /// of the driver and `recv()` find it so; they then skip the waker and the write path.
    fn nothing_to_flush(&mut self) -> bool {
        self.outbox.is_empty()
            && self.proto.outgoing().is_empty()
            && !self.proto.has_eof_to_send()
            && self.shutdown != ShutdownState::Pending
            && self.drain_waiters.is_empty()
            && !matches!(self.stream, Some(Socket::Other(_)))
    }

    fn on_write_error(&mut self, error: io::Error) {
        self.io_error.get_or_insert(error);
        self.outbox = Outgoing::default();
        let _ = std::mem::take(self.proto.outgoing());
        // Without a way to write, the connection is over.
        self.stream = None;
    }

    pub(crate) fn pending_write_len(&mut self) -> usize {
        self.outbox.len() + self.proto.outgoing().len()
    }

    // ----- events -----

    /// Turns buffered bytes into queued messages, up to `max_queue`. Control frames are
    /// handled (and answered by the core) as they are parsed.
    /// After a local close, messages still queue (a reader in another task gets them)
    /// but are dropped when the queue is full, so the closing handshake never stalls.
    ///
    /// Parses until `limit` messages are queued (1 from `recv()`, so that a protocol
    /// error behind a message cannot close the connection before the application has
    /// answered it; `max_queue` from the driver).
    pub(crate) fn process_events(&mut self, limit: usize) {
        while self.inbound.len() < limit || self.discard_messages {
            let Some(event) = self.proto.next_event() else {
                break;
            };
            if let Some(message) = self.on_event(event) {
                if self.inbound.len() < self.max_queue {
                    self.inbound.push_back(message);
                }
            }
        }
    }

    /// Handles a parsed event: control frames here; a message is given back.
    fn on_event(&mut self, event: Event) -> Option<Message> {
        match event {
            Event::Message(message) => return Some(message),
            Event::Pong(payload) => self.on_pong(&payload),
            Event::Close(frame) => tracing::debug!(close = ?frame, "close frame received"),
            _ => {}
        }
        None
    }

    /// The next message parsed from what is buffered, for a `recv()` that found the queue
    /// empty: `process_events(1)` then a pop, without the trip through the queue (a
    /// reader that keeps up takes each message as it is parsed).
    fn parse_message(&mut self) -> Option<Message> {
        if self.discard_messages {
            self.process_events(1);
            return self.inbound.pop_front();
        }
        loop {
            let event = self.proto.next_event()?;
            // With no queue to keep it in (a rate limit closed the connection), a message
            // is dropped, as `process_events` drops it.
            if let Some(message) = self.on_event(event) {
                if self.max_queue > 0 {
                    return Some(message);
                }
            }
        }
    }

    /// A received message went over the rate limit: drop it, or close with 1008.
    fn on_rate_limited(&mut self) {
        let Some(limiter) = &mut self.rate_limiter else {
            return;
        };
        match limiter.action {
            RateLimitAction::Drop => limiter.dropped += 1,
            RateLimitAction::Close => {
                tracing::info!("rate limit exceeded; closing with 1008");
                // RFC 6455 §7.4.1: 1008 "indicates that an endpoint is terminating the
                // connection because it has received a message that violates its policy".
                // Nothing the peer sent from now on reaches the application.
                self.rate_limiter = None;
                self.inbound.clear();
                self.max_queue = 0;
                // A valid code and a short reason: sending cannot be refused.
                let _ = self.start_close(CloseCode::POLICY_VIOLATION, RATE_LIMIT_REASON);
            }
        }
    }

    fn on_pong(&mut self, payload: &[u8]) {
        // A pong acknowledges its ping and every ping sent before it (RFC 6455 §5.5.3 lets
        // an endpoint answer only the most recent ping).
        let Some(position) = self.pings.iter().position(|ping| ping.payload == payload) else {
            return;
        };
        let now = Instant::now();
        for ping in self.pings.drain(..=position) {
            let rtt = now - ping.sent;
            self.latency = Some(rtt);
            if let Some(waiter) = ping.waiter {
                let _ = waiter.send(rtt);
            }
        }
    }

    pub(crate) fn send_ping(
        &mut self,
        payload: [u8; 4],
        waiter: Option<oneshot::Sender<Duration>>,
    ) -> Result<(), Error> {
        self.proto.send_ping(&payload)?;
        self.pings.push_back(PendingPing {
            payload,
            sent: Instant::now(),
            waiter,
        });
        Ok(())
    }

    // ----- sending -----

    fn poll_send_ready(
        &mut self,
        cx: &mut Context<'_>,
        write_limit: usize,
    ) -> Poll<Result<(), Error>> {
        if self.terminated {
            return Poll::Ready(Err(self.closed_error()));
        }
        if self.pending_write_len() < write_limit {
            return Poll::Ready(Ok(()));
        }
        self.flush_with_driver_waker();
        if self.terminated || self.stream.is_none() {
            return Poll::Ready(Err(self.closed_error()));
        }
        if self.pending_write_len() < write_limit {
            return Poll::Ready(Ok(()));
        }
        self.add_drain_waiter(cx.waker());
        Poll::Pending
    }

    /// Encodes a message and writes it now or defers the write (see `after_send`).
    fn send_now(&mut self, message: Message, compress: bool) -> Result<(), Error> {
        if let Err(misuse) = self.proto.send_message_with(message, compress) {
            return Err(match self.proto.state() {
                State::Open => Error::from(misuse),
                _ => self.closed_error(),
            });
        }
        self.after_send();
        Ok(())
    }

    /// Sends a close frame (if still open), stops delivering messages, and makes sure the
    /// rest of the closing handshake is read.
    pub(crate) fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.discard_messages = true;
        if self.proto.state() == State::Open {
            self.proto.send_close(code, reason)?;
        }
        self.flush_with_driver_waker();
        self.read_wanted = true;
        self.wake_driver();
        Ok(())
    }

    /// Writes what was just queued now, or defers it to coalesce a burst of replies.
    pub(crate) fn after_send(&mut self) {
        if self.inbound.is_empty() && self.proto.buffered_len() == 0 {
            self.flush_with_driver_waker();
        } else if !self.flush_deferred {
            // More input is waiting for recv(): the application is answering a burst.
            // Let the replies pile up and go out in one write; the driver makes sure they
            // do even if the application stops reading.
            self.flush_deferred = true;
            self.wake_driver();
        }
    }

    fn add_drain_waiter(&mut self, waker: &Waker) {
        if !self.drain_waiters.iter().any(|w| w.will_wake(waker)) {
            self.drain_waiters.push(waker.clone());
        }
    }

    fn wake_drain_waiters(&mut self) {
        for waker in self.drain_waiters.drain(..) {
            waker.wake();
        }
    }

    // ----- lifecycle -----

    pub(crate) fn set_driver_waker(&mut self, waker: &Waker) {
        match &self.driver_waker {
            Some(current) if current.will_wake(waker) => {}
            _ => self.driver_waker = Some(waker.clone()),
        }
    }

    pub(crate) fn wake_driver(&self) {
        if let Some(waker) = &self.driver_waker {
            waker.wake_by_ref();
        }
    }

    fn set_recv_waiting(&mut self, waker: &Waker) {
        self.recv_waiting = true;
        match &self.recv_waker {
            Some(current) if current.will_wake(waker) => {}
            _ => self.recv_waker = Some(waker.clone()),
        }
    }

    pub(crate) fn recv_waiting(&self) -> bool {
        self.recv_waiting
    }

    pub(crate) fn read_done(&self) -> bool {
        self.read_done
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.inbound.len()
    }

    /// Ends the connection if both directions are finished. Returns whether it is over.
    pub(crate) fn check_terminated(&mut self) -> bool {
        if self.terminated {
            return true;
        }
        let output_done = self.outbox.is_empty()
            && self.proto.outgoing().is_empty()
            && self.shutdown != ShutdownState::Pending;
        // The core must have processed the EOF too (frames before it are delivered).
        let input_done = self.read_done && self.proto.state() == State::Closed;
        if self.stream.is_none() || (input_done && output_done) {
            self.terminate();
        }
        self.terminated
    }

    /// Closes the socket and wakes everyone waiting on the connection.
    pub(crate) fn terminate(&mut self) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        self.stream = None;
        self.outbox = Outgoing::default();
        if std::mem::take(&mut self.recv_waiting) {
            if let Some(waker) = &self.recv_waker {
                waker.wake_by_ref();
            }
        }
        for waker in self.close_waiters.drain(..) {
            waker.wake();
        }
        self.wake_drain_waiters();
        // Dropping the senders tells ping() callers the connection is gone.
        self.pings.clear();
        let closed = self.proto.connection_closed();
        let code = closed.code().as_u16();
        match (&self.io_error, self.timed_out, self.proto.close_error()) {
            (Some(error), _, _) => tracing::info!(code, %closed, %error, "connection closed"),
            (None, Some(timeout), _) => tracing::info!(code, %closed, timeout, "connection closed"),
            (None, None, Some(error)) => tracing::info!(code, %closed, %error, "connection closed"),
            (None, None, None) => tracing::info!(code, %closed, "connection closed"),
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// What `recv()` returns once the connection is over: `Ok(None)` after a normal
    /// closing handshake, an error otherwise.
    fn final_status(&self) -> Result<Option<Message>, Error> {
        let closed = self.proto.connection_closed();
        if closed.is_ok() && self.io_error.is_none() && self.timed_out.is_none() {
            Ok(None)
        } else {
            Err(self.closed_error())
        }
    }

    pub(crate) fn closed_error(&self) -> Error {
        let error = Error::closed_with(
            self.proto.connection_closed(),
            self.proto.close_error(),
            self.io_error.as_ref(),
        );
        match self.timed_out {
            Some(what) => error.into_timeout(what),
            None => error,
        }
    }
}

/// An open WebSocket connection.
///
/// `recv` takes `&mut self`, so only one task receives (the compiler rules out concurrent
/// reads); [`sender`](Self::sender) gives cloneable handles for sending from other tasks,
/// and [`split`](Self::split) separates the two halves.
///
/// Dropping the last handle closes the connection with 1000 in the background.
///
/// ```no_run
/// # async fn run() -> Result<(), sockjet::Error> {
/// let mut ws = sockjet::connect("ws://127.0.0.1:8765").await?;
/// ws.send("hello").await?;
/// while let Some(message) = ws.recv().await? {
///     println!("{message:?}");
/// }
/// # Ok(()) }
/// ```
pub struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Receives the next message, reassembled from its fragments.
    ///
    /// Returns `Ok(None)` once the closing handshake completed normally (1000, 1001 or no
    /// status).
    ///
    /// # Errors
    ///
    /// Fails if the connection closed abnormally, the peer broke the protocol, or the
    /// network failed; [`Error::closed`] gives the close frames.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future loses no message; the next call returns it.
    ///
    /// ```no_run
    /// # async fn f(mut ws: sockjet::Connection) -> Result<(), sockjet::Error> {
    /// while let Some(message) = ws.recv().await? {
    ///     ws.send(message).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        let guard = RecvGuard(&self.shared);
        let result = std::future::poll_fn(|cx| guard.0.poll_recv(cx)).await;
        std::mem::forget(guard);
        result
    }

    /// Sends a message. Waits while more than `write_limit` bytes are waiting to be
    /// written (backpressure).
    ///
    /// # Errors
    ///
    /// Fails if the connection is closing or closed.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) -> Result<(), sockjet::Error> {
    /// ws.send("text").await?;
    /// ws.send(vec![1u8, 2, 3]).await?; // binary
    /// # Ok(()) }
    /// ```
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        send(&self.shared, message.into(), true)
    }

    /// Sends a message without compressing it, even when permessage-deflate is in use
    /// (for data that is already compressed, or too small to gain).
    ///
    /// # Errors
    ///
    /// Fails if the connection is closing or closed.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) -> Result<(), sockjet::Error> {
    /// ws.send_uncompressed(vec![0x1f, 0x8b, 0x08]).await?; // gzip bytes
    /// # Ok(()) }
    /// ```
    pub fn send_uncompressed(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        send(&self.shared, message.into(), false)
    }

    /// Whether permessage-deflate was negotiated on this connection.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) { println!("compressed: {}", ws.is_compressed()); }
    /// ```
    pub fn is_compressed(&self) -> bool {
        self.shared.lock().proto.is_compressing()
    }

    /// Starts the closing handshake and waits for it to finish (or for the close timeout).
    ///
    /// # Errors
    ///
    /// Fails if `code` cannot be sent (1005, 1006, 1015, ...) or `reason` is over 123 bytes.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) -> Result<(), sockjet::Error> {
    /// ws.close(sockjet::CloseCode::NORMAL_CLOSURE, "bye").await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        close(&self.shared, code, reason).await
    }

    /// Sends a ping and waits for its pong; returns the round-trip time.
    ///
    /// # Errors
    ///
    /// Fails if the connection closes first.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) -> Result<(), sockjet::Error> {
    /// let rtt = ws.ping().await?;
    /// println!("{} ms", rtt.as_millis());
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<Duration, Error> {
        ping(&self.shared).await
    }

    /// Waits until the connection is closed and returns how it ended.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) {
    /// let closed = ws.closed().await;
    /// println!("closed: {closed}");
    /// # }
    /// ```
    pub async fn closed(&self) -> ConnectionClosed {
        self.shared.closed().await
    }

    /// The last round-trip time measured by a ping (keepalive or [`ping`](Self::ping)).
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// if let Some(rtt) = ws.latency() { println!("{rtt:?}"); }
    /// # }
    /// ```
    pub fn latency(&self) -> Option<Duration> {
        self.shared.lock().latency
    }

    /// The connection state.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// assert_eq!(ws.state(), sockjet::State::Open);
    /// # }
    /// ```
    pub fn state(&self) -> State {
        let inner = self.shared.lock();
        if inner.is_terminated() {
            State::Closed
        } else {
            inner.proto.state()
        }
    }

    /// A cloneable handle for sending from other tasks.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) {
    /// let sender = ws.sender();
    /// tokio::spawn(async move { let _ = sender.send("from another task").await; });
    /// # }
    /// ```
    pub fn sender(&self) -> Sender {
        self.shared.add_handle();
        Sender::from_handle(self.shared.clone())
    }

    /// Splits into a receiving half and a sending half, usable from two tasks.
    ///
    /// ```no_run
    /// # async fn f(ws: sockjet::Connection) -> Result<(), sockjet::Error> {
    /// let (mut rx, tx) = ws.split();
    /// tokio::spawn(async move { let _ = tx.send("hi").await; });
    /// while let Some(message) = rx.recv().await? { println!("{message:?}"); }
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (Connection, Sender) {
        let sender = self.sender();
        (self, sender)
    }

    /// This connection's id.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) { println!("{}", ws.id()); }
    /// ```
    pub fn id(&self) -> ConnectionId {
        self.shared.id
    }

    /// The opening handshake request (path, query, headers).
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// println!("path: {}", ws.request().uri().path());
    /// # }
    /// ```
    pub fn request(&self) -> &Request {
        &self.shared.handshake.request
    }

    /// The opening handshake response.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// assert_eq!(ws.response().status(), 101);
    /// # }
    /// ```
    pub fn response(&self) -> &Response {
        self.shared.handshake.response.get()
    }

    /// The request path, e.g. `/chat/lobby`.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) { println!("{}", ws.path()); }
    /// ```
    pub fn path(&self) -> &str {
        self.shared.handshake.request.uri().path()
    }

    /// The peer's address, when the transport has one.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) { println!("{:?}", ws.peer_addr()); }
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.shared.handshake.peer_addr
    }

    /// The negotiated subprotocol, if any.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) { println!("{:?}", ws.subprotocol()); }
    /// ```
    pub fn subprotocol(&self) -> Option<&str> {
        self.shared
            .handshake
            .response
            .get()
            .headers()
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.drop_handle();
    }
}

impl Connection {
    /// A way to learn how this connection ends without keeping it open (a
    /// [`CloseWatch`] is not a handle: dropping every handle still closes it).
    pub(crate) fn close_watch(&self) -> CloseWatch {
        CloseWatch {
            shared: self.shared.clone(),
        }
    }
}

/// Waits for the end of a connection it does not own; see [`Connection::close_watch`].
pub(crate) struct CloseWatch {
    shared: Arc<Shared>,
}

impl CloseWatch {
    /// Waits until the connection is closed and returns how it ended.
    pub(crate) async fn closed(&self) -> ConnectionClosed {
        self.shared.closed().await
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

/// Clears the "recv is waiting" mark if a `recv()` future is dropped before completing.
struct RecvGuard<'a>(&'a Arc<Shared>);

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        self.0.cancel_recv();
    }
}

impl Stream for Connection {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.shared.poll_recv(cx) {
            Poll::Ready(Ok(Some(message))) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Sink<Message> for Connection {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll_send_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.shared.start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        {
            let inner = self.shared.lock();
            if !inner.is_terminated() && inner.proto.state() == State::Open {
                drop(inner);
                self.shared.start_close(CloseCode::NORMAL_CLOSURE, "")?;
            }
        }
        self.shared.poll_closed(cx).map(|_| Ok(()))
    }
}

/// A cloneable handle that sends on a connection; see [`Connection::sender`].
///
/// ```no_run
/// # async fn f(ws: sockjet::Connection) -> Result<(), sockjet::Error> {
/// let sender: sockjet::Sender = ws.sender();
/// sender.send("hi").await?;
/// # Ok(()) }
/// ```
pub struct Sender {
    /// The connection, with one of its `handles` counted for this sender.
    weak: crate::WeakSender,
}

impl Sender {
    /// Sends a message; see [`Connection::send`].
    ///
    /// # Errors
    ///
    /// Fails if the connection is closing or closed.
    ///
    /// ```no_run
    /// # async fn f(s: sockjet::Sender) -> Result<(), sockjet::Error> {
    /// s.send("hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        send(&self.weak.shared, message.into(), true)
    }

    /// Sends a message without compressing it; see [`Connection::send_uncompressed`].
    ///
    /// # Errors
    ///
    /// Fails if the connection is closing or closed.
    ///
    /// ```no_run
    /// # async fn f(s: sockjet::Sender) -> Result<(), sockjet::Error> {
    /// s.send_uncompressed("already small").await?;
    /// # Ok(()) }
    /// ```
    pub fn send_uncompressed(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        send(&self.weak.shared, message.into(), false)
    }

    /// Sends a ping and waits for its pong; see [`Connection::ping`].
    ///
    /// # Errors
    ///
    /// Fails if the connection closes first.
    ///
    /// ```no_run
    /// # async fn f(s: sockjet::Sender) -> Result<(), sockjet::Error> {
    /// let _rtt = s.ping().await?;
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<Duration, Error> {
        ping(&self.weak.shared).await
    }

    /// Closes the connection; see [`Connection::close`].
    ///
    /// # Errors
    ///
    /// Fails if `code` cannot be sent or `reason` is too long.
    ///
    /// ```no_run
    /// # async fn f(s: sockjet::Sender) -> Result<(), sockjet::Error> {
    /// s.close(sockjet::CloseCode::GOING_AWAY, "").await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        close(&self.weak.shared, code, reason).await
    }

    /// Whether the connection is over.
    ///
    /// ```no_run
    /// # fn f(s: &sockjet::Sender) { if s.is_closed() { println!("gone"); } }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.weak.is_closed()
    }

    /// The connection's id.
    ///
    /// ```no_run
    /// # fn f(s: &sockjet::Sender) { println!("{}", s.id()); }
    /// ```
    pub fn id(&self) -> ConnectionId {
        self.weak.id()
    }

    /// Sends a payload already shared as [`Bytes`] as a binary message, without copying
    /// it on the server side.
    ///
    /// # Errors
    ///
    /// Fails if the connection is closing or closed.
    ///
    /// ```no_run
    /// # async fn f(s: sockjet::Sender) -> Result<(), sockjet::Error> {
    /// s.send_bytes(bytes::Bytes::from_static(b"\x00\x01")).await?;
    /// # Ok(()) }
    /// ```
    pub fn send_bytes(&self, data: Bytes) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        send(&self.weak.shared, Message::Binary(data), true)
    }

    /// Broadcast messages this connection missed because its outgoing queue was full
    /// (see [`SlowReceiver::Drop`](crate::SlowReceiver::Drop)).
    ///
    /// ```no_run
    /// # fn f(s: &sockjet::Sender) { println!("{} dropped", s.dropped_messages()); }
    /// ```
    pub fn dropped_messages(&self) -> u64 {
        self.weak.dropped_messages()
    }

    /// Bytes queued for this connection and not yet written to its socket (like the
    /// browser's `WebSocket.bufferedAmount`).
    ///
    /// ```no_run
    /// # fn f(s: &sockjet::Sender) { println!("{} bytes waiting", s.buffered_amount()); }
    /// ```
    pub fn buffered_amount(&self) -> usize {
        self.weak.buffered_amount()
    }

    /// Waits until the connection is closed and returns how it ended; see
    /// [`Connection::closed`]. Lets a room or a hub forget a member when it leaves.
    ///
    /// ```no_run
    /// # async fn f(s: sockjet::Sender) {
    /// let closed = s.closed().await;
    /// println!("member left: {closed}");
    /// # }
    /// ```
    pub async fn closed(&self) -> ConnectionClosed {
        self.weak.closed().await
    }

    /// A [`WeakSender`](crate::WeakSender) of this connection: one that does not keep it
    /// open, for a room to hold.
    ///
    /// ```no_run
    /// # fn f(s: &sockjet::Sender) { let _member = s.downgrade(); }
    /// ```
    pub fn downgrade(&self) -> crate::WeakSender {
        self.weak.clone()
    }

    /// Wraps a handle already counted in `handles`.
    pub(crate) fn from_handle(shared: Arc<Shared>) -> Self {
        Self {
            weak: crate::WeakSender::new(shared),
        }
    }
}

/// What [`broadcast`](crate::broadcast) takes: a sender is also a weak one.
impl AsRef<crate::WeakSender> for Sender {
    fn as_ref(&self) -> &crate::WeakSender {
        &self.weak
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.weak.shared.add_handle();
        Self {
            weak: self.weak.clone(),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.weak.shared.drop_handle();
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.weak.shared.id)
            .finish()
    }
}

fn send(shared: &Shared, message: Message, compress: bool) -> SendMessage<'_> {
    SendMessage {
        shared,
        message: Some(message),
        compress,
    }
}

/// The future of every `send`: the message, held until there is room for it. A struct
/// rather than an `async fn` called by another, whose layers each kept a copy of the
/// message: a handler's future, which lives as long as its connection, is sized by the
/// largest future it awaits.
struct SendMessage<'a> {
    shared: &'a Shared,
    message: Option<Message>,
    compress: bool,
}

impl Future for SendMessage<'_> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared.poll_send(cx, &mut this.message, this.compress)
    }
}

async fn close(shared: &Shared, code: CloseCode, reason: &str) -> Result<(), Error> {
    shared.start_close(code, reason)?;
    shared.closed().await;
    Ok(())
}

async fn ping(shared: &Shared) -> Result<Duration, Error> {
    let pong = shared.start_ping(None)?;
    match pong.await {
        Ok(rtt) => Ok(rtt),
        Err(_) => Err(shared.lock().closed_error()),
    }
}

pub(crate) fn random_ping_payload() -> [u8; 4] {
    let mut payload = [0u8; 4];
    // Uniqueness, not secrecy, matters here; fall back to a counter if randomness fails.
    if getrandom::fill(&mut payload).is_err() {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        payload = COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_be_bytes();
    }
    payload
}

/// Iterations of `poll_recv` before yielding to the runtime.
const RECV_BUDGET: usize = 64;

impl Error {
    pub(crate) fn into_timeout(self, what: &'static str) -> Self {
        let closed = self.closed().cloned();
        let mut error = Error::new(ErrorKind::Timeout)
            .with_source(io::Error::new(io::ErrorKind::TimedOut, what));
        if let Some(closed) = closed {
            error = error.with_closed(closed);
        }
        error
    }
}
