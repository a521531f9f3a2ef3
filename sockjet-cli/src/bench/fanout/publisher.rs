//! The publisher: sends numbered, timed messages, and keeps track of each one's fan-out
//! until every subscriber has it or its timeout passes.
//!
//! It first checks that every subscriber receives broadcasts (a server may add a
//! connection to its list of receivers some time after the handshake): it sends a probe,
//! and another each [`PROBE_INTERVAL`] (at most [`MAX_PROBES`] out at once) until one has
//! reached them all. A probe is not given up on for being slow: a server loaded by other
//! work may take longer than the interval to reach 10,000 subscribers. Only then do the
//! warmup and the measurement start; probes still out then are left to finish, uncounted.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use sockjet_proto::{MaskKeys as _, OsRandomMaskKeys, frame::OpCode};
use tokio::sync::{oneshot, watch};

use super::board::{Board, HEAD_LEN, Schedule, encode_head};
use crate::bench::{
    dial::Opened,
    frames::{PayloadKind, encode_frame},
    session::Session,
    stats::{ErrorKind, Recorder, micros, new_histogram},
};

/// Time between two probes while none has reached every subscriber.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Most probes out at once.
pub(crate) const MAX_PROBES: usize = 8;

/// Longest wait for every subscriber to receive a probe.
pub(crate) const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the publisher does.
#[derive(Clone, Debug)]
pub(crate) struct PublishPlan {
    /// Text or binary messages.
    pub(crate) kind: PayloadKind,
    /// Every message's payload: its first [`HEAD_LEN`] bytes are replaced by each
    /// message's head.
    pub(crate) payload: Vec<u8>,
    /// Closed loop: messages in flight. Open loop: `None`.
    pub(crate) depth: Option<usize>,
    /// Open loop: time between two messages.
    pub(crate) interval: Option<Duration>,
    /// How long a message may take to reach every subscriber; then the subscribers that
    /// did not get it count as missing deliveries.
    pub(crate) timeout: Duration,
    /// Warmup, once every subscriber receives broadcasts.
    pub(crate) warmup: Duration,
    /// The measurement window's length.
    pub(crate) duration: Duration,
    /// How long the closing handshake may take.
    pub(crate) close_timeout: Duration,
}

/// What the publisher saw, for the report. Counts are of the measurement window.
#[derive(Debug)]
pub(crate) struct Published {
    /// Messages sent.
    pub(crate) sent: u64,
    /// Messages that reached every subscriber.
    pub(crate) completed: u64,
    /// Messages given up on after the timeout.
    pub(crate) timed_out: u64,
    /// Deliveries missing from those: subscribers that had not received them.
    pub(crate) missing: u64,
    /// Time from sending a message to its receipt by the last subscriber, in µs, for the
    /// messages that reached every subscriber.
    pub(crate) completion: Histogram<u64>,
    /// Probes sent before every subscriber received one.
    pub(crate) probes: u64,
    /// Time from the first probe to the one that reached every subscriber.
    pub(crate) subscribe_time: Option<Duration>,
    /// The most subscribers a probe reached (all of them, once the check passed).
    pub(crate) best_probe: usize,
}

/// A message in flight.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    seq: u64,
    /// When it was sent (open loop: when it was due).
    sent: Instant,
    /// A probe of the subscription check, never counted.
    probe: bool,
}

/// Where the publisher is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Sending probes, since `since`, until one reaches every subscriber.
    Subscribing { since: Instant },
    /// Warmup and measurement.
    Running,
}

/// Why the main loop woke up.
enum Wake {
    Stop,
    Changed,
    Deadline,
    SendDue,
    Socket(std::io::Result<tokio::io::Ready>),
}

/// The publisher's state.
struct Publisher {
    session: Session,
    recorder: Recorder,
    board: Arc<Board>,
    plan: PublishPlan,
    mask: [u8; 4],
    opcode: OpCode,
    payload: Vec<u8>,
    next_seq: u64,
    in_flight: VecDeque<InFlight>,
    /// Messages in flight that are not probes.
    messages_in_flight: usize,
    phase: Phase,
    published: Published,
}

