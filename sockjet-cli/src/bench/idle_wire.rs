//! What a load process of `--idle N --processes P` tells its parent: one JSON object a
//! line on its stdout. The parent writes `close` (or just closes the pipe) on the
//! worker's stdin when the hold is over.
//!
//! A worker sends [`WorkerLine::Progress`] four times a second while it opens (and warms)
//! its connections, which is also how the parent knows it is alive; then
//! [`WorkerLine::Holding`] once they are all open (or failed), with what it knows then;
//! then, after `close`, [`WorkerLine::Closed`] with everything. Both carry a whole
//! [`Snapshot`], so that a worker lost after it reported holding still counts for what
//! it opened.

use std::io::{self, Write as _};

use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer as _, V2Serializer},
};
use serde::{Deserialize, Serialize};

use super::{
    idle::IdleConnections,
    os::CpuTime,
    stats::{Outcomes, Totals},
};

/// The line a parent writes on a worker's stdin to end the hold.
pub(crate) const CLOSE_COMMAND: &str = "close";

/// One line from a load process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WorkerLine {
    /// Connections opened and failed so far.
    Progress { opened: usize, failed: usize },
    /// Every attempt ended (and, when warming, every exchange): the connections are held.
    /// (Boxed, as the other lines are small.)
    Holding(Box<Snapshot>),
    /// The connections are closed: the final figures.
    Closed(Box<Snapshot>),
}

impl WorkerLine {
    /// Writes the line on stdout, flushed at once.
    ///
    /// # Errors
    ///
    /// If stdout is closed: the parent is gone.
    pub(crate) fn send(&self) -> io::Result<()> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        // One write of the whole line, under stdout's lock: lines from the progress task
        // and the main one never interleave.
        let mut stdout = io::stdout().lock();
        stdout.write_all(&line)?;
        stdout.flush()
    }
}

/// What a load process measured of its share.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// Connections opened.
    pub(crate) opened: usize,
    /// Attempts failed.
    pub(crate) failed: usize,
    /// Connections on which the server accepted permessage-deflate.
    pub(crate) compressed: usize,
    /// The server's first `Sec-WebSocket-Extensions` answer.
    pub(crate) extensions: Option<String>,
    /// Connections open (holding) or open when told to close (closed).
    pub(crate) held: usize,
    /// Connect times in µs: an HdrHistogram in the V2 format, in hex.
    pub(crate) connect_times: String,
    /// Compressed messages received.
    pub(crate) compressed_received: u64,
    /// Pings answered.
    pub(crate) pings: u64,
    /// Errors, close codes and failed attempts.
    pub(crate) outcomes: Outcomes,
    /// Warming: messages sent and echoes received.
    pub(crate) messages_sent: usize,
    /// See `messages_sent`.
    pub(crate) echoes_received: usize,
    /// How long warming took, in seconds; `None` without it.
    pub(crate) warm_s: Option<f64>,
    /// CPU time used while holding (closed only).
    pub(crate) cpu: Option<CpuTime>,
    /// Worker threads of the process.
    pub(crate) threads: usize,
}

impl Snapshot {
    /// What `connections` have recorded so far; `held` of them open, `cpu` used in the
    /// hold, if over.
    pub(crate) fn of(
        connections: &IdleConnections,
        held: usize,
        cpu: Option<CpuTime>,
        threads: usize,
    ) -> Self {
        let totals = connections.stats.totals();
        let counts = &connections.counts;
        let warmup = connections.warmup.as_ref();
        Self {
            opened: counts.opened(),
            failed: counts.failed(),
            compressed: counts.compressed(),
            extensions: counts.extensions(),
            held,
            connect_times: encode_histogram(&totals.connect),
            compressed_received: totals.compressed_received,
            pings: totals.pings,
            outcomes: connections.stats.outcomes().clone(),
            messages_sent: warmup.map_or(0, |warmup| warmup.sent()),
            echoes_received: warmup.map_or(0, |warmup| warmup.echoed()),
            warm_s: connections.warm_time.map(|time| time.as_secs_f64()),
            cpu,
            threads,
        }
    }

    /// The totals to add to the run's: connect times, compressed messages, pings.
    ///
    /// # Errors
    ///
    /// If the histogram does not decode.
    pub(crate) fn totals(&self) -> Result<Totals, String> {
        Ok(Totals {
            connect: decode_histogram(&self.connect_times)?,
            compressed_received: self.compressed_received,
            pings: self.pings,
            ..Totals::default()
        })
    }
}

/// `histogram` in the V2 format (the one HdrHistogram implementations share, exact: it
/// holds every count), as hex to fit a JSON string.
fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing to a Vec fails only on a histogram too large to encode, which 3 digits over
    // an hour are not; an empty string then decodes as an error, reported by the parent.
    if V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .is_err()
    {
        return String::new();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The histogram [`encode_histogram`] wrote.
fn decode_histogram(hex: &str) -> Result<Histogram<u64>, String> {
    let invalid = || "a connect-time histogram that does not decode".to_owned();
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let mut histogram: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|_| invalid())?;
    // Decoded histograms keep the size they were sent with; the run's grows as it needs.
    histogram.auto(true);
    Ok(histogram)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    #[test]
    fn histograms_cross_exactly() {
        let mut histogram = new_histogram();
        for micros in [1, 250, 251, 9_999, 3_600_000_000] {
            histogram.record_n(micros, 3).unwrap();
        }
        let decoded = decode_histogram(&encode_histogram(&histogram)).unwrap();
        assert_eq!(decoded, histogram);
        let mut sum = new_histogram();
        sum.add(&decoded).unwrap();
        sum.add(&decoded).unwrap();
        assert_eq!(sum.len(), 30);
        assert_eq!(sum.max(), histogram.max());
        let empty = decode_histogram(&encode_histogram(&new_histogram())).unwrap();
        assert!(empty.is_empty());
        for bad in ["", "0", "zz", "00ff"] {
            assert!(decode_histogram(bad).is_err(), "{bad:?} decoded");
        }
    }

    #[test]
    fn lines_are_tagged_json() {
        let line = serde_json::to_string(&WorkerLine::Progress {
            opened: 3,
            failed: 1,
        })
        .unwrap();
        assert_eq!(line, r#"{"progress":{"opened":3,"failed":1}}"#);
        let WorkerLine::Progress { opened, failed } = serde_json::from_str(&line).unwrap() else {
            panic!("not progress");
        };
        assert_eq!((opened, failed), (3, 1));
    }
}
