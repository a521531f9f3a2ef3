//! `--idle N`: many open connections doing nothing, to measure what each costs the
//! server (with `--server-pid`, its resident memory before and after).
//!
//! With `--warm` or `--compression`, once every connection is open, each one first sends
//! one message and waits for its echo: a server may allocate part of a connection's
//! state only when it is used (with permessage-deflate, its compressor and decompressor
//! exist only after the first compressed message each way), and a connection in real use
//! holds it. At most [`MAX_ECHOES_IN_FLIGHT`] messages are out at once, each echo has
//! [`ECHO_TIMEOUT`] to come, and the hold (and the settling pause before the server's
//! memory is read) starts when every connection is done with its message.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sockjet_proto::{MaskKeys as _, OsRandomMaskKeys};
use tokio::{
    sync::{AcquireError, Notify, OwnedSemaphorePermit, Semaphore, watch},
    time::Sleep,
};

use tokio::task::JoinSet;

use super::{
    CLOSE_TIMEOUT, GRACE, HANDSHAKE_TIMEOUT, Settings,
    dial::Opened,
    frames::{Compression, EncodedCache, EncodedMessage, PayloadKind, payload_variant},
    load::check_echo,
    notice,
    open::{OpenCounts, OpenPlan, Share, spawn_openers},
    os,
    phases::{Interrupt, Window, all_attempted, any_opened, join_until},
    progress::{Progress, Status, opening_status},
    report::{self, Idle, Report, common_report},
    session::{Echo, Session},
    stats::{ErrorKind, Recorder, SharedStats},
};
use crate::{Failure, io_message};

/// Time for the server's memory to settle after the last connection opened (and, when
/// warming, the last echo came), before its resident size is read.
pub(crate) const SETTLE: Duration = Duration::from_secs(1);

/// Longest wait for the echo of a connection's one message, from when it was sent.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// Most messages out at once while warming: each is a single write, so this many at once
/// is easy for the tool; it bounds what a slow server has queued, and keeps every
/// message's timeout about its own echo rather than the queue before it.
const MAX_ECHOES_IN_FLIGHT: usize = 10_000;

/// Opens the idle connections, reads the server's memory before and after, holds them for
/// `--duration`, closes them, and reports.
pub(crate) async fn run(settings: &Settings) -> Result<Report, Failure> {
    let args = &settings.args;
    let requested = args.connections();
    let mut interrupt = Interrupt::listen();
    let rss_before = rss_before_opening(settings)?;

    let mut connections = IdleConnections::start(settings, requested, None);
    let progress = Progress::start(settings.display, {
        let counts = Arc::clone(&connections.counts);
        move || opening_status(&counts, requested)
    });
    let all_open = connections
        .all_attempted(&mut interrupt)
        .await
        .and_then(|()| {
            any_opened(
                connections.counts.opened(),
                requested,
                settings,
                &connections.stats,
            )
        });
    progress.finish();
    if let Err(failure) = all_open {
        connections.holders.abort_all();
        return Err(failure);
    }
    connections.warm(settings, &mut interrupt).await;

    let hold_start = Instant::now();
    let hold_end = hold_start + args.duration.max(SETTLE);
    let progress = Progress::start(settings.display, {
        let (counts, lost) = (
            Arc::clone(&connections.counts),
            Arc::clone(&connections.lost),
        );
        move || {
            holding_status(
                counts.opened().saturating_sub(lost.load(Ordering::Relaxed)),
                hold_start,
                hold_end,
            )
        }
    });
    let rss_after = rss_after_settling(settings, &mut interrupt).await;
    // The server's memory was read above; its CPU time while idle is not measured (the
    // window started before the settling pause).
    let window = Window::wait(hold_start, hold_end, None, &mut interrupt).await;
    let held = connections.close(&mut interrupt).await;
    progress.finish();

    let stats = &connections.stats;
    let counts = &connections.counts;
    let mut report = common_report(settings, stats, requested, Some(counts), &window);
    report.server_rss_bytes = rss_after;
    let warmup = connections.warmup.as_ref();
    report.idle = Some(Idle {
        held: held as u64,
        warmed: warmup.is_some(),
        messages_sent: warmup.map_or(0, |warmup| warmup.sent() as u64),
        echoes_received: warmup.map_or(0, |warmup| warmup.echoed() as u64),
        warm_s: connections
            .warm_time
            .map(|time| super::round(time.as_secs_f64(), 3)),
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        server_rss_per_connection_bytes: rss_per_connection(rss_before, rss_after, counts.opened()),
        processes_failed: 0,
    });
    Ok(report)
}

