//! `sockjet`: the command-line companion of the sockjet WebSocket library.
//!
//! - `sockjet serve [ADDR]` runs an echo server, for trying out clients;
//! - `sockjet connect URL` is an interactive client, like `python -m websockets URL`;
//! - `sockjet bench URL` loads a WebSocket server and reports throughput and latency.
//!
//! Errors are printed as one line, `sockjet: ...`, with exit status 1: this is a tool for
//! people at a terminal, so no `Debug` dumps and no panics for anything the network or
//! the user can cause.

mod bench;
mod client_args;
mod connect;
mod format;
mod insecure;
mod policy;
mod serve;
mod serve_broadcast;
mod serve_processes;
mod serve_uring;

use std::{
    io::{self, IsTerminal as _, Write as _},
    process::ExitCode,
    time::Duration,
};

use clap::{ArgAction, Args, Parser, Subcommand};
use sockjet::ConnectionConfig;
use tracing_subscriber::{EnvFilter, filter::LevelFilter};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "sockjet",
    version,
    about = "WebSocket toolkit: interactive client, echo server, load generator",
    after_help = "Examples:\n  \
        sockjet serve                       # echo server on ws://127.0.0.1:8765\n  \
        sockjet serve 0.0.0.0:9000 -v       # on all interfaces, with debug logs\n  \
        sockjet connect ws://127.0.0.1:8765/chat\n  \
        sockjet connect wss://example.com/feed -H 'Authorization: Bearer T' --reconnect\n  \
        sockjet bench ws://127.0.0.1:8765 --conns 100 --depth 16 --duration 10s"
)]
struct Cli {
    /// Log more; repeat for more detail. `serve` logs connections (info) by default,
    /// `connect` and `bench` only warnings. RUST_LOG, when set, overrides -v and -q.
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Logging")]
    verbose: u8,
    /// Log less; repeat to silence more. `bench -q` also hides its progress display.
    #[arg(
        short,
        long,
        action = ArgAction::Count,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Logging"
    )]
    quiet: u8,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a WebSocket server that echoes every message back to its sender.
    ///
    /// With --broadcast, every message goes to every open connection instead.
    ///
    /// Prints `listening on ws://ADDR` once it accepts connections (with the real port when
    /// ADDR ends in :0; `wss://` with --tls-cert, `ws+unix://PATH` with --unix) and logs
    /// each connection on stderr. Ctrl-C or SIGTERM closes open connections with 1001
    /// (going away), waits for their closing handshakes (10 s at most) and exits. A plain
    /// `GET /healthz` is answered with 200 `ok`, before any origin or credential check.
    ///
    /// With --processes N, N worker processes share the port, and this one starts them,
    /// forwards those signals to them and exits once they have all exited.
    Serve(serve::ServeArgs),
    /// Open an interactive WebSocket session.
    ///
    /// Each line read from stdin is sent as a text message; each message received is
    /// printed as `< message` (control characters escaped, binary shown in hex). End of
    /// input (Ctrl-D) or Ctrl-C closes the connection with 1000. Exits with status 0 when
    /// the connection closes normally (1000, 1001), 1 otherwise.
    Connect(connect::ConnectArgs),
    /// Load a WebSocket server: echo throughput and latency, connection rate, or idle
    /// connections.
    ///
    /// The default echo load opens --conns connections and keeps --depth messages in
    /// flight on each (or sends --rate messages per second in all), warms up, measures
    /// for --duration, and prints messages per second, latency percentiles, errors and
    /// its own CPU use. The server must echo every message, in order.
    ///
    /// --connect-rate measures connections opened and closed per second; --idle N holds N
    /// connections open and, with --server-pid, reports the server's memory per
    /// connection (that of the process and its descendants). Past one process's open-file
    /// limit (or with --processes), --idle spreads its connections over several load
    /// processes and reports them as one run. Ctrl-C stops early and still prints the
    /// summary.
    #[command(after_help = "Examples:\n  \
        sockjet bench ws://127.0.0.1:8765                          # 100 connections, 16-byte text\n  \
        sockjet bench ws://127.0.0.1:8765 --depth 16 --size 1024 --compression\n  \
        sockjet bench ws://127.0.0.1:8765 --rate 50000 --json result.json\n  \
        sockjet bench ws://127.0.0.1:8765 --connect-rate --conns 50\n  \
        sockjet bench ws://127.0.0.1:8765 --idle 10000 --server-pid 1234\n  \
        sockjet bench ws://127.0.0.1:8765 --idle 50000 --processes 3 --server-pid 1234")]
    Bench(bench::BenchArgs),
}

/// Options shared by client and server connections.
#[derive(Debug, Args)]
struct ConnectionArgs {
    /// Largest message accepted, in bytes; 0 for no limit. A bigger message closes the
    /// connection with 1009 (message too big).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_size: usize,
    /// Do not negotiate permessage-deflate compression (on by default).
    #[arg(long)]
    no_compression: bool,
    /// permessage-deflate: zlib compression level, 0 (stored, no compression) to 9
    /// (smallest output, slowest).
    #[arg(long, value_name = "0-9", default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(0..=9))]
    compression_level: u32,
    /// permessage-deflate: zlib memLevel, 1 to 9, memory against speed. Below 8, C zlib
    /// compresses with tables that shrink with it (38 KiB per connection at 5 with the
    /// server's 12-bit window), cheapest with many connections; 8 and 9 use zlib-rs
    /// (259 KiB and more), faster for a few connections sending large messages.
    #[arg(long, value_name = "1-9", default_value_t = 5,
        value_parser = clap::value_parser!(u8).range(1..=9))]
    compression_mem_level: u8,
}

