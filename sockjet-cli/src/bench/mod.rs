//! `sockjet bench`: a load generator for any WebSocket server.
//!
//! Four modes: an echo load (the default; messages per second and latency), connect
//! rate (`--connect-rate`; connections opened and closed per second), idle connections
//! (`--idle N`; what each costs the server, idle from the handshake on or, with `--warm`
//! or `--compression`, after one message each way) and fan-out (`--fanout N`; one
//! publisher, N subscribers, a server that broadcasts: deliveries per second and their
//! latency). With `--server-pid` it
//! also reads the server's CPU time and memory from `/proc`, so that servers can be
//! compared by what each message, cycle or connection costs them. With `--floor` the
//! server is a plain TCP echo of the tool's own frames (bench/peers' `tcp_echo`), the
//! kernel's floor for an echo over TCP.
//!
//! The tool must not be what limits the measurement: it runs on a multi-threaded
//! runtime, writes frames encoded once (not once per message), batches writes, reads with
//! large buffers and parses server frames without reassembling them, and reports its own
//! CPU use so that a user can tell when it saturates anyway.
//!
//! Files: `mod.rs` the arguments and the run; `load.rs`, `connect_rate.rs`, `idle.rs` and
//! `fanout/` the four modes; `idle_processes.rs` (the parent), `idle_worker.rs` (a load
//! process) and `idle_wire.rs` (what they say) idle connections over several processes,
//! past one process's open-file limit; `open.rs` and `dial.rs` opening connections;
//! `session.rs` one connection's I/O, with `frames.rs` (what it writes) and `reader.rs`
//! (what it reads); `stats.rs` the counters and histograms; `phases.rs` the phases of a
//! run; `progress.rs` the live display; `report.rs` the summary and JSON; `os.rs` the
//! system calls.

mod connect_rate;
mod dial;
mod fanout;
mod frames;
mod idle;
mod idle_processes;
mod idle_wire;
mod idle_worker;
mod load;
mod open;
mod os;
mod phases;
mod progress;
mod reader;
mod report;
mod session;
mod stats;

