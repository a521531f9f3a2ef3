//! Latency histograms and counters, collected from many connections without slowing
//! them down.
//!
//! Each connection keeps its samples in a small local buffer ([`Recorder`]) and adds them
//! to one of a few shared shards every 100 ms or 256 samples: one lock per batch rather
//! than per message, and connections on different threads rarely share a shard. A
//! histogram per connection would be simpler but costs tens of KiB each, too much for
//! tens of thousands of connections.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Number of shards; more than any machine's cores a load tool runs on, so that two
/// threads seldom wait for the same one.
const SHARDS: usize = 64;

/// A recorder flushes its samples at least this often, so that the live display is
/// current.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A recorder flushes when it holds this many samples.
const FLUSH_SAMPLES: usize = 256;

/// Longest time recorded, in µs: an hour, far beyond any timeout of a run; longer ones are
/// recorded as an hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// A new histogram of microseconds, 3 significant digits, growing as needed: it takes
/// memory for the largest value recorded only.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits are supported")
}

/// Records `micros` in `histogram`, growing it as needed.
fn record(histogram: &mut Histogram<u64>, micros: u64) {
    // `saturating_record` would not grow an auto-resizing histogram but clamp to its
    // current top; `record` fails only past 2^62, which `micros` never reaches.
    let _ = histogram.record(micros.min(MAX_MICROS));
}

/// Microseconds in `duration`, as a histogram records them (at least 1).
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

/// Something that went wrong on an open connection, by kind. The names are stable: they
/// are the keys of `errors.by_kind` in the JSON report (and how load processes name them
/// to their parent).
#[derive(Clone, Copy, Debug, Eq, Ord, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// An echo whose length differs from what was sent.
    LengthMismatch,
    /// A message with nothing in flight to echo.
    UnexpectedMessage,
    /// No echo in time (idle mode's one message per connection).
    EchoTimeout,
    /// The server broke the protocol.
    Protocol,
    /// A read or write failed (connection reset, broken pipe).
    Io,
    /// The server closed TCP without a closing handshake.
    Eof,
    /// The server closed the connection during the run.
    ClosedByServer,
    /// The server did not finish the closing handshake in time.
    CloseTimeout,
    /// A connect-rate cycle could not connect or complete its handshake.
    Connect,
}

impl ErrorKind {
    /// The stable name of this kind.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::LengthMismatch => "length_mismatch",
            Self::UnexpectedMessage => "unexpected_message",
            Self::EchoTimeout => "echo_timeout",
            Self::Protocol => "protocol",
            Self::Io => "io",
            Self::Eof => "eof",
            Self::ClosedByServer => "closed_by_server",
            Self::CloseTimeout => "close_timeout",
            Self::Connect => "connect",
        }
    }
}

/// What happened once per connection or once in a while: errors, close codes, failed
/// connection attempts. Not on the hot path, so behind one lock.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Outcomes {
    /// Errors by kind.
    pub(crate) errors: BTreeMap<ErrorKind, u64>,
    /// The first error's description, to show what went wrong.
    pub(crate) first_error: Option<String>,
    /// Close codes received from the server, `1005` standing for an empty close frame.
    pub(crate) close_codes: BTreeMap<u16, u64>,
    /// Connection attempts that failed, by reason.
    pub(crate) connect_failures: BTreeMap<String, u64>,
    /// The first failed attempt's full description.
    pub(crate) first_connect_failure: Option<String>,
}

/// What one shard accumulates; merged across shards, the totals of a run.
#[derive(Debug)]
pub(crate) struct Totals {
    /// Latency of each message (or cycle) completed in the measurement window, in µs.
    pub(crate) latency: Histogram<u64>,
    /// Time to connect and complete the opening handshake, in µs.
    pub(crate) connect: Histogram<u64>,
    /// Messages sent in the measurement window.
    pub(crate) sent: u64,
    /// Compressed (RSV1) messages received in the measurement window.
    pub(crate) compressed_received: u64,
    /// Pings answered.
    pub(crate) pings: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            connect: new_histogram(),
            sent: 0,
            compressed_received: 0,
            pings: 0,
        }
    }
}

impl Totals {
    /// Adds `other` to these totals.
    fn add(&mut self, other: &Self) {
        // Adding to an auto-resizing histogram only fails past 2^62 µs.
        let _ = self.latency.add(&other.latency);
        let _ = self.connect.add(&other.connect);
        self.sent += other.sent;
        self.compressed_received += other.compressed_received;
        self.pings += other.pings;
    }
}

/// One shard, aligned to its own cache lines so that two shards' locks never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<ShardData>);

#[derive(Debug)]
struct ShardData {
    totals: Totals,
    /// Every latency since the live display last looked, warmup included.
    live: Histogram<u64>,
}

impl Default for ShardData {
    fn default() -> Self {
        Self {
            totals: Totals::default(),
            live: new_histogram(),
        }
    }
}

/// The statistics of a run, shared by all its connections.
#[derive(Debug)]
pub(crate) struct SharedStats {
    shards: Vec<Shard>,
    outcomes: Mutex<Outcomes>,
}

