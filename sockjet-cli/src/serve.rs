//! `sockjet serve`: an echo server, or with `--broadcast` a broadcast one
//! (`serve_broadcast.rs`).

use std::time::Duration;

use clap::Args;
use sockjet::{CloseCode, Connection, Server};
use tokio::sync::{mpsc, watch};

use crate::{ConnectionArgs, Failure, io_message, parse_seconds, print_line};

/// How long open connections get to finish their closing handshake after a shutdown
/// signal: the library's default close timeout, so a well-behaved client is never cut off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `sockjet serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the URL printed shows which).
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:8765")]
    addr: String,
    /// Echo every message back to its sender (the default).
    #[arg(long)]
    echo: bool,
    /// Send every message received on any connection to every open connection, the
    /// sender included (sockjet::broadcast: a receiver too slow to keep up misses
    /// messages rather than holding up the others).
    #[arg(long, conflicts_with = "echo")]
    broadcast: bool,
    /// Connection options.
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Send a keepalive ping every SECS seconds; 0 disables keepalive.
    // The full path stops clap from reading `Option` as "this argument is optional".
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    ping_interval: ::std::option::Option<Duration>,
    /// Close a connection with 1011 if a keepalive ping gets no pong within SECS seconds;
    /// 0 waits forever.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    ping_timeout: ::std::option::Option<Duration>,
}

/// Runs the server until Ctrl-C or SIGTERM, then closes open connections with 1001.
pub(crate) async fn run(args: ServeArgs) -> Result<std::process::ExitCode, Failure> {
    // `--echo` is the default mode; the flag lets scripts say so.
    let _ = args.echo;
    let room = args.broadcast.then(crate::serve_broadcast::Room::new);
    let config = args
        .connection
        .config()
        .ping_interval(args.ping_interval)
        .ping_timeout(args.ping_timeout);
    let server = Server::builder()
        .connection(config)
        .bind(args.addr.as_str())
        .await
        .map_err(|error| {
            Failure::new(format!(
                "cannot listen on {}: {}",
                args.addr,
                io_message(&error)
            ))
        })?;
    print_line(&format!("listening on ws://{}", server.local_addr()))?;

    // Handlers watch `stop` to close their connection on shutdown, and each holds a clone
    // of `running`: when every clone is gone, `all_closed` returns `None`. The server keeps
    // only a weak handle, because the library keeps the handler closure alive as long as
    // any connection task runs, and would make `running` count one too many.
    let (stop, stopped) = watch::channel(false);
    let (running, mut all_closed) = mpsc::channel::<()>(1);
    let weak_running = running.downgrade();
    let serving = server.serve(move |ws| {
        let (stop, running, room) = (stopped.clone(), weak_running.upgrade(), room.clone());
        async move {
            match room {
                Some(room) => crate::serve_broadcast::relay(ws, room, stop, running).await,
                None => echo(ws, stop, running).await,
            }
        }
    });
    let signal = tokio::select! {
        result = serving => {
            result.map_err(|error| {
                Failure::new(format!("cannot accept connections: {}", io_message(&error)))
            })?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        signal = shutdown_signal() => signal,
    };
    // `serving` is gone: the listening socket is closed and no new handler starts.
    let open = running.strong_count().saturating_sub(1);
    tracing::info!(signal, open, "shutting down");
    let _ = stop.send(true);
    drop(running);
    tokio::select! {
        _ = all_closed.recv() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        signal = shutdown_signal() => {
            tracing::warn!(signal, "exiting without waiting for connections to close");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Echoes messages until the connection closes or the server shuts down.
///
/// Nothing to log here: the library logs "connection open" and "connection closed" (with
/// the close code and any error) in a span that carries the peer address and the path.
///
/// `_running` is `None` only when a handshake finishes after shutdown began and every other
/// connection is already closed; `stop` is set by then, so the connection closes at once.
async fn echo(
    mut ws: Connection,
    mut stop: watch::Receiver<bool>,
    _running: Option<mpsc::Sender<()>>,
) {
    // One wait for the stop signal for the whole connection, not a new one per message;
    // `biased` polls `recv` first without drawing a random number per message.
    let stopping = stopping(&mut stop);
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            biased;
            received = ws.recv() => match received {
                Ok(Some(message)) => {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            },
            () = &mut stopping => {
                // 1001 tells the client that the server is going away, not that it failed,
                // as Python websockets' server does on shutdown.
                let _ = ws.close(CloseCode::GOING_AWAY, "server shutting down").await;
                break;
            }
        }
    }
    // Hold `_running` until the connection is over, so that shutdown waits for it.
    ws.closed().await;
}

/// Waits until the server stops (or, on the way out, the sender is gone).
///
/// Returns `()` rather than the `watch` guard, which is not `Send` and would make the
/// handler's future unfit for a multi-threaded runtime.
pub(crate) async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM and returns the signal's name.
///
/// If a signal handler cannot be installed, waits forever for that signal rather than
/// reporting it at once, which would shut the server down as soon as it starts.
async fn shutdown_signal() -> &'static str {
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
        () = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
    }
}
