//! Waiting a little for more completions while the worker is busy.
//!
//! A worker that wakes for every completion answers each arrival at once, which is what
//! a lightly loaded server should do. Under load the same habit costs: every pass pays a
//! wakeup and a system call for a handful of completions, and each connection's echoes
//! leave in as many small TCP segments as passes saw its messages, which the kernel then
//! carries one by one on both ends. Once the worker has been busy over half of the time
//! (averaged over its last few windows), its waits ask the kernel (`min_wait_usec`, Linux
//! 6.12) to gather completions for up to a few tens of microseconds before returning; the
//! latency this adds is small beside the queueing a busy server has anyway. When the load
//! falls it answers at once again. The same idea as a network card's adaptive interrupt
//! moderation.
//!
//! Measured on 100 connections x 16 B with `sockjet bench` (2-core VM, server and load
//! tool on a core each, server CPU per message): 16 in flight 0.65 -> 0.39-0.50 us and 1
//! in flight 5.3 -> 4.6 us, at as many messages per second or more. At 20k and 50k
//! messages a second open loop (the server under 30% busy) waiting always cost 20-40%
//! more CPU per message, a timer armed per wait for little to gather: there it stays
//! off. 10 connections echoing 16 KiB lost half their throughput to it, so it also needs
//! connections enough to gather from (`MIN_ACTIVE`); a storm of short connections cost
//! 5% more CPU per connect cycle with it, so only connections that keep receiving count
//! (`SETTLED_RECEIVES`), over an epoch long enough for clients that answer in bursts
//! (`EPOCH_WINDOWS`): Node's `ws` client with 16 in flight, 2.2 times cheaper per message
//! with gathering than without.

use std::time::{Duration, Instant};

/// How long a window of passes is before the worker's load is judged again.
const WINDOW: Duration = Duration::from_millis(2);

/// Busy above this share of a window: gather completions.
const BUSY_ON: f64 = 0.5;

/// Gather only while at least this many settled connections received in the current
/// epoch or the one before (`Batching::saw_receive`): what a wait gathers is other
/// connections' arrivals, and with a few connections there are few to gather (10
/// connections echoing 16 KiB lost half their throughput to the waits). Large receives,
/// straight into a connection's buffer, are not counted.
const MIN_ACTIVE: usize = 32;

/// Windows in an epoch, the span over which active connections are counted: longer than
/// a window, since a client that keeps many messages in flight answers them in bursts
/// (Node's `ws` with 16 in flight: each connection received about once per 12 ms, so
/// hardly any received in two 2-ms windows in a row, and gathering stayed off).
const EPOCH_WINDOWS: u32 = 16;

/// Receives after which a connection counts as active: a storm of short connections (an
/// opening handshake and a closing one each, two receives) never does. Gathering for
/// such a storm cost 5% more CPU per connect cycle.
const SETTLED_RECEIVES: u8 = 3;

/// The weight of the last window in the busy share judged (an exponential average, over
/// about four windows): a load that arrives in bursts, as from an open-loop client that
/// sends on a timer, makes single windows busy; judged window by window, 40k messages a
/// second open loop switched gathering on and cost 7-19% more CPU per message.
const BUSY_WEIGHT: f64 = 0.25;

/// Busy below this share of a window: answer at once again (below `BUSY_ON`, so that a
/// load near the threshold does not switch every window).
const BUSY_OFF: f64 = 0.3;

/// Whether waits should gather completions, from how busy the worker has been.
#[derive(Debug)]
pub(crate) struct Batching {
    /// How long a wait gathers; `None`: never (switched off, or the kernel can't).
    min_wait: Option<u32>,
    /// How many completions end the gathering early.
    enough: usize,
    window_start: Instant,
    /// The thread's CPU time at `window_start`.
    cpu_at_start: Duration,
    /// Windows judged so far in the current epoch.
    windows_in_epoch: u32,
    /// The epoch's number, how many settled connections received in it so far, and how
    /// many did in the epoch before.
    epoch: u32,
    active: usize,
    active_before: usize,
    /// The thread's busy share, averaged over the last few windows (`BUSY_WEIGHT`).
    busy: f64,
    on: bool,
}

/// A connection's record for [`Batching::saw_receive`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReceiveRecord {
    /// The last epoch the connection was counted in (0: never).
    epoch: u32,
    /// Its receives so far, up to `SETTLED_RECEIVES`.
    receives: u8,
}