impl SharedStats {
    /// Empty statistics.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            outcomes: Mutex::new(Outcomes::default()),
        })
    }

    /// A recorder for connection number `index`.
    pub(crate) fn recorder(self: &Arc<Self>, index: usize) -> Recorder {
        Recorder {
            stats: Arc::clone(self),
            shard: index % SHARDS,
            samples: Vec::new(),
            counts: Counts::default(),
            last_flush: Instant::now(),
        }
    }

    /// The latencies recorded since the last call (warmup included), for the live display.
    pub(crate) fn take_live(&self) -> Histogram<u64> {
        let mut live = new_histogram();
        for shard in &self.shards {
            let mut data = lock(&shard.0);
            let _ = live.add(&data.live);
            data.live.reset();
        }
        live
    }

    /// The totals so far.
    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for shard in &self.shards {
            totals.add(&lock(&shard.0).totals);
        }
        totals
    }

    /// Errors, close codes and failed attempts so far.
    pub(crate) fn outcomes(&self) -> MutexGuard<'_, Outcomes> {
        lock(&self.outcomes)
    }

    /// Counts an error of `kind`, described by `detail` if it is the first.
    pub(crate) fn error(&self, kind: ErrorKind, detail: impl FnOnce() -> String) {
        let mut outcomes = self.outcomes();
        *outcomes.errors.entry(kind).or_default() += 1;
        if outcomes.first_error.is_none() {
            outcomes.first_error = Some(detail());
        }
    }

    /// Counts `count` errors of `kind` at once, described by `detail` if they are the
    /// first.
    pub(crate) fn errors(&self, kind: ErrorKind, count: u64, detail: impl FnOnce() -> String) {
        let mut outcomes = self.outcomes();
        *outcomes.errors.entry(kind).or_default() += count;
        if outcomes.first_error.is_none() {
            outcomes.first_error = Some(detail());
        }
    }

    /// Adds what another process recorded (a load process of the same run): its totals
    /// and outcomes, as if its connections had been this one's.
    pub(crate) fn absorb(&self, totals: &Totals, other: &Outcomes) {
        lock(&self.shards[0].0).totals.add(totals);
        let mut outcomes = self.outcomes();
        for (kind, count) in &other.errors {
            *outcomes.errors.entry(*kind).or_default() += count;
        }
        if outcomes.first_error.is_none() {
            outcomes.first_error.clone_from(&other.first_error);
        }
        for (code, count) in &other.close_codes {
            *outcomes.close_codes.entry(*code).or_default() += count;
        }
        for (reason, count) in &other.connect_failures {
            *outcomes.connect_failures.entry(reason.clone()).or_default() += count;
        }
        if outcomes.first_connect_failure.is_none() {
            outcomes
                .first_connect_failure
                .clone_from(&other.first_connect_failure);
        }
    }

    /// Counts a close code received from the server (`None`: an empty close frame).
    pub(crate) fn close_code(&self, code: Option<u16>) {
        // RFC 6455 §7.1.5: an empty close frame reads as 1005, "no status received".
        *self
            .outcomes()
            .close_codes
            .entry(code.unwrap_or(1005))
            .or_default() += 1;
    }

    /// Counts a failed connection attempt: `reason` groups like failures, `detail` says
    /// everything about the first.
    pub(crate) fn connect_failure(&self, reason: String, detail: String) {
        let mut outcomes = self.outcomes();
        *outcomes.connect_failures.entry(reason).or_default() += 1;
        if outcomes.first_connect_failure.is_none() {
            outcomes.first_connect_failure = Some(detail);
        }
    }
}

/// Locks `mutex`, ignoring poisoning: a panicked connection task leaves counters that are
/// still valid numbers.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a sample measures.
#[derive(Clone, Copy, Debug)]
enum SampleKind {
    /// A latency before the measurement window: only shown live.
    Warmup,
    /// A latency in the measurement window.
    Measured,
    /// A connect (and handshake) time.
    Connect,
}

/// The counters of one connection since its last flush.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
struct Counts {
    sent: u64,
    compressed_received: u64,
    pings: u64,
}

/// The statistics of one connection, added to the shared ones in batches.
#[derive(Debug)]
pub(crate) struct Recorder {
    stats: Arc<SharedStats>,
    shard: usize,
    samples: Vec<(u64, SampleKind)>,
    counts: Counts,
    last_flush: Instant,
}

impl Recorder {
    /// Records the latency of a message (or cycle) completed at `now`; `measured` tells
    /// whether `now` is in the measurement window.
    pub(crate) fn latency(&mut self, latency: Duration, measured: bool, now: Instant) {
        let kind = if measured {
            SampleKind::Measured
        } else {
            SampleKind::Warmup
        };
        self.samples.push((micros(latency), kind));
        self.maybe_flush(now);
    }

    /// Records a connect time.
    pub(crate) fn connect_time(&mut self, time: Duration) {
        self.samples.push((micros(time), SampleKind::Connect));
    }

    /// Counts `count` messages sent in the measurement window.
    pub(crate) fn sent(&mut self, count: u64) {
        self.counts.sent += count;
    }

