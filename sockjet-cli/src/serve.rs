//! `sockjet serve`: an echo server over TCP, TLS or a Unix socket; with `--broadcast` a
//! broadcast one (`serve_broadcast.rs`), with `--demo` the demo applications; with
//! `--processes N` in N processes that share the port (`serve_processes/`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use sockjet::{Connection, ListenAddr, Server, ServerBuilder};

use crate::{
    ConnectionArgs, Failure, io_message, parse_seconds,
    policy::PolicyArgs,
    print_line,
    serve_processes::{self, MAX_PROCESSES},
};

/// Arguments of `sockjet serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the URL printed shows which).
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:8765")]
    pub(crate) addr: String,
    /// Listen on a Unix domain socket at PATH instead of ADDR (removed on exit).
    #[arg(long, value_name = "PATH", conflicts_with = "addr")]
    unix: Option<PathBuf>,
    /// Echo every message back to its sender (the default).
    #[arg(long, conflicts_with_all = ["demo", "broadcast"])]
    echo: bool,
    /// Send every message received on any connection to every open connection, the
    /// sender included (sockjet::broadcast: a receiver too slow to keep up misses
    /// messages rather than holding up the others).
    #[arg(long, conflicts_with = "demo")]
    broadcast: bool,
    /// Serve the demo applications and their web pages on this port instead: chat rooms
    /// at /chat/{room}, a live data stream at /live, a multiplayer game at /game (open
    /// http://ADDR/ in a browser).
    #[arg(long)]
    demo: bool,
    /// With --demo: share the chat rooms with every demo server using this Redis
    /// (redis://HOST:PORT).
    #[arg(long, value_name = "URL", requires = "demo")]
    redis: Option<String>,
    /// Run N server processes that share ADDR's port (Linux: SO_REUSEPORT, and the kernel
    /// spreads new connections over them). Each process has its own file-descriptor limit,
    /// so N of them hold more connections than one can. Not with --unix, --demo or
    /// --broadcast, whose state lives in one process; --max-connections and
    /// --max-connections-per-ip apply to each process.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PROCESSES)),
        conflicts_with_all = ["unix", "demo", "broadcast"]
    )]
    pub(crate) processes: u16,
    /// Worker threads of each process (tokio's, or the io_uring engine's, each with its
    /// own ring); default: one per CPU the process may run on (its affinity mask). With 1,
    /// everything runs on one thread.
    #[arg(long, value_name = "N", value_parser = crate::bench::parse_count)]
    threads: Option<usize>,
    /// The I/O engine of the echo server. `auto` (the default): `uring` where it can
    /// serve what is asked, else `tokio`. `tokio`: the sockjet library, every feature.
    /// `uring`: Linux io_uring, system calls batched across connections; plain ws://
    /// echo only (not with TLS, --unix, --demo, --broadcast, access policies or
    /// --max-connections-per-ip).
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    pub(crate) engine: Engine,
    /// io_uring engine: while a worker is busy (over half its time, with at least 32
    /// connections receiving steadily), each of its waits gathers completions for up to
    /// this many microseconds, so that it handles more per pass and each connection's
    /// replies leave together: less CPU per message, at most this much more latency, and
    /// only under load. 0: answer every completion at once. Needs Linux 6.12.
    #[arg(long, value_name = "MICROS", default_value_t = 50)]
    busy_gather_us: u64,
    /// Run as a worker of the `--processes` supervisor with this process id.
    #[arg(long, value_name = "PID", hide = true, requires = "worker_addr")]
    pub(crate) worker_of: Option<u32>,
    /// The worker's address, the supervisor's with its port, bound with SO_REUSEPORT.
    #[arg(long, value_name = "ADDR", hide = true, requires = "worker_of")]
    pub(crate) worker_addr: Option<SocketAddr>,
    /// Serve wss:// with this PEM certificate chain (the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key", help_heading = "TLS")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", help_heading = "TLS")]
    tls_key: Option<PathBuf>,
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
    /// Origins, credentials, rate limit.
    #[command(flatten)]
    policy: PolicyArgs,
    /// Answer new connections with 503 (and Retry-After) while N are open, handshakes
    /// included (in each process, with --processes).
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_connections: Option<usize>,
    /// Answer new connections from an IP address with 429 while N from it are open (in
    /// each process, with --processes).
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_connections_per_ip: Option<usize>,
    /// Drop a client that has not finished its TLS and HTTP handshakes in SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_seconds, help_heading = "Limits")]
    handshake_timeout: Duration,
}