use std::{
    fs::File,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::Args;

use self::{
    dial::Target,
    frames::PayloadKind,
    idle_worker::WorkerSlice,
    progress::Display,
    report::{Mode, Parameters},
};
use crate::{Failure, io_message, print_line};

/// Longest TCP connect plus opening handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest closing handshake at the end of a run.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Time given to tasks beyond their own timeouts before they are aborted.
const GRACE: Duration = Duration::from_secs(1);

/// Arguments of `sockjet bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// WebSocket URL of the server, e.g. ws://127.0.0.1:8765.
    #[arg(value_name = "URL")]
    url: String,
    /// Connections to open (with --connect-rate: workers, each cycling one connection).
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_count)]
    conns: usize,
    /// Message size in bytes [default: 16; with --fanout, 64, and at least 16]. With
    /// --idle, the size of the one message each connection exchanges (with --warm or
    /// --compression only).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    size: Option<usize>,
    /// Messages in flight per connection (closed loop): K sent at first, then one more
    /// for each echo received. With --fanout, messages in flight from the publisher, one
    /// more each time one has reached every subscriber (or timed out).
    #[arg(long, value_name = "K", default_value = "1", value_parser = parse_depth)]
    depth: usize,
    /// How long to measure, after the warmup: e.g. 10, 10s, 500ms, 2m.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// How long to run before measuring.
    #[arg(long, value_name = "D", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Send JSON-like text messages (the default).
    #[arg(long, conflicts_with = "binary")]
    text: bool,
    /// Send pseudo-random binary messages.
    #[arg(long)]
    binary: bool,
    /// Offer permessage-deflate (with client_no_context_takeover); the summary says
    /// whether the server accepted it. Messages then cycle through different payloads
    /// of the same size, enough that none repeats within 32 KiB (up to 64), so that a
    /// server's compressor cannot just point back at the previous message. With --idle,
    /// each connection exchanges one message first (see --idle).
    #[arg(long)]
    compression: bool,
    /// Send R messages per second in all, on a schedule whatever the server does (open
    /// loop); latency is measured from the scheduled time, so it includes the timer's
    /// lateness (up to about 1 ms). With --fanout, the publisher's messages per second.
    #[arg(long, value_name = "R", value_parser = parse_rate, conflicts_with = "depth")]
    rate: Option<f64>,
    /// Also write the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Worker threads of the load tool; default: one per available core.
    #[arg(long, value_name = "T", value_parser = parse_count)]
    threads: Option<usize>,
    /// Measure connections per second: each worker connects, completes the handshake,
    /// closes with 1000, and starts again.
    #[arg(
        long,
        conflicts_with_all = ["depth", "rate", "size", "text", "binary", "idle"]
    )]
    connect_rate: bool,
    /// Open N idle connections, hold them for --duration answering pings, and report how
    /// many opened. With --compression (or --warm), once all are open each connection
    /// first sends one message of --size bytes and waits for its echo (at most 10 s), so
    /// that the server holds what a connection that has been used holds (with
    /// permessage-deflate, a compressor and a decompressor); the hold starts when every
    /// echo is back. Servers send short messages uncompressed (sockjet under 128 bytes,
    /// Node's ws under 1 KiB): with --compression, give a --size above their threshold.
    #[arg(
        long,
        value_name = "N",
        value_parser = parse_count,
        conflicts_with_all = ["conns", "depth", "rate"]
    )]
    idle: Option<usize>,
    /// With --idle: before the hold, each connection sends one message of --size bytes
    /// and waits for its echo, as with --compression, but uncompressed.
    #[arg(long, requires = "idle")]
    warm: bool,
    /// With --idle: spread the connections over P load processes (this executable run
    /// again), each under its own open-file limit, with the source addresses one process
    /// would use; the report is of them all. Default: as few as that limit requires (1 when
    /// one process can hold all N).
    #[arg(long, value_name = "P", value_parser = parse_count, requires = "idle")]
    processes: Option<usize>,
    /// A load process's share of an --idle run: connections START..START+COUNT of TOTAL,
    /// reported to the parent on stdout until `close` on stdin (see `idle_worker.rs`).
    #[arg(
        long,
        hide = true,
        value_name = "START/COUNT/TOTAL",
        requires = "idle",
        conflicts_with_all = ["processes", "server_pid", "json"]
    )]
    worker_slice: Option<WorkerSlice>,
    /// The server is a plain TCP echo that returns our own frames as they are, masked
    /// (bench/peers' `tcp_echo`): the kernel's floor, against which a WebSocket server's
    /// cost per message compares. Accepts masked frames from the server, counts their
    /// payloads by length without unmasking them, and closes each connection once the
    /// echo of its close frame comes back.
    #[arg(long, conflicts_with_all = ["connect_rate", "idle", "compression"])]
    floor: bool,
    /// One publisher and N subscribers: the server must send every message it receives to
    /// every open connection (`sockjet serve --broadcast`). The publisher sends --size-byte
    /// messages (each starting with its sequence number and send time) with --depth in
    /// flight or at --rate; the subscribers only read. Reports deliveries per second,
    /// each delivery's latency (send to a subscriber's read), each message's fan-out
    /// completion time, and the deliveries missing after --fanout-timeout; with
    /// --server-pid, the server's CPU time per delivery.
    #[arg(
        long,
        value_name = "N",
        value_parser = parse_subscribers,
        conflicts_with_all = ["conns", "connect_rate", "idle", "compression", "floor"]
    )]
    fanout: Option<usize>,
    /// With --fanout: the publisher connects to URL instead of the server the subscribers
    /// connect to: one of several server processes that share their connections (through
    /// Redis, say), so that the latency measured includes what connects them.
    #[arg(long, value_name = "URL", requires = "fanout")]
    publisher_url: Option<String>,
    /// With --fanout: how long a message may take to reach every subscriber; then those
    /// that did not get it count as missing deliveries.
    #[arg(
        long,
        value_name = "D",
        default_value = "2s",
        value_parser = parse_duration,
        requires = "fanout"
    )]
    fanout_timeout: Duration,
    /// The server's process id (Linux only): report its CPU time in the measurement window
    /// (in all, in percent of one core, and per message or per cycle, from /proc/PID/stat)
    /// and its resident memory at the end; with --idle, its memory growth per connection.
    /// The memory is that of PID and all its descendants (the sum of their VmRSS), so that
    /// a server whose worker processes hold the connections under a supervisor is
    /// measured whole; the CPU time is PID's own.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