/// The server's memory before any connection opens (`None` without `--server-pid`); a
/// server whose memory cannot be read fails the run.
pub(crate) fn rss_before_opening(settings: &Settings) -> Result<Option<u64>, Failure> {
    settings
        .args
        .server_pid
        .map(server_rss)
        .transpose()
        .map_err(Failure::new)
}

/// The server's memory once it settled ([`SETTLE`]) with every connection open; `None`
/// without `--server-pid`, on an interrupt, or if it cannot be read (the server may have
/// died of the load: said in a notice, and the rest is reported).
pub(crate) async fn rss_after_settling(
    settings: &Settings,
    interrupt: &mut Interrupt,
) -> Option<u64> {
    tokio::select! {
        () = tokio::time::sleep(SETTLE) => {
            match settings.args.server_pid.map(server_rss).transpose() {
                Ok(rss) => rss,
                Err(why) => {
                    notice(settings.display, &why);
                    None
                }
            }
        }
        () = interrupt.wait() => None,
    }
}

/// The resident memory of the server `pid` and its descendants, or why it cannot be
/// read.
fn server_rss(pid: u32) -> Result<u64, String> {
    os::tree_resident_bytes(pid).map_err(|error| {
        format!(
            "cannot read the memory of process {pid}: {}",
            io_message(&error)
        )
    })
}

/// The server's memory growth per connection opened, if both readings were had.
pub(crate) fn rss_per_connection(
    before: Option<u64>,
    after: Option<u64>,
    opened: usize,
) -> Option<f64> {
    before
        .zip(after)
        .map(|(before, after)| super::round((after as f64 - before as f64) / opened as f64, 1))
}

/// The status line while `held` connections are held, from `start` to `end`.
pub(crate) fn holding_status(held: usize, start: Instant, end: Instant) -> Status {
    Status {
        line: format!("holding {} idle connections", report::group(held as u64)),
        timeline: Some((start.elapsed(), end - start)),
    }
}

/// The connections of an idle run (or of a load process's share of one): opening, then
/// warmed if asked, then held by one task each until [`close`](Self::close).
#[derive(Debug)]
pub(crate) struct IdleConnections {
    /// Their statistics.
    pub(crate) stats: Arc<SharedStats>,
    /// How many opened and failed so far.
    pub(crate) counts: Arc<OpenCounts>,
    /// The one message each exchanges before the hold, if any.
    pub(crate) warmup: Option<Arc<Warmup>>,
    /// How long that exchange took, once done.
    pub(crate) warm_time: Option<Duration>,
    /// One task per connection: it opens, warms, holds and closes it.
    holders: JoinSet<()>,
    /// Connections that ended before the close.
    lost: Arc<AtomicUsize>,
    /// Turned true to close them all.
    stop: watch::Sender<bool>,
    /// Attempts to wait for.
    requested: usize,
}

impl IdleConnections {
    /// Starts opening `requested` connections (the load process's `share` of the run's,
    /// if given), each held once open.
    pub(crate) fn start(settings: &Settings, requested: usize, share: Option<Share>) -> Self {
        let args = &settings.args;
        let stats = SharedStats::new();
        let warmup = args
            .warms()
            .then(|| Arc::new(Warmup::new(settings.kind, args.size())));
        let (stop, stopped) = watch::channel(false);
        let lost = Arc::new(AtomicUsize::new(0));
        let plan = OpenPlan {
            target: Arc::clone(&settings.target),
            count: requested,
            deflate: settings.deflate(),
            timeout: HANDSHAKE_TIMEOUT,
            share,
        };
        let (holders, counts) = spawn_openers(plan, &stats, {
            let (stats, lost, warmup) = (Arc::clone(&stats), Arc::clone(&lost), warmup.clone());
            move |index, opened| {
                hold(
                    opened,
                    stopped.clone(),
                    stats.recorder(index),
                    Arc::clone(&lost),
                    CLOSE_TIMEOUT,
                    warmup.clone(),
                )
            }
        });
        Self {
            stats,
            counts,
            warmup,
            warm_time: None,
            holders,
            lost,
            stop,
            requested,
        }
    }