/// Publishes on `opened` until `stop`; says on `subscribed` whether every subscriber
/// received a probe (and when not, why), and sends what it saw on `report` before closing
/// its connection. Socket errors are counted in `recorder`.
pub(crate) async fn publish(
    opened: Opened,
    board: Arc<Board>,
    plan: PublishPlan,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
    subscribed: oneshot::Sender<Result<(), String>>,
    report: oneshot::Sender<Published>,
) {
    let mask = OsRandomMaskKeys::default().next_key();
    let session = Session::new(opened, None, mask);
    let opcode = match plan.kind {
        PayloadKind::Text => OpCode::Text,
        PayloadKind::Binary => OpCode::Binary,
    };
    let mut payload = plan.payload.clone();
    payload.resize(payload.len().max(HEAD_LEN), b'0');
    let close_timeout = plan.close_timeout;
    let mut publisher = Publisher {
        session,
        recorder,
        board,
        mask,
        opcode,
        payload,
        next_seq: 0,
        in_flight: VecDeque::new(),
        messages_in_flight: 0,
        phase: Phase::Subscribing {
            since: Instant::now(),
        },
        published: Published {
            sent: 0,
            completed: 0,
            timed_out: 0,
            missing: 0,
            completion: new_histogram(),
            probes: 0,
            subscribe_time: None,
            best_probe: 0,
        },
        plan,
    };
    let mut subscribed = Some(subscribed);
    let failed = publisher.run(&mut stop, &mut subscribed).await;
    if let (Some(subscribed), Some((_, why))) = (subscribed.take(), &failed) {
        let _ = subscribed.send(Err(format!("the publisher's connection failed: {why}")));
    }
    let Publisher {
        session,
        published,
        mut recorder,
        ..
    } = publisher;
    let _ = report.send(published);
    session.end(failed, close_timeout, &mut recorder).await;
}

impl Publisher {
    /// The main loop, until `stop` or a failure (returned).
    async fn run(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        subscribed: &mut Option<oneshot::Sender<Result<(), String>>>,
    ) -> Option<(ErrorKind, String)> {
        let stopping = async {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopping);
        let deadline = tokio::time::sleep_until(Instant::now().into());
        let send_due = tokio::time::sleep_until(Instant::now().into());
        tokio::pin!(deadline, send_due);
        // The next probe (while subscribing) or open-loop message due.
        let mut next_send = Some(Instant::now());
        loop {
            if let Err(error) = self.session.write_pending() {
                return Some((ErrorKind::Io, crate::io_message(&error)));
            }
            if let Some(oldest) = self.in_flight.front() {
                deadline
                    .as_mut()
                    .reset((oldest.sent + self.timeout(oldest)).into());
            }
            if let Some(at) = next_send {
                send_due.as_mut().reset(at.into());
            }
            let wake = tokio::select! {
                biased;
                () = &mut stopping => Wake::Stop,
                () = self.board.changed() => Wake::Changed,
                () = &mut deadline, if !self.in_flight.is_empty() => Wake::Deadline,
                () = &mut send_due, if next_send.is_some() => Wake::SendDue,
                ready = self.session.ready() => Wake::Socket(ready),
            };
            let now = Instant::now();
            match wake {
                Wake::Stop => return None,
                Wake::Changed | Wake::Deadline => {}
                Wake::SendDue => match (self.phase, self.plan.interval, next_send) {
                    (Phase::Subscribing { .. }, _, _) => {
                        if self.in_flight.len() < MAX_PROBES {
                            self.send(now);
                        }
                        next_send = Some(now + PROBE_INTERVAL);
                    }
                    (Phase::Running, Some(interval), Some(mut at)) => {
                        // Catch up with every send due by now, each timed from its own
                        // slot.
                        while at <= now {
                            self.send(at);
                            at += interval;
                        }
                        next_send = Some(at);
                    }
                    (Phase::Running, _, _) => next_send = None,
                },
                Wake::Socket(Err(error)) => {
                    return Some((ErrorKind::Io, crate::io_message(&error)));
                }
                Wake::Socket(Ok(ready)) => {
                    if ready.is_readable() {
                        // Its own messages come back too: read and let go.
                        let outcome = self.session.read_available(&mut |_| {});
                        if let Some(failed) = self.session.stop_after(outcome, &self.recorder) {
                            return Some(failed);
                        }
                    }
                }
            }
            self.retire(now);
            if self.board.live() == 0 {
                return Some((
                    ErrorKind::ClosedByServer,
                    "every subscriber's connection ended".to_owned(),
                ));
            }
            match self.phase {
                Phase::Subscribing { since } => {
                    if self.board.schedule().is_some() {
                        // A probe reached everyone: the warmup starts.
                        self.phase = Phase::Running;
                        self.published.subscribe_time = Some(now - since);
                        if let Some(subscribed) = subscribed.take() {
                            let _ = subscribed.send(Ok(()));
                        }
                        match self.plan.interval {
                            Some(_) => next_send = Some(now),
                            None => {
                                next_send = None;
                                self.fill(now);
                            }
                        }
                    } else if now - since > SUBSCRIBE_TIMEOUT {
                        let best = self
                            .in_flight
                            .iter()
                            .map(|probe| self.board.progress(probe.seq).0)
                            .max()
                            .unwrap_or(0)
                            .max(self.published.best_probe);
                        let message = format!(
                            "after {} s of broadcasts, at most {best} of {} subscribers \
                             received one: is the server broadcasting every message to \
                             every connection?",
                            SUBSCRIBE_TIMEOUT.as_secs(),
                            self.board.live()
                        );
                        if let Some(subscribed) = subscribed.take() {
                            let _ = subscribed.send(Err(message));
                        }
                        return None;
                    }
                }
                Phase::Running => {
                    if self.plan.interval.is_none() {
                        self.fill(now);
                    }
                }
            }
        }
    }

