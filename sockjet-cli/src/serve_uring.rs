//! `sockjet serve --engine uring`: the echo server on io_uring (`sockjet-uring`), with the
//! same signals and shutdown as the tokio engine's.

use std::process::ExitCode;

use crate::{Failure, io_message, print_line, serve::ServeArgs};

/// Whether this system runs the io_uring engine (probed once).
#[cfg(target_os = "linux")]
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| match sockjet_uring::probe() {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "io_uring unavailable; serving on tokio");
            false
        }
    })
}

/// Whether this system runs the io_uring engine: not this one.
#[cfg(not(target_os = "linux"))]
pub(crate) fn available() -> bool {
    false
}

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
    let options = args.uring_options();
    let bound = match args.worker_addr {
        // A worker of `--processes`: one listener per thread, each in the SO_REUSEPORT
        // group that shares the supervisor's port.
        Some(addr) => (0..options.threads.max(1))
            .map(|_| {
                crate::serve_processes::reuse_port_listener(addr)
                    .and_then(tokio::net::TcpListener::into_std)
            })
            .collect::<std::io::Result<Vec<_>>>()
            .and_then(|listeners| sockjet_uring::Server::from_listeners(listeners, options)),
        None => sockjet_uring::Server::bind(args.addr.as_str(), options),
    };
    let server = bound.map_err(|error| {
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
    let mut serving = tokio::task::spawn_blocking(move || server.run(Echo::default));
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
    let second_signal = crate::serve::second_signal(&args);
    tokio::select! {
        joined = serving => finished(joined),
        signal = second_signal => {
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
/// does: their peer and path (kept while they are open, only when info logs are on).
#[cfg(target_os = "linux")]
#[derive(Default)]
struct Echo {
    open: std::collections::HashMap<sockjet_uring::SocketId, (String, String)>,
}

#[cfg(target_os = "linux")]
impl sockjet_uring::Handler for Echo {
    /// A plain `GET /healthz` gets 200 `ok`, as from the tokio engine.
    fn request(&mut self, request: &sockjet_uring::Request) -> Option<sockjet_uring::Response> {
        if request.uri().path() != "/healthz" {
            return None;
        }
        let mut response = sockjet_uring::Response::new("ok\n".into());
        response.headers_mut().insert(
            sockjet_uring::http::header::CONTENT_TYPE,
            sockjet_uring::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Some(response)
    }

    fn open(&mut self, socket: &mut sockjet_uring::Socket<'_>, request: &sockjet_uring::Request) {
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let peer = socket
            .peer_addr()
            .map_or_else(|_| "unknown".to_owned(), |addr| addr.to_string());
        let path = request.uri().to_string();
        tracing::info!(%peer, ?path, "connection open");
        self.open.insert(socket.id(), (peer, path));
    }

    fn message(&mut self, socket: &mut sockjet_uring::Socket<'_>, message: sockjet_uring::Message) {
        let _ = socket.send(message);
    }

    fn closed(&mut self, id: sockjet_uring::SocketId, closed: &sockjet_uring::ConnectionClosed) {
        if let Some((peer, path)) = self.open.remove(&id) {
            let code = closed.code().as_u16();
            tracing::info!(%peer, ?path, code, %closed, "connection closed");
        }
    }
}
