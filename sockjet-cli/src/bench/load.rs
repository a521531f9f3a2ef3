//! The echo load: each connection sends its pre-encoded message and times the echoes.
//!
//! Closed loop (`--depth K`): K messages in flight, and one more sent for each echo.
//! Open loop (`--rate R`): messages leave on a schedule whatever the server does, and
//! latency runs from the *scheduled* send time, so that a stalled server shows in the
//! percentiles instead of silently slowing the sender (coordinated omission).
//!
//! The server must echo in order, as every echo server does: the n-th message received
//! answers the n-th sent.

use std::{
    collections::VecDeque,
    iter,
    sync::Arc,
    time::{Duration, Instant},
};

use sockjet_proto::{MaskKeys as _, OsRandomMaskKeys};
use tokio::task::JoinSet;

use super::{
    CLOSE_TIMEOUT, GRACE, HANDSHAKE_TIMEOUT, Settings,
    dial::Opened,
    frames::{self, Compression, EncodedCache, EncodedMessage, PayloadKind},
    open::{OpenPlan, open_all},
    phases::{Interrupt, Window, join_until},
    progress::{Progress, live_status},
    report::{Messages, Percentiles, Report, common_report},
    session::{Echo, Session},
    stats::{ErrorKind, Recorder, SharedStats},
};
use crate::Failure;

/// Runs the echo load: opens the connections, runs them through warmup and measurement,
/// closes them, and reports.
pub(crate) async fn run(settings: &Settings) -> Result<Report, Failure> {
    let args = &settings.args;
    let stats = SharedStats::new();
    let mut interrupt = Interrupt::listen();

    // Open every connection before the clock starts, so that the warmup and the
    // measurement see them all.
    let requested = args.conns;
    let plan = OpenPlan {
        target: Arc::clone(&settings.target),
        count: requested,
        deflate: settings.deflate(),
        timeout: HANDSHAKE_TIMEOUT,
        share: None,
    };
    let (connections, counts) = open_all(plan, settings, &stats, &mut interrupt).await?;

    let schedule = match args.rate {
        // The rate is shared by the connections that opened.
        Some(rate) => Schedule::OpenLoop {
            interval: Duration::try_from_secs_f64(connections.len() as f64 / rate)
                .map_err(|_| Failure::new(format!("--rate {rate} is too low")))?
                // A zero interval would make the catch-up loop endless.
                .max(MIN_INTERVAL),
        },
        None => Schedule::ClosedLoop { depth: args.depth },
    };
    let start = Instant::now();
    let measure_start = start + args.warmup;
    let end = measure_start + args.duration;
    let plan = Arc::new(LoadPlan {
        kind: settings.kind,
        size: args.size(),
        payloads: (0..frames::variants_for(args.size(), args.compression))
            .map(|index| frames::payload_variant(settings.kind, args.size(), index))
            .collect(),
        encoded: EncodedCache::default(),
        schedule,
        connections: connections.len(),
        measure_start,
        end,
        close_timeout: CLOSE_TIMEOUT,
        floor: args.floor,
    });
    let mut drivers = JoinSet::new();
    for (index, opened) in connections {
        drivers.spawn(drive(
            opened,
            index,
            Arc::clone(&plan),
            stats.recorder(index),
        ));
    }
    let progress = Progress::start(
        settings.display,
        live_status(Arc::clone(&stats), "msg/s", start, measure_start, end),
    );
    let window = Window::wait(measure_start, end, args.server_pid, &mut interrupt).await;
    if window.interrupted {
        drivers.abort_all();
    }
    join_until(&mut drivers, end + CLOSE_TIMEOUT + GRACE, &mut interrupt).await;
    progress.finish();

    let mut report = common_report(settings, &stats, requested, Some(&counts), &window);
    let totals = stats.totals();
    let received = totals.latency.len();
    let seconds = window.seconds();
    let per_second = |count: f64| if seconds > 0.0 { count / seconds } else { 0.0 };
    report.messages = Some(Messages {
        sent: totals.sent,
        received,
        per_s: super::round(per_second(received as f64), 1),
        payload_mb_per_s: super::round(per_second((received * args.size() as u64) as f64) / 1e6, 6),
    });
    report.latency_us = Percentiles::of(&totals.latency);
    report.server_cpu_per_message_us = window.server_cpu_per_op_us(received);
    Ok(report)
}