impl Batching {
    /// `min_wait`: the longest a busy worker's wait gathers completions; `None` or zero
    /// turns gathering off.
    pub(crate) fn new(min_wait: Option<Duration>, enough: usize, now: Instant) -> Self {
        let min_wait = min_wait
            .map(|wait| u32::try_from(wait.as_micros()).unwrap_or(u32::MAX))
            .filter(|&micros| micros > 0);
        Self {
            min_wait,
            enough: enough.max(1),
            window_start: now,
            cpu_at_start: thread_cpu_time(),
            windows_in_epoch: 0,
            epoch: 1,
            active: 0,
            active_before: 0,
            busy: 0.0,
            on: false,
        }
    }

    /// Called after each wait: once a window has passed, judges the load from the CPU
    /// time the thread used in it. Busy time is CPU time, not time outside the waits,
    /// since most of a busy worker's work (sending, receiving) is done by the kernel
    /// inside them.
    pub(crate) fn observe(&mut self, now: Instant) {
        if self.min_wait.is_none() {
            return;
        }
        let window = now.saturating_duration_since(self.window_start);
        if window < WINDOW {
            return;
        }
        let cpu = thread_cpu_time();
        self.judge(cpu.saturating_sub(self.cpu_at_start), window);
        self.window_start = now;
        self.cpu_at_start = cpu;
    }

    /// Notes a connection's receive. A connection counts once per epoch, and only once
    /// settled (`SETTLED_RECEIVES`), so that a storm of short connections is not gathered
    /// for.
    pub(crate) fn saw_receive(&mut self, record: &mut ReceiveRecord) {
        if record.receives < SETTLED_RECEIVES {
            record.receives += 1;
        }
        if record.receives == SETTLED_RECEIVES && record.epoch != self.epoch {
            record.epoch = self.epoch;
            self.active += 1;
        }
    }

    /// Ends a window in which the thread was busy `busy` of `window`.
    fn judge(&mut self, busy: Duration, window: Duration) {
        let share = busy.as_secs_f64() / window.as_secs_f64();
        self.busy = BUSY_WEIGHT * share + (1.0 - BUSY_WEIGHT) * self.busy;
        let active = self.active.max(self.active_before);
        self.windows_in_epoch += 1;
        if self.windows_in_epoch == EPOCH_WINDOWS {
            self.windows_in_epoch = 0;
            self.active_before = std::mem::take(&mut self.active);
            self.epoch = next(self.epoch);
        }
        if active < MIN_ACTIVE {
            self.on = false;
            return;
        }
        if self.busy >= BUSY_ON {
            self.on = true;
        } else if self.busy < BUSY_OFF {
            self.on = false;
        }
    }

    /// What the next wait should ask for: `(completions, min_wait_usec)`, or `None` to
    /// return on the first completion.
    pub(crate) fn gather(&self) -> Option<(usize, u32)> {
        match self.min_wait {
            Some(micros) if self.on => Some((self.enough, micros)),
            _ => None,
        }
    }
}

/// Epoch numbers run from 1 and skip 0, a new connection's record, so that a connection
/// is counted in the first epoch it is settled in.
fn next(epoch: u32) -> u32 {
    epoch.checked_add(1).unwrap_or(1)
}