impl BenchArgs {
    /// Worker threads asked for, if any.
    pub(crate) fn threads(&self) -> Option<usize> {
        self.threads
    }

    /// What the run measures.
    fn mode(&self) -> Mode {
        match (self.connect_rate, self.idle, self.fanout) {
            (true, _, _) => Mode::ConnectRate,
            (false, Some(_), _) => Mode::Idle,
            (false, None, Some(_)) => Mode::Fanout,
            (false, None, None) => Mode::Echo,
        }
    }

    /// Connections open at the same time (with --fanout, the subscribers and the
    /// publisher).
    fn connections(&self) -> usize {
        match (self.idle, self.fanout) {
            (Some(idle), _) => idle,
            (None, Some(subscribers)) => subscribers + 1,
            (None, None) => self.conns,
        }
    }

    /// Message size in bytes.
    fn size(&self) -> usize {
        let default = match self.fanout {
            Some(_) => DEFAULT_FANOUT_SIZE,
            None => DEFAULT_SIZE,
        };
        self.size.unwrap_or(default)
    }

    /// Whether idle connections exchange one message before the hold.
    fn warms(&self) -> bool {
        self.idle.is_some() && (self.warm || self.compression)
    }

    /// Refuses a zero --duration, and options that would be ignored: a message size or
    /// kind for idle connections that send no message.
    fn check(&self) -> Result<(), Failure> {
        if self.duration.is_zero() {
            return Err(Failure::new("--duration must be more than 0"));
        }
        if self.fanout.is_some() && self.size() < fanout::HEAD_LEN {
            return Err(Failure::new(format!(
                "--size must be at least {} with --fanout (each message carries its \
                 sequence number and send time)",
                fanout::HEAD_LEN
            )));
        }
        if self.fanout.is_some() && self.fanout_timeout.is_zero() {
            return Err(Failure::new("--fanout-timeout must be more than 0"));
        }
        if let (Some(slice), Some(idle)) = (self.worker_slice, self.idle)
            && slice.total != idle
        {
            return Err(Failure::new(
                "--worker-slice must be of --idle's connections",
            ));
        }
        if self.idle.is_some() && !self.warms() && (self.size.is_some() || self.text || self.binary)
        {
            return Err(Failure::new(
                "--size, --text and --binary need --warm or --compression with --idle \
                 (idle connections send no message otherwise)",
            ));
        }
        Ok(())
    }
}

/// Message size without --size.
const DEFAULT_SIZE: usize = 16;

/// Message size without --size, with --fanout: issue 7's fan-out target.
const DEFAULT_FANOUT_SIZE: usize = 64;

/// The options of a run, checked, with the target resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The server.
    target: Arc<Target>,
    /// What the run measures.
    mode: Mode,
    /// The command line.
    args: BenchArgs,
    /// Text or binary messages.
    kind: PayloadKind,
    /// Where the live display goes.
    display: Display,
    /// Worker threads of the runtime.
    threads: usize,
    /// Load processes of the run: more than 1 only for --idle beyond one process's
    /// open-file limit, or with --processes.
    processes: usize,
}

