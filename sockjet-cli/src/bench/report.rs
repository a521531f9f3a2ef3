//! The summary of a run: printed for people, written as JSON for scripts (`--json`).

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Settings, open::OpenCounts, phases::Window, round, stats::SharedStats};

/// The result of a `sockjet bench` run.
///
/// With `--json FILE` it is written as one JSON object whose field names are stable (new
/// fields may be added). Times are in microseconds (`_us`) or seconds (`_s`), sizes in
/// bytes; fields that do not apply to the run's mode are `null`.
///
/// - `mode`: `"echo"`, `"connect_rate"`, `"idle"` or `"fanout"`.
/// - `url`: the server's URL.
/// - `parameters`: the options of the run, see [`Parameters`].
/// - `connections`: connections opened and failed, connect times, see [`Connections`].
/// - `compression`: what permessage-deflate negotiation gave, see [`CompressionReport`].
/// - `measured_s`: length of the measurement window (after warmup), in seconds.
/// - `interrupted`: whether Ctrl-C cut the run short.
/// - `messages`: echo mode: messages and throughput, see [`Messages`].
/// - `cycles`: connect-rate mode: cycles completed, see [`Cycles`].
/// - `latency_us`: percentiles of the echo latency (echo mode), of the cycle latency
///   (connect-rate mode) or of the delivery latency (fan-out mode: from the publisher's
///   send to a subscriber's read) in the measurement window, see [`Percentiles`].
/// - `idle`: idle mode: connections held and the server's memory, see [`Idle`].
/// - `fanout`: fan-out mode: messages, deliveries, missing deliveries, completion times,
///   see [`FanoutReport`].
/// - `pings_answered`: pings from the server answered with a pong.
/// - `errors`: errors on open connections, see [`Errors`].
/// - `close_codes`: close codes received from the server, as `{"1000": 100}`; `1005`
///   counts close frames without a code.
/// - `cpu`: the load tool's own CPU use in the measurement window, see [`Cpu`].
/// - `server_cpu_seconds`: with `--server-pid` (echo and connect-rate modes): the
///   server's CPU time (user plus system, all threads, from `/proc/PID/stat`) in the
///   measurement window, in seconds; its resolution is one clock tick (10 ms at 100 Hz).
/// - `server_cpu_percent`: that time over the window's length, in percent of one core.
/// - `server_cpu_per_message_us`: echo mode: that time per echo received, in µs.
/// - `server_cpu_per_cycle_us`: connect-rate mode: that time per cycle completed, in µs.
/// - `server_cpu_per_delivery_us`: fan-out mode: that time per delivery (a message
///   received by one subscriber), in µs.
/// - `server_rss_bytes`: with `--server-pid`: the server's resident memory at the end of
///   the measurement window (idle mode: once all connections were open and, when warmed,
///   their echoes back), in bytes: the sum of the `VmRSS` of the process and all its
///   descendants (a supervisor's workers).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) mode: Mode,
    pub(crate) url: String,
    pub(crate) parameters: Parameters,
    pub(crate) connections: Connections,
    pub(crate) compression: CompressionReport,
    pub(crate) measured_s: f64,
    pub(crate) interrupted: bool,
    pub(crate) messages: Option<Messages>,
    pub(crate) cycles: Option<Cycles>,
    pub(crate) latency_us: Option<Percentiles>,
    pub(crate) idle: Option<Idle>,
    pub(crate) fanout: Option<FanoutReport>,
    pub(crate) pings_answered: u64,
    pub(crate) errors: Errors,
    pub(crate) close_codes: BTreeMap<String, u64>,
    pub(crate) cpu: Option<Cpu>,
    pub(crate) server_cpu_seconds: Option<f64>,
    pub(crate) server_cpu_percent: Option<f64>,
    pub(crate) server_cpu_per_message_us: Option<f64>,
    pub(crate) server_cpu_per_cycle_us: Option<f64>,
    pub(crate) server_cpu_per_delivery_us: Option<f64>,
    pub(crate) server_rss_bytes: Option<u64>,
}