    /// Counts a compressed message received in the measurement window.
    pub(crate) fn compressed_received(&mut self) {
        self.counts.compressed_received += 1;
    }

    /// Counts `count` pings answered.
    pub(crate) fn pings_answered(&mut self, count: u64) {
        self.counts.pings += count;
    }

    /// The shared statistics, for errors and close codes.
    pub(crate) fn shared(&self) -> &SharedStats {
        &self.stats
    }

    /// Flushes if the buffer is full or the last flush is old.
    pub(crate) fn maybe_flush(&mut self, now: Instant) {
        if self.samples.len() >= FLUSH_SAMPLES
            || now.saturating_duration_since(self.last_flush) >= FLUSH_INTERVAL
        {
            self.flush();
            self.last_flush = now;
        }
    }

    /// Adds everything recorded so far to the shared statistics.
    pub(crate) fn flush(&mut self) {
        let counts = std::mem::take(&mut self.counts);
        if self.samples.is_empty() && counts == Counts::default() {
            return;
        }
        let mut data = lock(&self.stats.shards[self.shard].0);
        for (micros, kind) in self.samples.drain(..) {
            match kind {
                SampleKind::Warmup => record(&mut data.live, micros),
                SampleKind::Measured => {
                    record(&mut data.live, micros);
                    record(&mut data.totals.latency, micros);
                }
                SampleKind::Connect => record(&mut data.totals.connect, micros),
            }
        }
        data.totals.sent += counts.sent;
        data.totals.compressed_received += counts.compressed_received;
        data.totals.pings += counts.pings;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_add_up_in_the_totals() {
        let stats = SharedStats::new();
        let now = Instant::now();
        for index in 0..10 {
            let mut recorder = stats.recorder(index);
            recorder.connect_time(Duration::from_millis(2));
            recorder.connect_time(Duration::from_secs(1));
            recorder.latency(Duration::from_micros(100), false, now);
            recorder.latency(Duration::from_micros(200 + index as u64), true, now);
            recorder.sent(2);
        }
        let totals = stats.totals();
        assert_eq!(totals.connect.min(), 2000, "big values grow the histogram");
        assert_eq!(totals.latency.len(), 10);
        assert_eq!(totals.connect.len(), 20);
        assert!(totals.connect.max() >= 999_000, "{}", totals.connect.max());
        assert_eq!(totals.sent, 20);
        assert!(totals.latency.min() >= 200);
        assert_eq!(stats.take_live().len(), 20);
        assert_eq!(stats.take_live().len(), 0, "live samples are taken once");
        stats.error(ErrorKind::Eof, || "first".to_owned());
        stats.error(ErrorKind::Eof, || "second".to_owned());
        stats.close_code(None);
        let outcomes = stats.outcomes();
        assert_eq!(outcomes.errors[&ErrorKind::Eof], 2);
        assert_eq!(outcomes.first_error.as_deref(), Some("first"));
        assert_eq!(outcomes.close_codes[&1005], 1);
    }

    #[test]
    fn another_processs_stats_add_up() {
        let (stats, other) = (SharedStats::new(), SharedStats::new());
        stats.recorder(0).connect_time(Duration::from_millis(1));
        stats.error(ErrorKind::Eof, || "here".to_owned());
        stats.close_code(Some(1000));
        let mut recorder = other.recorder(5);
        recorder.connect_time(Duration::from_millis(3));
        recorder.pings_answered(2);
        drop(recorder);
        other.error(ErrorKind::Eof, || "there".to_owned());
        other.error(ErrorKind::Io, || "reset".to_owned());
        other.close_code(Some(1000));
        other.connect_failure("refused".to_owned(), "connection refused".to_owned());
        // As a load process sends them: the outcomes through JSON.
        let json = serde_json::to_string(&*other.outcomes()).unwrap();
        let outcomes: Outcomes = serde_json::from_str(&json).unwrap();
        stats.absorb(&other.totals(), &outcomes);
        let totals = stats.totals();
        assert_eq!((totals.connect.len(), totals.pings), (2, 2));
        let outcomes = stats.outcomes();
        assert_eq!(outcomes.errors[&ErrorKind::Eof], 2);
        assert_eq!(outcomes.errors[&ErrorKind::Io], 1);
        assert_eq!(outcomes.first_error.as_deref(), Some("here"));
        assert_eq!(outcomes.close_codes[&1000], 2);
        assert_eq!(outcomes.connect_failures["refused"], 1);
        assert_eq!(
            outcomes.first_connect_failure.as_deref(),
            Some("connection refused")
        );
    }

    #[test]
    fn error_kinds_serialize_as_their_names() {
        for kind in [
            ErrorKind::LengthMismatch,
            ErrorKind::UnexpectedMessage,
            ErrorKind::EchoTimeout,
            ErrorKind::Protocol,
            ErrorKind::Io,
            ErrorKind::Eof,
            ErrorKind::ClosedByServer,
            ErrorKind::CloseTimeout,
            ErrorKind::Connect,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
        }
    }
}