/// The engines `sockjet serve` can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Engine {
    /// io_uring where it serves what is asked and the kernel allows it, else tokio.
    Auto,
    /// The sockjet library on tokio.
    Tokio,
    /// sockjet-uring, on Linux io_uring.
    Uring,
}

impl ServeArgs {
    /// Worker threads asked for, if any.
    pub(crate) fn threads(&self) -> Option<usize> {
        self.threads
    }

    /// Whether the io_uring engine serves: asked for, or `auto` and able to.
    pub(crate) fn uses_uring(&self) -> bool {
        match self.engine {
            Engine::Tokio => false,
            Engine::Uring => true,
            Engine::Auto => self.uring_conflict().is_none() && crate::serve_uring::available(),
        }
    }

    /// Why the io_uring engine cannot serve what the arguments ask for, if it cannot.
    pub(crate) fn uring_conflict(&self) -> Option<&'static str> {
        [
            (self.unix.is_some(), "--unix"),
            (self.tls_cert.is_some(), "--tls-cert"),
            (self.demo, "--demo"),
            (self.broadcast, "--broadcast"),
            (self.policy.any(), "--origin, --basic-auth and --rate-limit"),
            (
                self.max_connections_per_ip.is_some(),
                "--max-connections-per-ip",
            ),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// The io_uring engine's options for these arguments.
    pub(crate) fn uring_options(&self) -> sockjet_uring::Options {
        sockjet_uring::Options {
            threads: self
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
            // Plain HTTP requests reach the handler, which answers /healthz.
            config: sockjet_uring::ServerConfig::default()
                .protocol(self.connection.proto_config())
                .deliver_invalid_requests(true),
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            busy_gather_wait: Some(Duration::from_micros(self.busy_gather_us))
                .filter(|wait| !wait.is_zero()),
            ..Default::default()
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then shuts down gracefully: every open
/// connection is closed with 1001, and the server waits for the closing handshakes (10 s
/// at most, or until a second signal) before it exits with status 0.
pub(crate) async fn run(args: ServeArgs) -> Result<std::process::ExitCode, Failure> {
    // `--echo` is the default mode; the flag lets scripts say so.
    let _ = args.echo;
    match args.worker_of {
        Some(supervisor) => serve_processes::become_worker(supervisor)?,
        None if args.processes > 1 => return serve_processes::supervise(&args).await,
        None => {}
    }
    if args.uses_uring() {
        return crate::serve_uring::run(args).await;
    }
    // The signal handlers are installed before the URL is printed: whoever reads it may
    // signal at once (a test, a script, the supervisor of `--processes` workers), and until
    // they are installed SIGTERM or SIGINT would end the process without a shutdown.
    let mut signal = Box::pin(sockjet::shutdown_signal());
    let early_signal = poll_once(&mut signal).await;
    let server = bind(&args).await?;
    // A worker prints it too: its supervisor reads it to know the worker accepts.
    print_line(&format!(
        "listening on {}",
        url(&args, &server.listen_addr())
    ))?;

    let shutdown = server.shutdown_handle();
    let serving: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        match args.demo {
            true => {
                if let ListenAddr::Tcp(addr) = server.listen_addr() {
                    print_line(&format!("demo pages at http://{addr}/"))?;
                }
                let demo = match &args.redis {
                    Some(url) => sockjet_demo::Demo::start_with_redis(url)
                        .map_err(|error| Failure::new(format!("--redis: {error}")))?,
                    None => sockjet_demo::Demo::start(),
                };
                let router = demo.router();
                Box::pin(server.serve_router(router))
            }
            false => match args.broadcast.then(crate::serve_broadcast::Room::new) {
                Some(room) => Box::pin(server.serve(move |ws| {
                    crate::serve_broadcast::relay(ws, std::sync::Arc::clone(&room))
                })),
                None => Box::pin(server.serve(echo)),
            },
        };
    tokio::pin!(serving);
    let first_signal = async move {
        match early_signal {
            Some(signal) => signal,
            None => signal.await,
        }
    };
    let accepting = |result: std::io::Result<()>| {
        result.map_err(|error| {
            Failure::new(format!("cannot accept connections: {}", io_message(&error)))
        })
    };
    tokio::select! {
        result = &mut serving => {
            accepting(result)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        signal = first_signal => {
            tracing::info!(%signal, "signal received");
            shutdown.shutdown();
        }
    }
    let second_signal = second_signal(&args);
    // The library logs "shutting down", closes every connection with 1001 and waits.
    tokio::select! {
        result = serving => accepting(result)?,
        signal = second_signal => {
            tracing::warn!(%signal, "exiting without waiting for connections to close");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The signal that cuts a graceful shutdown short. A worker of `--processes` waits,
/// whatever comes: it may get SIGTERM more than once for one death of its supervisor
/// (PR_SET_PDEATHSIG fires each time it is handed to another thread of the dying
/// process), and a supervisor in a hurry kills it.
pub(crate) fn second_signal(
    args: &ServeArgs,
) -> std::pin::Pin<Box<dyn Future<Output = sockjet::Signal> + Send>> {
    match args.worker_of {
        Some(_) => Box::pin(std::future::pending()),
        None => Box::pin(sockjet::shutdown_signal()),
    }
}

/// The URL of a server listening on `addr`.
pub(crate) fn url(args: &ServeArgs, addr: &ListenAddr) -> String {
    let scheme = if args.tls_cert.is_some() { "wss" } else { "ws" };
    match addr {
        ListenAddr::Tcp(addr) => format!("{scheme}://{addr}"),
        // The form Node's `ws` uses for Unix sockets.
        ListenAddr::Unix(path) => format!("{scheme}+unix://{}", path.display()),
        other => other.to_string(),
    }
}

/// Polls `future` once, so that what it sets up when first polled is in place; returns its
/// output if it is already done.
pub(crate) async fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|context| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(context) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Builds the server the arguments ask for and binds it.
async fn bind(args: &ServeArgs) -> Result<Server, Failure> {
    let builder = server_builder(args)?;
    let (what, bound) = match (&args.unix, args.worker_addr) {
        (Some(path), _) => (path.display().to_string(), unix(builder, path).await),
        (None, Some(addr)) => (
            addr.to_string(),
            serve_processes::reuse_port_listener(addr).map(|listener| builder.listener(listener)),
        ),
        (None, None) => (args.addr.clone(), builder.bind(args.addr.as_str()).await),
    };
    bound.map_err(|error| Failure::new(format!("cannot listen on {what}: {}", io_message(&error))))
}

/// The server the arguments ask for, not yet bound.
pub(crate) fn server_builder(args: &ServeArgs) -> Result<ServerBuilder, Failure> {
    let config = args
        .connection
        .config()
        .ping_interval(args.ping_interval)
        .ping_timeout(args.ping_timeout);
    let config = match args.demo {
        true => sockjet_demo::Demo::connection_config(config),
        false => config,
    };
    let mut builder = args
        .policy
        .hooks(Server::builder().connection(args.policy.connection(config)))
        .handshake_timeout(args.handshake_timeout);
    if args.demo {
        builder = sockjet_demo::Demo::pages(builder);
    }
    if let Some(limit) = args.max_connections {
        builder = builder.max_connections(limit);
    }
    if let Some(limit) = args.max_connections_per_ip {
        builder = builder.max_connections_per_ip(limit);
    }
    with_tls(builder, args)
}

fn with_tls(builder: ServerBuilder, args: &ServeArgs) -> Result<ServerBuilder, Failure> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(builder);
    };
    let tls = sockjet::tls::ServerTls::from_pem_files(cert, key)
        .map_err(|error| Failure::new(format!("TLS: {}", io_message(&error))))?;
    Ok(builder.tls(tls))
}

#[cfg(unix)]
async fn unix(builder: ServerBuilder, path: &std::path::Path) -> std::io::Result<Server> {
    builder.bind_unix(path).await
}

#[cfg(not(unix))]
async fn unix(_: ServerBuilder, _: &std::path::Path) -> std::io::Result<Server> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "Unix domain sockets are not available on this system",
    ))
}

/// Echoes messages until the connection closes; on shutdown the library closes it with
/// 1001, `recv` then returns `None` and the handler returns.
///
/// Nothing to log here: the library logs "connection open" and "connection closed" (with
/// the close code and any error) in a span that carries the peer address and the path.
async fn echo(mut ws: Connection) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// Parses a number of seconds that must be more than zero.
fn parse_positive_seconds(value: &str) -> Result<Duration, String> {
    parse_seconds(value)?.ok_or_else(|| format!("{value:?}: must be more than 0 seconds"))
}