/// What a run measures (`mode` in the JSON report).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// Echo load: messages per second and latency.
    Echo,
    /// Connections opened and closed per second.
    ConnectRate,
    /// Idle connections held open.
    Idle,
    /// One publisher, many subscribers, a broadcasting server.
    Fanout,
}

/// The options of the run (`parameters` in the JSON report).
///
/// - `conns`: connections (echo mode), workers (connect-rate mode), or the subscribers
///   and the publisher (fan-out mode).
/// - `size`: message size in bytes.
/// - `depth`: messages in flight per connection (closed loop; fan-out mode: from the
///   publisher); `null` with `rate`.
/// - `rate`: messages per second over all connections (open loop; fan-out mode: the
///   publisher's), or `null`.
/// - `duration_s`, `warmup_s`: the measurement window and the warmup before it.
/// - `payload`: `"text"` or `"binary"`.
/// - `payload_variants`: echo mode: how many different payloads are sent in turn (more
///   than one only with `compression`); `null` in the other modes.
/// - `compression`: whether permessage-deflate was offered.
/// - `floor`: echo mode: whether the server was taken for a plain TCP echo of the
///   client's own masked frames (`--floor`).
/// - `idle`: connections asked for in idle mode, or `null`.
/// - `fanout`: subscribers asked for in fan-out mode, or `null`.
/// - `publisher_url`: fan-out mode: the server the publisher connected to, when not
///   `url` (`--publisher-url`); else `null`.
/// - `fanout_timeout_s`: fan-out mode: how long a message may take to reach every
///   subscriber before those without it count as missing deliveries; else `null`.
/// - `warm`: idle mode: whether each connection exchanges one message of `size` bytes
///   before the hold (`--warm`, or `--compression`); `false` in the other modes.
/// - `server_pid`: the server process whose CPU time and memory were read, or `null`.
/// - `threads`: worker threads of the load tool (with several load processes, of all of
///   them).
/// - `processes`: load processes: more than 1 in idle mode with `--processes`, or when
///   the connections exceed one process's open-file limit.
#[derive(Debug, Serialize)]
pub(crate) struct Parameters {
    pub(crate) conns: usize,
    pub(crate) size: usize,
    pub(crate) depth: Option<usize>,
    pub(crate) rate: Option<f64>,
    pub(crate) duration_s: f64,
    pub(crate) warmup_s: f64,
    pub(crate) payload: &'static str,
    pub(crate) payload_variants: Option<usize>,
    pub(crate) compression: bool,
    pub(crate) floor: bool,
    pub(crate) idle: Option<usize>,
    pub(crate) fanout: Option<usize>,
    pub(crate) publisher_url: Option<String>,
    pub(crate) fanout_timeout_s: Option<f64>,
    pub(crate) warm: bool,
    pub(crate) server_pid: Option<u32>,
    pub(crate) threads: usize,
    pub(crate) processes: usize,
}

/// Connections opened (`connections` in the JSON report).
///
/// - `requested`: connections asked for (0 in connect-rate mode, which opens many).
/// - `opened`: connections opened (connect-rate: cycles that got through the handshake).
/// - `failed`: attempts that failed (connect-rate: cycles).
/// - `failures`: failed attempts by reason, e.g. `{"connection refused": 3}`.
/// - `first_failure`: the first failure's description, or `null`.
/// - `connect_time_us`: TCP connect plus opening handshake, see [`Percentiles`].
#[derive(Debug, Serialize)]
pub(crate) struct Connections {
    pub(crate) requested: usize,
    pub(crate) opened: u64,
    pub(crate) failed: u64,
    pub(crate) failures: BTreeMap<String, u64>,
    pub(crate) first_failure: Option<String>,
    pub(crate) connect_time_us: Option<Percentiles>,
}