impl Settings {
    /// The parameters as the report shows them.
    fn parameters(&self) -> Parameters {
        let args = &self.args;
        Parameters {
            conns: args.connections(),
            size: args.size(),
            depth: args.rate.is_none().then_some(args.depth),
            rate: args.rate,
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            payload: self.kind.name(),
            payload_variants: (self.mode == Mode::Echo)
                .then(|| frames::variants_for(args.size(), args.compression)),
            compression: args.compression,
            floor: args.floor,
            idle: args.idle,
            fanout: args.fanout,
            publisher_url: args.publisher_url.clone(),
            fanout_timeout_s: args.fanout.map(|_| args.fanout_timeout.as_secs_f64()),
            warm: args.warms(),
            server_pid: args.server_pid,
            threads: self.threads,
            processes: self.processes,
        }
    }

    /// permessage-deflate to offer, if asked for.
    fn deflate(&self) -> Option<sockjet_proto::DeflateConfig> {
        self.args.compression.then(frames::Compression::offer)
    }
}

/// Runs `sockjet bench`: prints the summary on stdout, and writes it as JSON if asked.
pub(crate) async fn run(args: BenchArgs, quiet: bool) -> Result<ExitCode, Failure> {
    args.check()?;
    let target = Arc::new(Target::resolve(&args.url).await?);
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let kind = if args.binary {
        PayloadKind::Binary
    } else {
        PayloadKind::Text
    };
    if let Some(slice) = args.worker_slice {
        // A load process: it reports to its parent on stdout, and shows nothing.
        let _ = os::raise_open_file_limit();
        let settings = Settings {
            target,
            mode: Mode::Idle,
            kind,
            display: Display::Quiet,
            threads,
            processes: 1,
            args,
        };
        return idle_worker::run(&settings, slice).await;
    }
    if let Some(pid) = args.server_pid {
        // Fail now, not after the run, if the server cannot be measured.
        os::process_cpu_ticks(pid)
            .and_then(|_| os::tree_resident_bytes(pid))
            .map_err(|error| {
                Failure::new(format!(
                    "cannot read the CPU time and memory of process {pid} (--server-pid): {}",
                    io_message(&error)
                ))
            })?;
    }
    // Created now rather than after the run, so that a bad path does not waste one.
    let json_file = match &args.json {
        Some(path) => Some(File::create(path).map_err(|error| json_failure(path, &error))?),
        None => None,
    };
    let display = Display::for_stderr(quiet);
    let processes = plan_processes(&args, display);
    let settings = Settings {
        target,
        mode: args.mode(),
        kind,
        display,
        threads,
        processes,
        args,
    };
    let report = match settings.mode {
        Mode::Echo => load::run(&settings).await,
        Mode::ConnectRate => connect_rate::run(&settings).await,
        Mode::Idle if processes > 1 => idle_processes::run(&settings, processes).await,
        Mode::Idle => idle::run(&settings).await,
        Mode::Fanout => fanout::run(&settings).await,
    };
    let report = match report {
        Ok(report) => report,
        Err(failure) => {
            // No run, no report: leave no empty file behind.
            if let Some(path) = &settings.args.json {
                let _ = std::fs::remove_file(path);
            }
            return Err(failure);
        }
    };
    print_line(&report.render())?;
    if let (Some(mut file), Some(path)) = (json_file, &settings.args.json) {
        serde_json::to_writer_pretty(&mut file, &report)
            .map_err(io::Error::from)
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|error| json_failure(path, &error))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The failure to write the JSON report to `path`.
fn json_failure(path: &Path, error: &io::Error) -> Failure {
    Failure::new(format!(
        "cannot write {}: {}",
        path.display(),
        io_message(error)
    ))
}

/// Raises the open-file limit as far as allowed and chooses the run's load processes:
/// more than one only with --idle, as --processes asks or as many as the limit requires.
/// Says so when the limit is still below what each process needs (one descriptor per
/// connection, plus a few).
fn plan_processes(args: &BenchArgs, display: Display) -> usize {
    let limit = os::raise_open_file_limit()
        .map_err(|error| {
            notice(
                display,
                &format!("cannot read the open-file limit: {}", io_message(&error)),
            );
        })
        .ok();
    let connections = args.connections();
    let processes = match args.mode() {
        Mode::Idle => idle_processes::process_count(
            connections,
            args.processes,
            limit.map(|limit| limit.soft),
        ),
        Mode::Echo | Mode::ConnectRate | Mode::Fanout => 1,
    };
    let each = connections.div_ceil(processes);
    let needed = (each + idle_processes::FD_MARGIN) as u64;
    if let Some(limit) = limit
        && limit.soft < needed
    {
        let per_process = match processes {
            1 => String::new(),
            _ => " per load process".to_owned(),
        };
        notice(
            display,
            &format!(
                "the open-file limit is {} (hard limit {}), too low for {each} \
                 connections{per_process}; raise it with `ulimit -n`, use more --processes, \
                 or expect failures",
                limit.soft, limit.hard
            ),
        );
    }
    processes
}

/// Prints a note on stderr, unless quiet.
fn notice(display: Display, text: &str) {
    if display != Display::Quiet {
        eprintln!("sockjet bench: {text}");
    }
}

/// `value` rounded to `decimals` decimals, for a report that reads well.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Parses a duration: a number of seconds (`10`, `2.5`), or a number with a unit:
/// `ms`, `s`, `m`.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    let (number, scale) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else {
        (text, 1.0)
    };
    let invalid = || format!("{value:?} is not a duration (e.g. 10, 10s, 500ms, 2m)");
    let number: f64 = number.trim().parse().map_err(|_| invalid())?;
    if !number.is_finite() || number < 0.0 {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(number * scale).map_err(|_| invalid())
}