/// The CPU time the calling thread has used (one system call: read once a window).
fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec we own; CLOCK_THREAD_CPUTIME_ID always exists
    // on Linux.
    #[allow(unsafe_code)]
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if result != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window in which each of `connections` received `receives` times and the thread
    /// was busy `busy_share` of the time.
    fn window(
        batching: &mut Batching,
        connections: &mut [ReceiveRecord],
        receives: usize,
        busy_share: f64,
    ) {
        for _ in 0..receives {
            for record in connections.iter_mut() {
                batching.saw_receive(record);
            }
        }
        batching.judge(WINDOW.mul_f64(busy_share), WINDOW);
    }

    fn gathering() -> Batching {
        Batching::new(Some(Duration::from_micros(50)), 64, Instant::now())
    }

    #[test]
    fn gathers_only_while_busy_with_hysteresis() {
        let mut batching = gathering();
        let connections = &mut [ReceiveRecord::default(); 100];
        assert_eq!(batching.gather(), None);
        // The busy share is averaged: two busy windows are not enough, three are.
        window(&mut batching, connections, 3, 0.9);
        window(&mut batching, connections, 1, 0.9);
        assert_eq!(batching.gather(), None);
        window(&mut batching, connections, 1, 0.9);
        assert_eq!(batching.gather(), Some((64, 50)));
        // Between the thresholds: stays as it was.
        for _ in 0..20 {
            window(&mut batching, connections, 1, 0.4);
            assert_eq!(batching.gather(), Some((64, 50)));
        }
        for _ in 0..5 {
            window(&mut batching, connections, 1, 0.1);
        }
        assert_eq!(batching.gather(), None);
        for _ in 0..20 {
            window(&mut batching, connections, 1, 0.4);
            assert_eq!(batching.gather(), None);
        }
    }

    #[test]
    fn single_busy_windows_do_not_switch_it_on() {
        let mut batching = gathering();
        let connections = &mut [ReceiveRecord::default(); 100];
        for _ in 0..40 {
            // An open-loop client's burst makes one window busy now and then.
            window(&mut batching, connections, 3, 1.0);
            assert_eq!(batching.gather(), None);
            for _ in 0..3 {
                window(&mut batching, connections, 3, 0.2);
            }
        }
    }

    #[test]
    fn few_connections_never_gather() {
        let mut batching = gathering();
        let connections = &mut [ReceiveRecord::default(); MIN_ACTIVE];
        // Busy all the time, but with fewer connections receiving than MIN_ACTIVE: off.
        for _ in 0..2 * EPOCH_WINDOWS {
            window(&mut batching, &mut connections[..MIN_ACTIVE - 1], 3, 1.0);
            assert_eq!(batching.gather(), None);
        }
        // Once MIN_ACTIVE of them receive: on.
        window(&mut batching, connections, 3, 1.0);
        assert!(batching.gather().is_some());
    }

    #[test]
    fn connections_that_receive_in_bursts_count_over_an_epoch() {
        // 100 connections, each receiving in one window of every 8 (a client answering
        // each connection's messages in flight in one burst): 12 or 13 a window.
        let mut batching = gathering();
        let connections = &mut [ReceiveRecord::default(); 100];
        for round in 0..4 * EPOCH_WINDOWS as usize {
            let turn = round % 8;
            for (index, record) in connections.iter_mut().enumerate() {
                if index % 8 == turn {
                    for _ in 0..3 {
                        batching.saw_receive(record);
                    }
                }
            }
            batching.judge(WINDOW.mul_f64(0.9), WINDOW);
        }
        assert!(batching.gather().is_some());
    }

    #[test]
    fn short_lived_connections_never_gather() {
        // A storm of connections, each with an opening and a closing handshake.
        let mut batching = gathering();
        for _ in 0..4 * EPOCH_WINDOWS {
            window(&mut batching, &mut [ReceiveRecord::default(); 100], 2, 1.0);
            assert_eq!(batching.gather(), None);
        }
    }

    #[test]
    fn epoch_numbers_wrap_past_zero() {
        assert_eq!(next(u32::MAX), 1);
        assert_eq!(next(7), 8);
    }

    #[test]
    fn never_gathers_when_switched_off() {
        for min_wait in [None, Some(Duration::ZERO)] {
            let mut batching = Batching::new(min_wait, 64, Instant::now());
            let connections = &mut [ReceiveRecord::default(); 100];
            for _ in 0..EPOCH_WINDOWS {
                window(&mut batching, connections, 3, 1.0);
            }
            assert_eq!(batching.gather(), None);
        }
    }

    #[test]
    fn a_spinning_thread_is_judged_busy() {
        // Bounded at 5 s: on a machine this busy elsewhere some window still gets most of
        // a core.
        let start = Instant::now();
        let mut batching = Batching::new(Some(Duration::from_micros(50)), 64, start);
        let connections = &mut [ReceiveRecord::default(); 100];
        let mut now = start;
        while batching.gather().is_none() && now.duration_since(start) < Duration::from_secs(5) {
            for record in connections.iter_mut() {
                batching.saw_receive(record);
            }
            now = std::hint::black_box(Instant::now());
            batching.observe(now);
        }
        assert_eq!(batching.gather(), Some((64, 50)));
    }
}