/// permessage-deflate (`compression` in the JSON report).
///
/// - `requested`: whether `--compression` offered it.
/// - `negotiated`: whether the server accepted it on every connection opened.
/// - `negotiated_connections`: on how many connections it accepted it.
/// - `server_answer`: the server's `Sec-WebSocket-Extensions`, or `null`.
/// - `compressed_messages_received`: echoes received compressed (RSV1) in the
///   measurement window (idle mode: of the one message per connection); a server may
///   send short messages uncompressed.
#[derive(Debug, Serialize)]
pub(crate) struct CompressionReport {
    pub(crate) requested: bool,
    pub(crate) negotiated: bool,
    pub(crate) negotiated_connections: usize,
    pub(crate) server_answer: Option<String>,
    pub(crate) compressed_messages_received: u64,
}

/// Echo mode's messages (`messages` in the JSON report).
///
/// - `sent`: messages sent in the measurement window.
/// - `received`: echoes received in the measurement window.
/// - `per_s`: echoes received per second.
/// - `payload_mb_per_s`: payload bytes echoed per second, in MB (10^6 bytes), counted
///   one way: the same amount went the other way.
#[derive(Debug, Serialize)]
pub(crate) struct Messages {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) per_s: f64,
    pub(crate) payload_mb_per_s: f64,
}

/// Connect-rate mode's cycles (`cycles` in the JSON report).
///
/// - `completed`: cycles (connect, handshake, close) completed in the window.
/// - `per_s`: cycles per second.
#[derive(Debug, Serialize)]
pub(crate) struct Cycles {
    pub(crate) completed: u64,
    pub(crate) per_s: f64,
}

/// Idle mode's results (`idle` in the JSON report).
///
/// - `held`: connections still open when the hold ended.
/// - `warmed`: whether each connection sent one message and waited for its echo before
///   the hold (`--warm`, or `--compression`); see `echoes_received` for how many came.
/// - `messages_sent`: messages sent then (one per connection that got to send it).
/// - `echoes_received`: echoes of them received in time (10 s after each was sent), of
///   the right length; an echo that did not come is an `echo_timeout` error. Compressed
///   ones are counted in `compression.compressed_messages_received` too.
/// - `warm_s`: how long the exchange took, from when the connections were all open (and
///   could send) to the last echo (or timeout, or failure), in seconds; `null` when not
///   warmed.
/// - `server_rss_before_bytes`, `server_rss_after_bytes`: the server's resident memory
///   before opening and once all were open (and, when warmed, all echoes were back),
///   after 1 s to settle, or `null` without `--server-pid`.
/// - `server_rss_per_connection_bytes`: the growth divided by the connections opened.
/// - `processes_failed`: with several load processes (`parameters.processes`), those
///   that failed (exited, or were killed for not reporting in time): their connections
///   count as failed attempts if they had not reported them open, else as not held.
#[derive(Debug, Serialize)]
pub(crate) struct Idle {
    pub(crate) held: u64,
    pub(crate) warmed: bool,
    pub(crate) messages_sent: u64,
    pub(crate) echoes_received: u64,
    pub(crate) warm_s: Option<f64>,
    pub(crate) server_rss_before_bytes: Option<u64>,
    pub(crate) server_rss_after_bytes: Option<u64>,
    pub(crate) server_rss_per_connection_bytes: Option<f64>,
    pub(crate) processes_failed: u64,
}