    /// How long `message` may take: a probe, as long as the subscription check (plus the
    /// timeout, for one still out when the check passed).
    fn timeout(&self, message: &InFlight) -> Duration {
        match message.probe {
            true => SUBSCRIBE_TIMEOUT + self.plan.timeout,
            false => self.plan.timeout,
        }
    }

    /// Closed loop: sends messages until `depth` are in flight.
    fn fill(&mut self, now: Instant) {
        let depth = self.plan.depth.unwrap_or(1);
        while self.messages_in_flight < depth {
            self.send(now);
        }
    }

    /// Sends the next message, timed from `sent`.
    fn send(&mut self, sent: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Open loop: a message still in flight after as many others as the board holds
        // gives up its slot, as if its timeout had passed.
        while self.board.occupied(seq) {
            match self.in_flight.pop_front() {
                Some(oldest) => self.end(oldest, sent, false),
                None => break,
            }
        }
        self.board.open(seq);
        let mut head = [0; HEAD_LEN];
        encode_head(seq, self.board.nanos_at(sent), &mut head);
        self.payload[..HEAD_LEN].copy_from_slice(&head);
        let frame = encode_frame(self.opcode, false, &self.payload, self.mask);
        self.session.queue_frame(&frame);
        let probe = matches!(self.phase, Phase::Subscribing { .. });
        self.in_flight.push_back(InFlight { seq, sent, probe });
        if probe {
            self.published.probes += 1;
        } else {
            self.messages_in_flight += 1;
        }
        if self.board.schedule().is_some_and(|s| s.measures(sent)) {
            self.published.sent += 1;
        }
    }

    /// Ends the fan-out of every message that reached every subscriber, or whose timeout
    /// passed.
    fn retire(&mut self, now: Instant) {
        let live = self.board.live();
        let mut index = 0;
        while index < self.in_flight.len() {
            let message = self.in_flight[index];
            let (count, completed) = self.board.progress(message.seq);
            if completed.is_some() || count >= live {
                self.in_flight.remove(index);
                self.end(message, completed.unwrap_or(now), true);
            } else if now >= message.sent + self.timeout(&message) {
                self.in_flight.remove(index);
                self.end(message, now, false);
            } else {
                index += 1;
            }
        }
    }

    /// Ends `message`'s fan-out at `at`: `complete` if every subscriber received it.
    fn end(&mut self, message: InFlight, at: Instant, complete: bool) {
        let (count, _) = self.board.progress(message.seq);
        self.board.close(message.seq);
        if message.probe {
            self.published.best_probe = self.published.best_probe.max(count);
            if complete {
                // The first probe to reach everybody starts the clock (later ones change
                // nothing).
                self.board.set_schedule(Schedule {
                    start: at,
                    measure_start: at + self.plan.warmup,
                    end: at + self.plan.warmup + self.plan.duration,
                });
            }
            return;
        }
        self.messages_in_flight -= 1;
        if !self.board.schedule().is_some_and(|s| s.measures(at)) {
            return;
        }
        if complete {
            self.published.completed += 1;
            let _ = self
                .published
                .completion
                .record(micros(at.saturating_duration_since(message.sent)));
        } else {
            self.published.timed_out += 1;
            self.published.missing += self.board.live().saturating_sub(count) as u64;
        }
    }
}