/// Shortest time between two sends of a connection in an open loop.
const MIN_INTERVAL: Duration = Duration::from_micros(1);

/// Most send times kept in advance; a closed loop deeper than this grows its queue as it
/// goes.
const MAX_PREALLOCATED: usize = 1024;

/// When messages leave.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Schedule {
    /// Keep this many messages in flight.
    ClosedLoop {
        /// Messages in flight per connection.
        depth: usize,
    },
    /// Send one message every `interval` on each connection.
    OpenLoop {
        /// Time between two sends of one connection.
        interval: Duration,
    },
}

/// What every connection of an echo run does.
#[derive(Debug)]
pub(crate) struct LoadPlan {
    /// Text or binary.
    pub(crate) kind: PayloadKind,
    /// The size of every message.
    pub(crate) size: usize,
    /// The payloads sent in turn: one, or with permessage-deflate several variants (see
    /// [`frames::variants_for`]).
    pub(crate) payloads: Vec<Vec<u8>>,
    /// The message, encoded once per compression setting.
    pub(crate) encoded: EncodedCache,
    /// When messages leave.
    pub(crate) schedule: Schedule,
    /// Number of connections, to spread the open-loop schedules evenly.
    pub(crate) connections: usize,
    /// Start of the measurement window (the end of the warmup).
    pub(crate) measure_start: Instant,
    /// End of the measurement window: then connections close.
    pub(crate) end: Instant,
    /// How long the closing handshake may take.
    pub(crate) close_timeout: Duration,
    /// The server is a plain TCP echo of our own frames (`--floor`).
    pub(crate) floor: bool,
}

impl LoadPlan {
    /// Whether `at` is in the measurement window.
    fn measures(&self, at: Instant) -> bool {
        at >= self.measure_start && at < self.end
    }

    /// The message as a connection with `compression` sends it, encoded by the first
    /// such connection.
    fn encoded_for(&self, compression: Option<&Compression>) -> Arc<EncodedMessage> {
        self.encoded.get(compression, || {
            let copies = match self.schedule {
                Schedule::ClosedLoop { depth } => depth,
                Schedule::OpenLoop { .. } => 1,
            };
            let mask = OsRandomMaskKeys::default().next_key();
            EncodedMessage::new(self.kind, &self.payloads, compression, mask, copies)
        })
    }
}

/// Why the wait in the main loop ended.
enum Wake {
    /// The socket is ready (or failed).
    Socket(std::io::Result<tokio::io::Ready>),
    /// Open loop: a send is due.
    SendDue,
    /// The run is over.
    End,
}