/// Fan-out mode's results (`fanout` in the JSON report). Counts are of the measurement
/// window: messages by when their fan-out ended, deliveries by when they were read.
///
/// - `subscribers`: subscriber connections opened (the publisher is one more).
/// - `messages_sent`: messages the publisher sent.
/// - `messages_completed`: messages that reached every subscriber still connected.
/// - `messages_timed_out`: messages that had not after `fanout_timeout_s`.
/// - `messages_per_s`: messages whose fan-out ended (completed or timed out) per second.
/// - `deliveries`: messages read by a subscriber (one per subscriber per message), late
///   ones included: the count of `latency_us`, and what `server_cpu_per_delivery_us`
///   divides by.
/// - `deliveries_per_s`: `deliveries` per second.
/// - `missing_deliveries`: of the messages timed out, the subscribers that had not
///   received them then (a server may drop messages for a receiver that does not keep
///   up, or just be slower than the timeout).
/// - `late_deliveries`: deliveries read after their message's timeout (so counted in
///   `missing_deliveries` too): the server was slow rather than dropping.
/// - `completion_us`: time from sending a message to its read by the last subscriber,
///   for the messages completed, see [`Percentiles`].
/// - `timeout_s`: the timeout (`--fanout-timeout`).
/// - `probes`: messages sent before the warmup to check that every subscriber receives
///   broadcasts, until one reached them all.
/// - `subscribe_s`: how long that check took, in seconds.
/// - `publisher_report`: whether the publisher's counts came back (false: it did not end
///   in time, and its counts read 0).
#[derive(Debug, Serialize)]
pub(crate) struct FanoutReport {
    pub(crate) subscribers: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_completed: u64,
    pub(crate) messages_timed_out: u64,
    pub(crate) messages_per_s: f64,
    pub(crate) deliveries: u64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) missing_deliveries: u64,
    pub(crate) late_deliveries: u64,
    pub(crate) completion_us: Option<Percentiles>,
    pub(crate) timeout_s: f64,
    pub(crate) probes: u64,
    pub(crate) subscribe_s: Option<f64>,
    pub(crate) publisher_report: bool,
}

