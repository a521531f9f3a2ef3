//! [`ShutdownHandle`] and [`shutdown_signal`]: starting a graceful shutdown.

use std::{fmt, sync::Arc};

use crate::tracker::Tracker;

/// Starts the graceful shutdown of a [`Server`](crate::Server) from any task; see
/// [`Server::serve_with_shutdown`](crate::Server::serve_with_shutdown) for what happens.
/// Get one with [`Server::shutdown_handle`](crate::Server::shutdown_handle) before
/// serving. Cheap to clone.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let server = sockjet::Server::bind("127.0.0.1:8765").await?;
/// let shutdown = server.shutdown_handle();
/// let serving = tokio::spawn(server.serve(|ws| async move { drop(ws) }));
/// // ... later:
/// shutdown.shutdown();
/// serving.await??; // every connection is closed now
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    tracker: Arc<Tracker>,
}

impl ShutdownHandle {
    pub(crate) fn new(tracker: Arc<Tracker>) -> Self {
        Self { tracker }
    }

    /// Starts the shutdown and returns at once; `serve` returns when it is over. Calling it
    /// again, or before `serve` started, is fine: serving stops as soon as it starts.
    ///
    /// ```no_run
    /// # fn f(handle: sockjet::ShutdownHandle) {
    /// handle.shutdown();
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.tracker.request_shutdown();
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

/// A signal that asks a process to stop; see [`shutdown_signal`].
///
/// ```
/// assert_eq!(sockjet::Signal::Terminate.to_string(), "SIGTERM");
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Signal {
    /// SIGINT: Ctrl-C at a terminal.
    Interrupt,
    /// SIGTERM: what service managers and container runtimes send to stop a process.
    Terminate,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        })
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM and says which came, for binaries that shut down
/// gracefully on either. Once called, these signals no longer end the process by
/// themselves (tokio keeps handling them for the life of the process), so a second Ctrl-C
/// must be awaited too if it should force an exit.
///
/// If a handler cannot be installed for a signal, that signal is never reported (rather
/// than reported at once, which would stop a server as soon as it starts). On non-Unix
/// systems only Ctrl-C is watched.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let server = sockjet::Server::bind("127.0.0.1:8765").await?;
/// server
///     .serve_with_shutdown(|ws| async move { drop(ws) }, async {
///         let signal = sockjet::shutdown_signal().await;
///         eprintln!("{signal}: shutting down");
///     })
///     .await
/// # }
/// ```
pub async fn shutdown_signal() -> Signal {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => Signal::Interrupt,
        () = terminate => Signal::Terminate,
    }
}