/// Runs the echo load on connection number `index` until the end of the plan, then closes
/// it with 1000. Everything that goes wrong is counted in `recorder`; nothing is returned.
pub(crate) async fn drive(
    opened: Opened,
    index: usize,
    plan: Arc<LoadPlan>,
    mut recorder: Recorder,
) {
    let compression = opened.compression.clone();
    let message = plan.encoded_for(compression.as_ref());
    let mask = OsRandomMaskKeys::default().next_key();
    let start = message.start_for(index);
    let mut session = Session::new(opened, Some(message), mask);
    session.start_at_frame(start);
    if plan.floor {
        session.expect_raw_echo();
    }
    session.capture_next_compressed();
    // Send times of the messages in flight, oldest first.
    let capacity = match plan.schedule {
        Schedule::ClosedLoop { depth } => depth.min(MAX_PREALLOCATED),
        Schedule::OpenLoop { .. } => 1,
    };
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(capacity);

    let start = Instant::now();
    let mut next_send = start;
    match plan.schedule {
        Schedule::ClosedLoop { depth } => {
            session.queue_data(depth as u64);
            in_flight.extend(iter::repeat_n(start, depth));
            if plan.measures(start) {
                recorder.sent(depth as u64);
            }
        }
        Schedule::OpenLoop { interval } => {
            // Spread the connections' schedules over one interval rather than sending
            // every connection's message at the same instant.
            next_send += interval.mul_f64(index as f64 / plan.connections.max(1) as f64);
        }
    }
    let open_loop_interval = match plan.schedule {
        Schedule::OpenLoop { interval } => Some(interval),
        Schedule::ClosedLoop { .. } => None,
    };
    let send_due = tokio::time::sleep_until(next_send.into());
    let end = tokio::time::sleep_until(plan.end.into());
    tokio::pin!(send_due, end);

    let failed = loop {
        if let Err(error) = session.write_pending() {
            break Some((ErrorKind::Io, crate::io_message(&error)));
        }
        // Timers first: a busy socket is ready at every turn, and must not keep the run
        // from ending or the schedule from being kept.
        let wake = tokio::select! {
            biased;
            () = &mut end => Wake::End,
            () = &mut send_due, if open_loop_interval.is_some() => Wake::SendDue,
            ready = session.ready() => Wake::Socket(ready),
        };
        match wake {
            Wake::End => break None,
            Wake::SendDue => {
                let Some(interval) = open_loop_interval else {
                    continue;
                };
                // Catch up with every send due by now, each timed from its own slot.
                let now = Instant::now();
                let mut due = 0;
                while next_send <= now {
                    in_flight.push_back(next_send);
                    if plan.measures(next_send) {
                        recorder.sent(1);
                    }
                    next_send += interval;
                    due += 1;
                }
                session.queue_data(due);
                send_due.as_mut().reset(next_send.into());
            }
            Wake::Socket(Err(error)) => break Some((ErrorKind::Io, crate::io_message(&error))),
            Wake::Socket(Ok(ready)) => {
                if !ready.is_readable() {
                    continue;
                }
                // One clock reading per read: messages that arrived together completed
                // together.
                let now = Instant::now();
                let measuring = plan.measures(now);
                let mut echoed = 0u64;
                let outcome = session.read_available(&mut |echo| {
                    check_echo(
                        &echo,
                        plan.size,
                        compression.as_ref(),
                        measuring,
                        &mut recorder,
                    );
                    match in_flight.pop_front() {
                        Some(sent) => recorder.latency(now - sent, measuring, now),
                        None => recorder.shared().error(ErrorKind::UnexpectedMessage, || {
                            "the server sent a message with none in flight".to_owned()
                        }),
                    }
                    echoed += 1;
                });
                recorder.maybe_flush(now);
                if open_loop_interval.is_none() && echoed > 0 {
                    session.queue_data(echoed);
                    in_flight.extend(iter::repeat_n(now, echoed as usize));
                    if measuring {
                        recorder.sent(echoed);
                    }
                }
                if let Some(failed) = session.stop_after(outcome, &recorder) {
                    break Some(failed);
                }
            }
        }
    };
    recorder.flush();
    session.end(failed, plan.close_timeout, &mut recorder).await;
}

/// Checks that an echo has the length of what was sent, `size` bytes: on the wire when
/// uncompressed, inflated for the one compressed message captured (the others pass).
/// Counts a compressed echo if `count_compressed`, and a wrong length as an error.
/// Returns whether the length was right.
pub(crate) fn check_echo(
    echo: &Echo<'_>,
    size: usize,
    compression: Option<&Compression>,
    count_compressed: bool,
    recorder: &mut Recorder,
) -> bool {
    let length = if echo.compressed {
        if count_compressed {
            recorder.compressed_received();
        }
        match (echo.captured, compression) {
            // One more byte than expected is enough to tell "too long".
            (Some(captured), Some(compression)) => compression
                .inflated_len(captured, size + 1)
                .map(|len| len as u64),
            _ => return true,
        }
    } else {
        Some(echo.wire_len)
    };
    if length == Some(size as u64) {
        return true;
    }
    let got = length.map_or_else(
        || "invalid compressed data".to_owned(),
        |len| format!("{len} bytes"),
    );
    recorder.shared().error(ErrorKind::LengthMismatch, || {
        format!("an echo of a {size}-byte message had {got}")
    });
    false
}