/// Percentiles of a histogram of microseconds, e.g. `latency_us` in the JSON report.
///
/// - `count`: samples; `min`, `mean`, `max`; `p50`, `p90`, `p99`, `p99_9`: percentiles.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) min: u64,
    pub(crate) mean: f64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p99_9: u64,
    pub(crate) max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram`, or `None` if it is empty.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Option<Self> {
        (!histogram.is_empty()).then(|| Self {
            count: histogram.len(),
            min: histogram.min(),
            mean: (histogram.mean() * 10.0).round() / 10.0,
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p99_9: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        })
    }
}

/// Errors on open connections (`errors` in the JSON report).
///
/// - `total`: all errors.
/// - `by_kind`: counts by kind: `length_mismatch` (an echo of the wrong length),
///   `unexpected_message` (a message with none in flight), `protocol` (the server broke
///   RFC 6455), `echo_timeout` (idle mode: no echo of the one message within 10 s), `io`
///   (reset, broken pipe), `eof` (TCP closed without a close frame),
///   `closed_by_server` (a close frame during the run), `close_timeout` (no answer to
///   our close), `connect` (connect-rate: a cycle failed to open).
/// - `first`: the first error's description, or `null`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Errors {
    pub(crate) total: u64,
    pub(crate) by_kind: BTreeMap<&'static str, u64>,
    pub(crate) first: Option<String>,
}

/// The load tool's CPU use (`cpu` in the JSON report), `null` where it cannot be read.
///
/// - `user_s`, `system_s`: CPU seconds in the measurement window.
/// - `percent_of_one_core`: their sum over the window's length; near `threads` × 100
///   the load tool itself is the bottleneck.
/// - `threads`: worker threads.
#[derive(Debug, Serialize)]
pub(crate) struct Cpu {
    pub(crate) user_s: f64,
    pub(crate) system_s: f64,
    pub(crate) percent_of_one_core: f64,
    pub(crate) threads: usize,
}

impl Report {
    /// The summary for people, several lines without a final newline.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        let p = &self.parameters;
        let what = match self.mode {
            Mode::ConnectRate => format!("connect rate, {} workers", group(p.conns as u64)),
            Mode::Idle => {
                let processes = match p.processes {
                    1 => String::new(),
                    processes => format!(" from {processes} load processes"),
                };
                format!(
                    "idle, {} connections{processes}",
                    group(p.idle.unwrap_or(0) as u64)
                )
            }
            Mode::Fanout => {
                let flow = match (p.rate, p.depth) {
                    (Some(rate), _) => format!("{} msg/s scheduled", group(rate.round() as u64)),
                    (None, Some(depth)) => format!("depth {depth}"),
                    (None, None) => String::new(),
                };
                let publisher = match &p.publisher_url {
                    Some(url) => format!(", publisher on {url}"),
                    None => String::new(),
                };
                format!(
                    "fan-out, 1 publisher to {} subscribers, {}-byte {} messages, \
                     {flow}{publisher}",
                    group(p.fanout.unwrap_or(0) as u64),
                    group(p.size as u64),
                    p.payload
                )
            }
            Mode::Echo => {
                let flow = match (p.rate, p.depth) {
                    (Some(rate), _) => format!("{} msg/s scheduled", group(rate.round() as u64)),
                    (None, Some(depth)) => format!("depth {depth}"),
                    (None, None) => String::new(),
                };
                let floor = if p.floor {
                    ", raw TCP echo (--floor)"
                } else {
                    ""
                };
                format!(
                    "echo, {} connections, {}-byte {} messages, {flow}{floor}",
                    group(p.conns as u64),
                    group(p.size as u64),
                    p.payload
                )
            }
        };
        let _ = writeln!(text, "sockjet bench {}: {what}", self.url);
        let mut line = |label: &str, value: String| {
            let _ = writeln!(text, "  {label:<13}{value}");
        };
        let interrupted = if self.interrupted {
            " (interrupted)"
        } else {
            ""
        };
        match self.mode {
            Mode::Idle => line(
                "held:",
                format!("{}{interrupted}", format_seconds(self.measured_s)),
            ),
            Mode::Echo | Mode::ConnectRate | Mode::Fanout => line(
                "measured:",
                format!(
                    "{} after {} of warmup{interrupted}",
                    format_seconds(self.measured_s),
                    format_seconds(p.warmup_s)
                ),
            ),
        }
        line("connections:", self.connections.render());
        line("compression:", self.compression.render());
        if let Some(messages) = &self.messages {
            line(
                "messages:",
                format!(
                    "{} echoed, {} msg/s ({} sent)",
                    group(messages.received),
                    group(messages.per_s.round() as u64),
                    group(messages.sent)
                ),
            );
            line(
                "throughput:",
                format!(
                    "{} of payload each way",
                    format_byte_rate(messages.payload_mb_per_s * 1e6)
                ),
            );
        }
        if let Some(cycles) = &self.cycles {
            line(
                "cycles:",
                format!(
                    "{} completed, {} cycles/s (connect, handshake, close)",
                    group(cycles.completed),
                    group(cycles.per_s.round() as u64)
                ),
            );
        }
        if let Some(fanout) = &self.fanout {
            fanout.render(&mut line);
        }
        if self.mode != Mode::Idle {
            let latency = match &self.latency_us {
                Some(latency) => format!(
                    "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
                    format_micros(latency.p50),
                    format_micros(latency.p90),
                    format_micros(latency.p99),
                    format_micros(latency.p99_9),
                    format_micros(latency.max)
                ),
                None => "no samples".to_owned(),
            };
            line("latency:", latency);
        }
        if let Some(idle) = &self.idle {
            line("held open:", group(idle.held));
            if idle.processes_failed > 0 {
                line(
                    "warning:",
                    format!(
                        "{} of {} load processes failed (their connections count as failed \
                         or not held)",
                        idle.processes_failed, p.processes
                    ),
                );
            }
            line("warmed:", idle.render_warm(p, self.connections.opened));
            if let (Some(before), Some(after)) =
                (idle.server_rss_before_bytes, idle.server_rss_after_bytes)
            {
                let per_connection = idle
                    .server_rss_per_connection_bytes
                    .map_or_else(|| "-".to_owned(), format_bytes);
                line(
                    "server RSS:",
                    format!(
                        "{} before, {} after: {per_connection} per connection",
                        format_bytes(before as f64),
                        format_bytes(after as f64)
                    ),
                );
            }
        }
        if self.pings_answered > 0 {
            line("pings:", format!("{} answered", group(self.pings_answered)));
        }
        line("errors:", self.errors.render());
        let codes = if self.close_codes.is_empty() {
            "none".to_owned()
        } else {
            let codes: Vec<String> = self
                .close_codes
                .iter()
                .map(|(code, count)| format!("{code} ×{}", group(*count)))
                .collect();
            codes.join(", ")
        };
        line("close codes:", codes);
        match &self.cpu {
            Some(cpu) => {
                line(
                    "load tool:",
                    format!(
                        "{:.0}% of one core ({:.2} s user, {:.2} s system) on {} thread{}",
                        cpu.percent_of_one_core,
                        cpu.user_s,
                        cpu.system_s,
                        cpu.threads,
                        if cpu.threads == 1 { "" } else { "s" }
                    ),
                );
                // Past 90% of its threads the tool, not the server, may set the pace.
                if cpu.percent_of_one_core >= 90.0 * cpu.threads as f64 {
                    line(
                        "warning:",
                        "the load tool was near saturation: the server may be faster than this shows"
                            .to_owned(),
                    );
                }
            }
            None => line("load tool:", "CPU use unavailable".to_owned()),
        }
        if let Some(server) = self.render_server() {
            line("server:", server);
        }
        text.truncate(text.trim_end().len());
        text
    }

    /// With `--server-pid`, e.g. `pid 4242: 0.95 s CPU (95.0% of one core), 9.81 µs per
    /// message; RSS 12.3 MiB`.
    fn render_server(&self) -> Option<String> {
        let pid = self.parameters.server_pid?;
        let mut text = format!("pid {pid}: ");
        match (self.server_cpu_seconds, self.server_cpu_percent) {
            (Some(seconds), Some(percent)) => {
                let _ = write!(text, "{seconds:.2} s CPU ({percent:.1}% of one core)");
                let per_op = [
                    (self.server_cpu_per_message_us, "message"),
                    (self.server_cpu_per_cycle_us, "cycle"),
                    (self.server_cpu_per_delivery_us, "delivery"),
                ];
                for (micros, what) in per_op {
                    if let Some(micros) = micros {
                        let _ = write!(text, ", {micros:.2} µs per {what}");
                    }
                }
            }
            _ if self.mode == Mode::Idle => text.push_str("CPU not measured while idle"),
            _ => text.push_str("CPU time unreadable at the end of the window (did it exit?)"),
        }
        match self.server_rss_bytes {
            Some(rss) => {
                let _ = write!(text, "; RSS {}", format_bytes(rss as f64));
            }
            None => text.push_str("; RSS unreadable"),
        }
        Some(text)
    }
}

