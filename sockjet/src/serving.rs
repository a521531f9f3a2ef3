//! The accept loop, the per-connection task, and graceful shutdown.
//!
//! The accept loop only accepts, counts and spawns: refusing a connection over a limit is
//! one non-blocking write, and everything that waits on the client (the TLS handshake,
//! the HTTP opening handshake) runs in the connection's own task, under the handshake
//! timeout, so a slow client never delays the next accept.

use std::{future::Future, io, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use sockjet_proto::CloseCode;
use tokio::time::{Instant, Sleep, sleep};
use tracing::Instrument;

use crate::{
    connection::{Connection, Transport},
    driver::{Driver, RunBeside},
    error::{Error, ErrorKind},
    http_answer::AnsweredByHook,
    listener::{Accepted, ListenAddr, Listener, NoDelay, client_ip},
    server::{Server, ServerBuilder, accept_on},
    shutdown::ShutdownHandle,
    socket::Socket,
    tracker::{SHUTDOWN_REASON, Slot, Tracker},
};

impl Server {
    pub(crate) fn new(listener: Listener, settings: ServerBuilder) -> Self {
        Self {
            tracker: Tracker::new(&settings.serving),
            listener,
            settings: Arc::new(settings),
        }
    }

    /// Where the server listens: a TCP address or a Unix socket path.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::bind("127.0.0.1:0").await?;
    /// println!("listening on {}", server.listen_addr());
    /// # Ok(()) }
    /// ```
    pub fn listen_addr(&self) -> ListenAddr {
        self.listener
            .listen_addr()
            .unwrap_or(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))))
    }

    /// A handle that starts a graceful shutdown of this server from anywhere; see
    /// [`serve_with_shutdown`](Self::serve_with_shutdown).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::bind("127.0.0.1:8765").await?;
    /// let shutdown = server.shutdown_handle();
    /// tokio::spawn(async move {
    ///     let _ = sockjet::shutdown_signal().await;
    ///     shutdown.shutdown();
    /// });
    /// server.serve(|ws| async move { drop(ws) }).await // returns once shut down
    /// # }
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.tracker.clone())
    }

    /// Like [`serve`](Self::serve), and shuts the server down gracefully when `signal`
    /// resolves (or a [`ShutdownHandle`] asks), then returns `Ok(())`:
    ///
    /// 1. the listening socket is closed;
    /// 2. every open connection is closed with 1001 (going away) "server shutting down",
    ///    through its normal send path: messages whose `send` already returned `Ok` are
    ///    written before the close frame. A connection whose opening handshake finishes
    ///    during shutdown is closed the same way at once, without calling the handler;
    /// 3. the server waits, up to [`shutdown_timeout`](ServerBuilder::shutdown_timeout),
    ///    for the closing handshakes to finish and the handlers to return;
    /// 4. what is left is ended: handler tasks are aborted and sockets closed.
    ///
    /// # Errors
    ///
    /// Returns an error only if accepting fails in a way that cannot be retried.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// sockjet::Server::bind("127.0.0.1:8765").await?
    ///     .serve_with_shutdown(
    ///         |mut ws| async move {
    ///             while let Ok(Some(message)) = ws.recv().await {
    ///                 let _ = ws.send(message).await;
    ///             }
    ///         },
    ///         async { let _ = sockjet::shutdown_signal().await; },
    ///     )
    ///     .await
    /// # }
    /// ```
    pub async fn serve_with_shutdown<H, F>(
        self,
        handler: H,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        H: Fn(Connection) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            listener,
            settings,
            tracker,
        } = self;
        // The accept loop runs as a task of its own, on the runtime's workers: awaited in
        // place, it would often run on the thread of `block_on` (`#[tokio::main]`), and
        // every connection it spawns would wake a worker thread (a futex call, and on one
        // core a context switch). Dropping this future stops the loop.
        let mut accept_loop = AbortOnDrop(tokio::spawn(accept_loop(
            listener,
            settings.clone(),
            tracker.clone(),
            Arc::new(handler),
        )));
        let stop = async {
            tokio::select! {
                () = signal => {}
                () = tracker.shutdown_requested() => {}
            }
        };
        tokio::select! {
            joined = &mut accept_loop.0 => return match joined {
                Ok(result) => result,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => Err(io::Error::other(error)),
            },
            () = stop => {}
        }
        // Stop accepting: the loop owns the listening socket, closed once the task is gone.
        accept_loop.0.abort();
        let _ = (&mut accept_loop.0).await;
        let open = tracker.close_all();
        let timeout = settings.serving.shutdown_timeout;
        tracing::info!(open, ?timeout, "shutting down");
        if tokio::time::timeout(timeout, tracker.wait_idle())
            .await
            .is_err()
        {
            let left = tracker.abort_all();
            tracing::warn!(
                left,
                "connections still open after the shutdown timeout: ended"
            );
        }
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop<H, F>(
    listener: Listener,
    settings: Arc<ServerBuilder>,
    tracker: Arc<Tracker>,
    handler: Arc<H>,
) -> io::Result<()>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let (accepted, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if is_transient_accept_error(&error) => {
                // Out of file descriptors or a connection reset before accept: back off
                // briefly instead of spinning or dying.
                tracing::warn!(%error, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let slot = match tracker.admit(client_ip(peer)) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::info!(peer = %PeerDisplay(peer), ?refusal, "connection refused");
                accepted.refuse(tracker.refusal_response(refusal));
                continue;
            }
        };
        let index = slot.index();
        let span = tracing::info_span!(
            "ws",
            peer = %PeerDisplay(peer),
            path = tracing::field::Empty
        );
        // Boxed here: the connection's future (several hundred bytes) is then written once,
        // instead of being moved through every layer of `spawn` and copied again at each
        // change of the task's stage.
        let task = tokio::spawn(Box::pin(
            serve_connection(accepted, peer, slot, handler.clone(), settings.clone())
                .instrument(span),
        ));
        tracker.set_task(index, task.abort_handle());
    }
}