    /// Waits until every connection attempt ended; fails if `interrupt` came first (the
    /// connections are then dropped).
    pub(crate) async fn all_attempted(&mut self, interrupt: &mut Interrupt) -> Result<(), Failure> {
        let result = all_attempted(&self.counts, self.requested, interrupt).await;
        if result.is_err() {
            self.holders.abort_all();
        }
        result
    }

    /// With a warm-up, has every connection that opened exchange its message, showing
    /// progress, until all are done or `interrupt` comes.
    pub(crate) async fn warm(&mut self, settings: &Settings, interrupt: &mut Interrupt) {
        let Some(warmup) = &self.warmup else {
            return;
        };
        // Every connection that opened has a holder, which ends its exchange one way or
        // another (echo, timeout, failure): waiting for all of them is bounded.
        let connections = self.counts.opened();
        let started = Instant::now();
        warmup.start(connections);
        let progress = Progress::start(settings.display, {
            let warmup = Arc::clone(warmup);
            move || warmup.status(connections)
        });
        tokio::select! {
            () = warmup.all_ended(connections) => {}
            () = interrupt.wait() => {}
        }
        progress.finish();
        self.warm_time = Some(started.elapsed());
    }

    /// Connections open now.
    pub(crate) fn held(&self) -> usize {
        self.counts
            .opened()
            .saturating_sub(self.lost.load(Ordering::Relaxed))
    }

    /// Closes every connection (within [`CLOSE_TIMEOUT`], or until `interrupt`); returns
    /// how many were still open when told to.
    pub(crate) async fn close(&mut self, interrupt: &mut Interrupt) -> usize {
        let held = self.held();
        let _ = self.stop.send(true);
        join_until(
            &mut self.holders,
            Instant::now() + CLOSE_TIMEOUT + GRACE,
            interrupt,
        )
        .await;
        held
    }
}

/// The one message every connection exchanges before the hold, and how far they are.
#[derive(Debug)]
pub(crate) struct Warmup {
    /// Text or binary.
    kind: PayloadKind,
    /// Its size in bytes.
    size: usize,
    /// The message, encoded once per compression setting.
    encoded: EncodedCache,
    /// Turns to send: none until [`start`](Self::start), then one per message out, given
    /// back when its exchange ends.
    turns: Arc<Semaphore>,
    /// Messages sent.
    sent: AtomicUsize,
    /// Echoes received in time, of the right length.
    echoed: AtomicUsize,
    /// Connections done with their exchange, however it went.
    ended: AtomicUsize,
    /// Signalled at each of those.
    ended_one: Notify,
}

impl Warmup {
    /// A warm-up with one `size`-byte message of `kind` per connection, not started.
    pub(crate) fn new(kind: PayloadKind, size: usize) -> Self {
        Self {
            kind,
            size,
            encoded: EncodedCache::default(),
            turns: Arc::new(Semaphore::new(0)),
            sent: AtomicUsize::new(0),
            echoed: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            ended_one: Notify::new(),
        }
    }

    /// The message as a connection with `compression` sends it (compressed if so, as the
    /// echo load does).
    fn message_for(&self, compression: Option<&Compression>) -> Arc<EncodedMessage> {
        self.encoded.get(compression, || {
            let payload = payload_variant(self.kind, self.size, 0);
            let mask = OsRandomMaskKeys::default().next_key();
            EncodedMessage::new(self.kind, &[payload], compression, mask, 1)
        })
    }

    /// Lets the `connections` send, at most [`MAX_ECHOES_IN_FLIGHT`] messages at a time.
    pub(crate) fn start(&self, connections: usize) {
        self.turns
            .add_permits(connections.clamp(1, MAX_ECHOES_IN_FLIGHT));
    }

    /// Messages sent so far.
    pub(crate) fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Echoes received so far.
    pub(crate) fn echoed(&self) -> usize {
        self.echoed.load(Ordering::Relaxed)
    }