impl FanoutReport {
    /// The fan-out lines of the summary, through `line(label, value)`.
    fn render(&self, line: &mut impl FnMut(&str, String)) {
        line(
            "messages:",
            format!(
                "{} fanned out, {} msg/s ({} sent, {} to all {} subscribers, {} timed out)",
                group(self.messages_completed + self.messages_timed_out),
                group(self.messages_per_s.round() as u64),
                group(self.messages_sent),
                group(self.messages_completed),
                group(self.subscribers),
                group(self.messages_timed_out)
            ),
        );
        line(
            "deliveries:",
            format!(
                "{} received, {} deliveries/s",
                group(self.deliveries),
                group(self.deliveries_per_s.round() as u64)
            ),
        );
        line(
            "missing:",
            format!(
                "{} deliveries (not received within {}){}",
                group(self.missing_deliveries),
                format_seconds(self.timeout_s),
                match self.late_deliveries {
                    0 => String::new(),
                    late => format!(", {} of them read later (in deliveries)", group(late)),
                }
            ),
        );
        let completion = match &self.completion_us {
            Some(completion) => format!(
                "p50 {}, p99 {}, max {} (send to the last subscriber's read)",
                format_micros(completion.p50),
                format_micros(completion.p99),
                format_micros(completion.max)
            ),
            None => "no message reached every subscriber".to_owned(),
        };
        line("fan-out:", completion);
        if !self.publisher_report {
            line(
                "warning:",
                "the publisher did not end in time: message counts are missing".to_owned(),
            );
        }
    }
}