/// One connection's task: handshakes, then the handler, then the end of the closing
/// handshake. `slot` is released when this future completes or is dropped.
async fn serve_connection<H, F>(
    accepted: Accepted,
    peer: Option<SocketAddr>,
    slot: Slot,
    handler: Arc<H>,
    settings: Arc<ServerBuilder>,
) where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    // Everything before the connection runs is in this block, awaited as its value: the
    // locals it moves out of (the handshake's result, the connection, the driver) then
    // end with it. Locals of the whole function would keep their room in this future,
    // empty, for as long as the connection lives.
    {
        // One timer for the connection's life: the handshake's deadline, then the driver's.
        let mut timer = Box::pin(sleep(settings.serving.handshake_timeout));
        // Boxed, so that the handshake's state (a few hundred bytes) is freed once it is
        // over instead of sizing the task for the connection's life.
        let handshake = Box::pin(handshake(accepted, peer, &settings, timer.as_mut())).await;
        let (connection, mut driver) = match handshake {
            Ok(opened) => opened,
            Err(error) if AnsweredByHook::is_source_of(&error) => {
                return tracing::debug!(%error, "answered over HTTP");
            }
            Err(error) if error.kind() == ErrorKind::Timeout => {
                return tracing::info!("handshake timed out");
            }
            Err(error) => return tracing::info!(%error, "handshake failed"),
        };
        driver.reuse_timer(timer);
        tracing::Span::current().record("path", connection.path());
        tracing::info!("connection open");
        let handler = if slot.opened(connection.shared()) {
            // The server is shutting down: close at once, without calling the handler.
            let _ = connection
                .shared()
                .start_close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
            drop(connection);
            None
        } else {
            Some(handler(connection))
        };
        // The driver runs in this task, beside the handler, until the connection is
        // over: it may outlive its handler (a `Sender` kept elsewhere, or the closing
        // handshake), and holds its place until then.
        RunBeside::new(handler, driver)
    }
    .await;
    if let Some(shared) = slot.connection() {
        shared.closed().await;
    }
}

/// The TLS handshake if the server has TLS, then the WebSocket opening handshake, all
/// before `deadline` (the server's handshake timeout), and the WebSocket one also within
/// the connection's open timeout.
///
/// One `accept_on` for every kind of stream: each call awaited in its own branch would
/// take its own room in this future (the compiler does not overlap them), and the
/// future is copied into its box for every connection.
async fn handshake(
    accepted: Accepted,
    peer: Option<SocketAddr>,
    settings: &ServerBuilder,
    mut deadline: Pin<&mut Sleep>,
) -> Result<(Connection, Driver), Error> {
    let (socket, peer) = match accepted {
        Accepted::Tcp(stream, nodelay) => {
            if nodelay == NoDelay::PerConnection {
                stream.set_nodelay(true)?;
            }
            let socket = secure(stream, Socket::from, settings, deadline.as_mut()).await?;
            (socket, peer)
        }
        #[cfg(unix)]
        Accepted::Unix(stream) => {
            let socket = secure(stream, Socket::other, settings, deadline.as_mut()).await?;
            (socket, None)
        }
    };
    open_timeout_from_now(deadline.as_mut(), settings);
    accept_on(socket, peer, settings, Some(deadline)).await
}

/// The TLS handshake on `stream` if the server has TLS, before `deadline`; without TLS,
/// `stream` made a [`Socket`] by `plain`.
async fn secure<S: Transport>(
    stream: S,
    plain: impl FnOnce(S) -> Socket,
    settings: &ServerBuilder,
    deadline: Pin<&mut Sleep>,
) -> Result<Socket, Error> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &settings.serving.tls {
        // Boxed: TLS's handshake state is large, and inline it would size the handshake
        // future of every connection, TLS or not.
        let tls_accept = Box::pin(async { tls.accept(stream).await.map_err(tls_error) });
        let stream = crate::server::within(deadline, tls_accept).await?;
        return Ok(Socket::other(stream));
    }
    #[cfg(not(feature = "tls"))]
    let _ = (settings, deadline);
    Ok(plain(stream))
}

/// Brings `deadline` forward to the end of the open timeout from now, if that is sooner.
fn open_timeout_from_now(deadline: Pin<&mut Sleep>, settings: &ServerBuilder) {
    if let Some(timeout) = settings.connection.open_timeout {
        let open_deadline = Instant::now() + timeout;
        if open_deadline < deadline.deadline() {
            deadline.reset(open_deadline);
        }
    }
}

#[cfg(feature = "tls")]
fn tls_error(error: io::Error) -> Error {
    Error::from(io::Error::new(
        error.kind(),
        format!("TLS handshake: {error}"),
    ))
}

fn is_transient_accept_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || error
        .raw_os_error()
        .is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}

/// A peer address for logs: the TCP address, or `unix` for a Unix socket.
struct PeerDisplay(Option<SocketAddr>);

impl std::fmt::Display for PeerDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unix"),
        }
    }
}