    /// Waits until `connections` connections are done with their exchange.
    pub(crate) async fn all_ended(&self, connections: usize) {
        loop {
            let notified = self.ended_one.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so that no end is missed between.
            notified.as_mut().enable();
            if self.ended.load(Ordering::Acquire) >= connections {
                return;
            }
            notified.await;
        }
    }

    /// The status line while the messages go round.
    fn status(&self, connections: usize) -> Status {
        Status {
            line: format!(
                "one message per connection: {} of {} echoed ({} sent)",
                report::group(self.echoed() as u64),
                report::group(connections as u64),
                report::group(self.sent() as u64)
            ),
            timeline: None,
        }
    }
}

/// A turn to send, as the semaphore hands it out.
type TurnFuture = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Where one connection is in its exchange.
enum Stage {
    /// Waiting for its turn to send.
    Waiting(TurnFuture),
    /// Sent; the echo is due by `deadline`. The turn goes back when the stage ends.
    InFlight {
        deadline: Pin<Box<Sleep>>,
        _turn: OwnedSemaphorePermit,
    },
    /// Echoed, timed out, or given up with the connection.
    Ended,
}

/// What the exchange needs done next.
enum Step {
    /// Send the message, holding this turn.
    Send(OwnedSemaphorePermit),
    /// The echo did not come in time.
    TimedOut,
}

/// One connection's exchange. Dropped before it ended (the connection failed or the run
/// was cut short), it still counts as ended, so that nobody waits for it.
struct Exchange {
    warmup: Arc<Warmup>,
    stage: Stage,
}

impl Exchange {
    fn new(warmup: Arc<Warmup>) -> Self {
        let turn = Arc::clone(&warmup.turns).acquire_owned();
        Self {
            warmup,
            stage: Stage::Waiting(Box::pin(turn)),
        }
    }

    /// Waits for the next step: the turn to send, or the echo's deadline; forever once
    /// ended.
    async fn next(&mut self) -> Step {
        match &mut self.stage {
            Stage::Waiting(turn) => match turn.as_mut().await {
                Ok(turn) => Step::Send(turn),
                // The semaphore is never closed.
                Err(_) => std::future::pending().await,
            },
            Stage::InFlight { deadline, .. } => {
                deadline.as_mut().await;
                Step::TimedOut
            }
            Stage::Ended => std::future::pending().await,
        }
    }

    /// Notes the message as sent, holding `turn` until its echo.
    fn sent(&mut self, turn: OwnedSemaphorePermit) {
        self.warmup.sent.fetch_add(1, Ordering::Relaxed);
        self.stage = Stage::InFlight {
            deadline: Box::pin(tokio::time::sleep(ECHO_TIMEOUT)),
            _turn: turn,
        };
    }

    /// Handles a message from the server: the echo if one is due (checked and counted),
    /// else ignored, as idle connections ignore messages.
    fn received(
        &mut self,
        echo: &Echo<'_>,
        compression: Option<&Compression>,
        recorder: &mut Recorder,
    ) {
        if let Stage::InFlight { .. } = self.stage {
            let right = check_echo(echo, self.warmup.size, compression, true, recorder);
            self.end(right);
        }
    }

