//! `sockjet serve --engine uring`: the echo server on io_uring (`sockjet-uring`), with the
//! same signals and shutdown as the tokio engine's.

use std::process::ExitCode;

use crate::{Failure, io_message, print_line, serve::ServeArgs};

/// Runs the echo server on the io_uring engine until Ctrl-C or SIGTERM, then closes every
/// connection with 1001 and waits for them (10 s at most, or until a second signal).
#[cfg(target_os = "linux")]
pub(crate) async fn run(args: ServeArgs) -> Result<ExitCode, Failure> {
    if let Some(conflict) = args.uring_conflict() {
        return Err(Failure::new(format!(
            "--engine uring does not serve {conflict}; use --engine tokio"
        )));
    }
    sockjet_uring::probe().map_err(|error| {
        Failure::new(format!(
            "--engine uring: this system refuses io_uring ({}); use --engine tokio",
            io_message(&error)
        ))
    })?;
    let mut signal = Box::pin(sockjet::shutdown_signal());
    let early_signal = crate::serve::poll_once(&mut signal).await;
    let server =
        sockjet_uring::Server::bind(args.addr.as_str(), args.uring_options()).map_err(|error| {
            Failure::new(format!(
                "cannot listen on {}: {}",
                args.addr,
                io_message(&error)
            ))
        })?;
    let addr = server
        .local_addr()
        .map_err(|error| Failure::new(format!("cannot listen: {}", io_message(&error))))?;
    print_line(&format!("listening on ws://{addr}"))?;
    let shutdown = server.shutdown_handle();
    let mut serving = tokio::task::spawn_blocking(move || server.run(|| Echo));
    let first_signal = async move {
        match early_signal {
            Some(signal) => signal,
            None => signal.await,
        }
    };
    let finished = |joined: Result<std::io::Result<()>, tokio::task::JoinError>| match joined {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(error)) => Err(Failure::new(format!(
            "cannot serve connections: {}",
            io_message(&error)
        ))),
        Err(error) => Err(Failure::new(format!("internal error: {error}"))),
    };
    tokio::select! {
        joined = &mut serving => return finished(joined),
        signal = first_signal => {
            tracing::info!(%signal, "signal received; shutting down");
            shutdown.shutdown();
        }
    }
    tokio::select! {
        joined = serving => finished(joined),
        signal = sockjet::shutdown_signal() => {
            tracing::warn!(%signal, "exiting without waiting for connections to close");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) async fn run(_: ServeArgs) -> Result<ExitCode, Failure> {
    Err(Failure::new(
        "--engine uring needs Linux (io_uring); use --engine tokio",
    ))
}

/// Sends every message back to its sender, and logs connections as the tokio engine
/// does.
#[cfg(target_os = "linux")]
struct Echo;

#[cfg(target_os = "linux")]
impl sockjet_uring::Handler for Echo {
    fn open(&mut self, socket: &mut sockjet_uring::Socket<'_>, request: &sockjet_uring::Request) {
        tracing::info!(id = ?socket.id(), path = %request.uri(), "connection open");
    }

    fn message(&mut self, socket: &mut sockjet_uring::Socket<'_>, message: sockjet_uring::Message) {
        let _ = socket.send(message);
    }

    fn closed(&mut self, id: sockjet_uring::SocketId, closed: &sockjet_uring::ConnectionClosed) {
        tracing::info!(?id, ?closed, "connection closed");
    }
}