/// Parses a number of subscribers: at least 1, at most what the tool counts.
fn parse_subscribers(value: &str) -> Result<usize, String> {
    match parse_count(value)? {
        count if count <= fanout::MAX_SUBSCRIBERS => Ok(count),
        _ => Err(format!(
            "{value} is over the limit of {} subscribers",
            fanout::MAX_SUBSCRIBERS
        )),
    }
}

/// Parses a count of at least 1.
pub(crate) fn parse_count(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("{value:?} is not a whole number of at least 1")),
    }
}

/// Deepest closed loop: far beyond what socket buffers hold, so deeper only queues more.
const MAX_DEPTH: usize = 1 << 20;

/// Parses a depth: a count, at most [`MAX_DEPTH`].
fn parse_depth(value: &str) -> Result<usize, String> {
    match parse_count(value)? {
        depth if depth <= MAX_DEPTH => Ok(depth),
        _ => Err(format!("{value} is over the limit of {MAX_DEPTH}")),
    }
}

/// Largest message size: beyond it the tool would hold too much in memory.
const MAX_SIZE: usize = 256 << 20;

/// Parses a message size in bytes.
fn parse_size(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(size) if size <= MAX_SIZE => Ok(size),
        Ok(_) => Err(format!("{value} is over the limit of {MAX_SIZE} bytes")),
        Err(_) => Err(format!("{value:?} is not a number of bytes")),
    }
}

/// Parses a rate in messages per second.
fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a positive number of messages per second"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_or_without_unit() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "-1", "ten", "5h", "1e400", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn counts_sizes_and_rates_are_checked() {
        assert_eq!(parse_count("4"), Ok(4));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert_eq!(parse_depth("16"), Ok(16));
        assert!(parse_depth("0").is_err());
        assert!(parse_depth("100000000").is_err());
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("1000000000").is_err());
        assert_eq!(parse_rate("200"), Ok(200.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("inf").is_err());
    }
}