    /// Ends the exchange (once), counting an echo if `echoed`; gives the turn back.
    fn end(&mut self, echoed: bool) {
        if let Stage::Ended = self.stage {
            return;
        }
        self.stage = Stage::Ended;
        if echoed {
            self.warmup.echoed.fetch_add(1, Ordering::Relaxed);
        }
        self.warmup.ended.fetch_add(1, Ordering::Release);
        self.warmup.ended_one.notify_waiters();
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// The next step of `exchange`, if any; never without one.
async fn next_step(exchange: &mut Option<Exchange>) -> Step {
    match exchange {
        Some(exchange) => exchange.next().await,
        None => std::future::pending().await,
    }
}

/// Why a holder woke up.
enum Wake {
    /// The socket is ready (or failed).
    Socket(std::io::Result<tokio::io::Ready>),
    /// The exchange has a step to take.
    Exchange(Step),
}

/// Holds an idle connection open, answering pings, until `stop` turns true; then closes
/// it with 1000. With a `warmup`, first sends its message when its turn comes and waits
/// for the echo (at most [`ECHO_TIMEOUT`]). `lost` counts connections that ended before
/// `stop`.
pub(crate) async fn hold(
    opened: Opened,
    mut stop: watch::Receiver<bool>,
    mut recorder: Recorder,
    lost: Arc<AtomicUsize>,
    close_timeout: Duration,
    warmup: Option<Arc<Warmup>>,
) {
    let compression = opened.compression.clone();
    let message = warmup
        .as_ref()
        .map(|warmup| warmup.message_for(compression.as_ref()));
    let mask = OsRandomMaskKeys::default().next_key();
    let mut session = Session::new(opened, message, mask);
    let mut exchange = warmup.map(Exchange::new);
    if exchange.is_some() {
        session.capture_next_compressed();
    }
    let failed = loop {
        if let Err(error) = session.write_pending() {
            break Some((ErrorKind::Io, crate::io_message(&error)));
        }
        let wake = tokio::select! {
            // An error means the sender is gone: the run is over too.
            _ = stop.wait_for(|stop| *stop) => break None,
            step = next_step(&mut exchange) => Wake::Exchange(step),
            ready = session.ready() => Wake::Socket(ready),
        };
        let ready = match wake {
            Wake::Exchange(step) => {
                if let Some(exchange) = &mut exchange {
                    match step {
                        Step::Send(turn) => {
                            session.queue_data(1);
                            exchange.sent(turn);
                        }
                        Step::TimedOut => {
                            let size = exchange.warmup.size;
                            recorder.shared().error(ErrorKind::EchoTimeout, || {
                                format!(
                                    "no echo of a {size}-byte message within {}",
                                    report::format_duration(ECHO_TIMEOUT)
                                )
                            });
                            exchange.end(false);
                        }
                    }
                }
                continue;
            }
            Wake::Socket(Ok(ready)) => ready,
            Wake::Socket(Err(error)) => break Some((ErrorKind::Io, crate::io_message(&error))),
        };
        if !ready.is_readable() {
            continue;
        }
        // Idle connections expect nothing but pings and the echo of their one message; a
        // server that sends other messages (a broadcast, a greeting) is not wrong, so
        // they are read and ignored.
        let outcome = session.read_available(&mut |echo| {
            if let Some(exchange) = &mut exchange {
                exchange.received(&echo, compression.as_ref(), &mut recorder);
            }
        });
        if let Some(failed) = session.stop_after(outcome, &recorder) {
            break Some(failed);
        }
    };
    // A connection that failed before its echo gives up its exchange now, not at the end
    // of the run.
    drop(exchange);
    if failed.is_some() {
        lost.fetch_add(1, Ordering::Relaxed);
    }
    session.end(failed, close_timeout, &mut recorder).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exchanges_end_once_however_they_end() {
        let warmup = Arc::new(Warmup::new(PayloadKind::Text, 10));
        let mut echoed = Exchange::new(Arc::clone(&warmup));
        let given_up = Exchange::new(Arc::clone(&warmup));
        let mut timed_out = Exchange::new(Arc::clone(&warmup));
        // No turn before the start.
        let early = tokio::time::timeout(Duration::from_millis(20), echoed.next()).await;
        assert!(early.is_err(), "a turn before the start");
        warmup.start(2);
        let Step::Send(turn) = echoed.next().await else {
            panic!("no turn to send");
        };
        echoed.sent(turn);
        let Step::Send(turn) = timed_out.next().await else {
            panic!("no turn to send");
        };
        timed_out.sent(turn);
        assert_eq!(warmup.turns.available_permits(), 0, "two messages out");
        echoed.end(true);
        echoed.end(true);
        assert_eq!(warmup.turns.available_permits(), 1, "a turn back");
        drop(given_up);
        timed_out.end(false);
        drop(timed_out);
        tokio::time::timeout(Duration::from_secs(1), warmup.all_ended(3))
            .await
            .expect("all three ended");
        assert_eq!(
            (warmup.sent(), warmup.echoed()),
            (2, 1),
            "each counted once"
        );
        assert_eq!(warmup.ended.load(Ordering::Relaxed), 3);
        assert_eq!(warmup.turns.available_permits(), 2);
    }
}