impl Idle {
    /// E.g. `no: no message exchanged`, or `yes: 1,000 of 1,000 connections echoed one
    /// 4,096-byte text message (1,000 sent) in 85 ms`.
    fn render_warm(&self, p: &Parameters, opened: u64) -> String {
        if !self.warmed {
            return "no: no message exchanged (--warm or --compression to send one)".to_owned();
        }
        let took = self.warm_s.map_or_else(String::new, |seconds| {
            format!(" in {}", format_seconds(seconds))
        });
        format!(
            "yes: {} of {} connections echoed one {}-byte {} message ({} sent){took}",
            group(self.echoes_received),
            group(opened),
            group(p.size as u64),
            p.payload,
            group(self.messages_sent)
        )
    }
}

impl Connections {
    /// E.g. `100 opened, 0 failed; connect time p50 312 µs, max 1.21 ms`.
    fn render(&self) -> String {
        let mut text = format!(
            "{} opened, {} failed",
            group(self.opened),
            group(self.failed)
        );
        if let Some(first) = &self.first_failure {
            let _ = write!(text, " (first: {first})");
        }
        if let Some(connect) = &self.connect_time_us {
            let _ = write!(
                text,
                "; connect time p50 {}, max {}",
                format_micros(connect.p50),
                format_micros(connect.max)
            );
        }
        text
    }
}

impl CompressionReport {
    /// E.g. `off`, `not negotiated`, or `negotiated (permessage-deflate; ...)`.
    fn render(&self) -> String {
        if !self.requested {
            return "off".to_owned();
        }
        if self.negotiated_connections == 0 {
            return "not negotiated (the server declined permessage-deflate)".to_owned();
        }
        let answer = self
            .server_answer
            .as_deref()
            .unwrap_or("permessage-deflate");
        let partial = if self.negotiated {
            String::new()
        } else {
            format!(
                " on {} connections only",
                group(self.negotiated_connections as u64)
            )
        };
        format!(
            "negotiated{partial} ({answer}); {} compressed echoes received",
            group(self.compressed_messages_received)
        )
    }
}

impl Errors {
    /// E.g. `none`, or `3 (eof 2, length_mismatch 1); first: ...`.
    fn render(&self) -> String {
        if self.total == 0 {
            return "none".to_owned();
        }
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(kind, count)| format!("{kind} {}", group(*count)))
            .collect();
        let mut text = format!("{} ({})", group(self.total), kinds.join(", "));
        if let Some(first) = &self.first {
            let _ = write!(text, "; first: {first}");
        }
        text
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() * 4 / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Microseconds for people: `812 µs`, `1.23 ms`, `2.50 s`.
pub(crate) fn format_micros(micros: u64) -> String {
    match micros {
        0..1_000 => format!("{micros} µs"),
        1_000..1_000_000 => format!("{:.2} ms", micros as f64 / 1e3),
        _ => format!("{:.2} s", micros as f64 / 1e6),
    }
}

/// A duration for people, e.g. `10 s`, `500 ms`.
pub(crate) fn format_duration(duration: Duration) -> String {
    format_seconds(duration.as_secs_f64())
}

/// Seconds for people: `10 s`, `1.5 s`, `500 ms`.
fn format_seconds(seconds: f64) -> String {
    if seconds != 0.0 && seconds < 1.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else if seconds.fract() == 0.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{seconds:.2} s")
    }
}

/// Bytes per second for people, in decimal units: `3.20 kB/s`, `1.98 MB/s`.
fn format_byte_rate(bytes_per_second: f64) -> String {
    let units = [("B/s", 1.0), ("kB/s", 1e3), ("MB/s", 1e6), ("GB/s", 1e9)];
    let (unit, scale) = units
        .iter()
        .rev()
        .find(|(_, scale)| bytes_per_second >= *scale)
        .unwrap_or(&units[0]);
    format!("{:.2} {unit}", bytes_per_second / scale)
}