impl ConnectionArgs {
    /// The message size limit, if any.
    fn max_message_size(&self) -> Option<usize> {
        (self.max_size != 0).then_some(self.max_size)
    }

    /// The permessage-deflate options these arguments ask for, `None` for none.
    fn deflate(&self) -> Option<sockjet_proto::DeflateConfig> {
        (!self.no_compression).then(|| {
            sockjet_proto::DeflateConfig::default()
                .compression_level(self.compression_level)
                .mem_level(self.compression_mem_level)
        })
    }

    /// The protocol core's options for these arguments (the io_uring engine's).
    fn proto_config(&self) -> sockjet_proto::Config {
        let limit = self.max_message_size();
        sockjet_proto::Config::default()
            .max_message_size(limit)
            .max_frame_size(limit)
            .deflate(self.deflate())
    }

    /// The connection options these arguments ask for.
    fn config(&self) -> ConnectionConfig {
        let limit = self.max_message_size();
        ConnectionConfig::default()
            .max_message_size(limit)
            .compression(self.deflate())
    }
}

/// A failure shown to the user as `sockjet: MESSAGE` on stderr, with exit status 1.
#[derive(Debug)]
struct Failure(String);

impl Failure {
    /// Wraps a one-line message.
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Runs the command line and turns failures into one line on stderr and status 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server's log is its record of connections; an interactive client's stderr shares
    // the terminal with the conversation, so it shows only problems by default.
    let base = match cli.command {
        Command::Serve(_) => LevelFilter::INFO,
        Command::Connect(_) | Command::Bench(_) => LevelFilter::WARN,
    };
    init_logging(base, cli.verbose, cli.quiet);
    // Tokio's default is one worker per available core, which is what bench wants too
    // unless told otherwise.
    let threads = match &cli.command {
        Command::Bench(args) => args.threads(),
        Command::Serve(args) => args.threads(),
        Command::Connect(_) => None,
    }
    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    // The io_uring engine runs its own threads; tokio only waits for signals beside them.
    let threads = match &cli.command {
        Command::Serve(args) if args.uses_uring() => 1,
        _ => threads,
    };
    // One thread: the multi-threaded scheduler would only add its cost (atomic queues,
    // a worker thread beside this one), so run everything on this thread.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&Failure::new(format!("cannot start: {error}"))),
    };
    let quiet = cli.quiet > 0;
    // The command runs as a task on the runtime's workers, not on this thread: `block_on`
    // would run it here, and a server's accept loop would then hand every connection to
    // a worker thread, with a wakeup (futex) per connection and, on one core, a context
    // switch between the two threads.
    let command = runtime.spawn(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Bench(args) => bench::run(args, quiet).await,
        }
    });
    let result = match runtime.block_on(command) {
        Ok(result) => result,
        Err(error) => Err(Failure::new(format!("internal error: {error}"))),
    };
    // Don't wait for connection tasks that are still winding down: the command is over.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(failure) => fail(&failure),
    }
}

/// Prints a failure and returns exit status 1.
fn fail(failure: &Failure) -> ExitCode {
    eprintln!("sockjet: {}", failure.0);
    ExitCode::FAILURE
}

/// Sends logs to stderr, so that stdout carries only what the command prints (the
/// server's URL, the messages received), which scripts and tests parse.
///
/// Each `-v` raises the level by one step from `base`, each `-q` lowers it.
fn init_logging(base: LevelFilter, verbose: u8, quiet: u8) {
    const LEVELS: [LevelFilter; 6] = [
        LevelFilter::OFF,
        LevelFilter::ERROR,
        LevelFilter::WARN,
        LevelFilter::INFO,
        LevelFilter::DEBUG,
        LevelFilter::TRACE,
    ];
    let base = LEVELS.iter().position(|level| *level == base).unwrap_or(3);
    let index = (base + usize::from(verbose))
        .saturating_sub(usize::from(quiet))
        .min(LEVELS.len() - 1);
    let filter = EnvFilter::builder()
        .with_default_directive(LEVELS[index].into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Prints one line on stdout and flushes it, so that a reader on a pipe sees it at once.
fn print_line(line: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::new(format!("cannot write to stdout: {}", io_message(&error))))
}

/// An I/O error's message without the ` (os error 111)` suffix, which means nothing to
/// most users and makes the line harder to read.
fn io_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(end) if text.ends_with(')') => text[..end].to_owned(),
        _ => text,
    }
}

/// Parses a number of seconds, `0` meaning "disabled".
fn parse_seconds(value: &str) -> Result<Option<Duration>, String> {
    let seconds: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if seconds == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(seconds)
        .map(Some)
        .map_err(|_| format!("{value:?} is not a valid duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse_with_zero_as_disabled() {
        assert_eq!(parse_seconds("0"), Ok(None));
        assert_eq!(parse_seconds("2.5"), Ok(Some(Duration::from_millis(2500))));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn os_error_numbers_are_dropped() {
        let error = io::Error::from_raw_os_error(111);
        assert!(
            !io_message(&error).contains("os error"),
            "{}",
            io_message(&error)
        );
        assert_eq!(io_message(&io::Error::other("plain")), "plain");
    }
}