/// Bytes for people: `512 B`, `12.3 KiB`, `1.50 MiB`; negative for a decrease.
fn format_bytes(bytes: f64) -> String {
    let magnitude = bytes.abs();
    if magnitude < 1024.0 {
        format!("{bytes:.0} B")
    } else if magnitude < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
    }
}

/// The parts of the report every mode has; each mode adds its own.
pub(crate) fn common_report(
    settings: &Settings,
    stats: &SharedStats,
    requested: usize,
    counts: Option<&OpenCounts>,
    window: &Window,
) -> Report {
    let totals = stats.totals();
    let outcomes = stats.outcomes();
    let failed: u64 = outcomes.connect_failures.values().sum();
    let opened = match counts {
        Some(counts) => counts.opened() as u64,
        // Connect-rate: every connect time recorded is a connection opened.
        None => totals.connect.len(),
    };
    let negotiated_connections = counts.map_or(0, OpenCounts::compressed);
    let errors = Errors {
        total: outcomes.errors.values().sum(),
        by_kind: outcomes
            .errors
            .iter()
            .map(|(kind, count)| (kind.name(), *count))
            .collect(),
        first: outcomes.first_error.clone(),
    };
    Report {
        mode: settings.mode,
        url: settings.target.url.clone(),
        parameters: settings.parameters(),
        connections: Connections {
            requested,
            opened,
            failed,
            failures: outcomes.connect_failures.clone(),
            first_failure: outcomes.first_connect_failure.clone(),
            connect_time_us: Percentiles::of(&totals.connect),
        },
        compression: CompressionReport {
            requested: settings.args.compression,
            negotiated: opened > 0 && negotiated_connections as u64 == opened,
            negotiated_connections,
            server_answer: counts.and_then(OpenCounts::extensions),
            compressed_messages_received: totals.compressed_received,
        },
        measured_s: round(window.seconds(), 3),
        interrupted: window.interrupted,
        messages: None,
        cycles: None,
        latency_us: None,
        idle: None,
        fanout: None,
        pings_answered: totals.pings,
        errors,
        close_codes: outcomes
            .close_codes
            .iter()
            .map(|(code, count)| (code.to_string(), *count))
            .collect(),
        cpu: window.cpu_report(settings.threads),
        server_cpu_seconds: window.server_cpu_seconds().map(|seconds| round(seconds, 3)),
        server_cpu_percent: window.server_cpu_seconds().map(|seconds| {
            let length = window.seconds();
            if length > 0.0 {
                round(seconds / length * 100.0, 1)
            } else {
                0.0
            }
        }),
        server_cpu_per_message_us: None,
        server_cpu_per_cycle_us: None,
        server_cpu_per_delivery_us: None,
        server_rss_bytes: window.server.and_then(|server| server.rss_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(format_micros(812), "812 µs");
        assert_eq!(format_micros(1234), "1.23 ms");
        assert_eq!(format_micros(2_500_000), "2.50 s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500 ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(format_byte_rate(3200.0), "3.20 kB/s");
        assert_eq!(format_byte_rate(1_980_000.0), "1.98 MB/s");
        assert_eq!(format_byte_rate(0.0), "0.00 B/s");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(2560.0), "2.5 KiB");
        assert_eq!(format_bytes(-2560.0), "-2.5 KiB");
    }

    #[test]
    fn percentiles_are_ordered() {
        let mut histogram = crate::bench::stats::new_histogram();
        for micros in 1..=10_000 {
            histogram.record(micros).unwrap();
        }
        let percentiles = Percentiles::of(&histogram).unwrap();
        assert_eq!(percentiles.count, 10_000);
        assert!(percentiles.p50 <= percentiles.p90);
        assert!(percentiles.p90 <= percentiles.p99);
        assert!(percentiles.p99 <= percentiles.p99_9);
        assert!(percentiles.p99_9 <= percentiles.max);
        assert!(Percentiles::of(&crate::bench::stats::new_histogram()).is_none());
    }
}
