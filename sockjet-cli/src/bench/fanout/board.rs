//! The messages in flight, as the publisher and the subscribers share them: one slot per
//! message with the count of subscribers that received it, and the 16-byte head every
//! message starts with (its sequence number and send time).
//!
//! A subscriber touches a message's slot once when it receives the message (a
//! compare-and-swap on a counter of its own cache line, no lock); everything else it
//! counts is its own until it flushes. The subscriber that completes a message (the last
//! one to receive it) notes the time and wakes the publisher: one wake-up per message,
//! not per delivery.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

/// Length of a message's head: a sequence number and a send time, 8 characters each.
pub(crate) const HEAD_LEN: usize = 16;

/// Bits of a slot's state that count receivers; the rest tag the message.
const COUNT_BITS: u32 = 24;

/// Most subscribers a run may have: what a slot's count holds.
pub(crate) const MAX_SUBSCRIBERS: usize = (1 << COUNT_BITS) - 1;

/// What the head's two numbers hold: 48 bits each (8 characters of 6 bits).
const HEAD_NUMBER_BITS: u32 = 48;

/// The 64 characters of the head (base64url's alphabet): valid UTF-8, so that text
/// messages can carry it, and 6 bits each.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The value of each character of [`ALPHABET`], `0xFF` for the others.
const DECODE: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut index = 0;
    while index < ALPHABET.len() {
        table[ALPHABET[index] as usize] = index as u8;
        index += 1;
    }
    table
};

/// Writes `seq` and `sent_ns` (each below 2^48) as the 16-character head.
pub(crate) fn encode_head(seq: u64, sent_ns: u64, head: &mut [u8; HEAD_LEN]) {
    for (number, out) in [seq, sent_ns].into_iter().zip(head.chunks_exact_mut(8)) {
        for (position, byte) in out.iter_mut().enumerate() {
            let shift = 6 * (7 - position);
            *byte = ALPHABET[((number >> shift) & 63) as usize];
        }
    }
}

/// Reads a message's sequence number and send time back from its head; `None` if it is
/// not one.
pub(crate) fn decode_head(head: &[u8]) -> Option<(u64, u64)> {
    let head: &[u8; HEAD_LEN] = head.try_into().ok()?;
    let mut numbers = [0u64; 2];
    for (number, chars) in numbers.iter_mut().zip(head.chunks_exact(8)) {
        for &char in chars {
            let value = DECODE[char as usize];
            if value == 0xFF {
                return None;
            }
            *number = (*number << 6) | u64::from(value);
        }
    }
    Some((numbers[0], numbers[1]))
}

/// One message in flight.
///
/// `state` packs a tag of the message (its sequence number plus one, cut to 40 bits; 0:
/// free) and the number of subscribers that received it. A slot is reused for later
/// messages: a subscriber that finds another tag there received its message after the
/// publisher gave up on it (late).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    state: AtomicU64,
    /// When the last subscriber received it, in ns since the board's epoch (0: not yet).
    completed_ns: AtomicU64,
}

/// The tag of message `seq` in a slot's state, with a count of 0.
fn tag(seq: u64) -> u64 {
    seq.wrapping_add(1) << COUNT_BITS
}

/// The tag part of a slot's state.
fn tag_of(state: u64) -> u64 {
    state >> COUNT_BITS
}

/// The count part of a slot's state.
fn count_of(state: u64) -> u64 {
    state & ((1 << COUNT_BITS) - 1)
}

/// What a subscriber's receipt did.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Receipt {
    /// Counted; more subscribers have yet to receive the message.
    Counted,
    /// Counted, and it was the last subscriber still due to receive it.
    Completed,
    /// The publisher had already given up on the message (after its timeout).
    Late,
}

/// When the run measures: set once, when every subscriber has received a message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    /// End of the subscription check, start of the warmup.
    pub(crate) start: Instant,
    /// Start of the measurement window.
    pub(crate) measure_start: Instant,
    /// End of the measurement window.
    pub(crate) end: Instant,
}

impl Schedule {
    /// Whether `at` is in the measurement window.
    pub(crate) fn measures(&self, at: Instant) -> bool {
        at >= self.measure_start && at < self.end
    }
}

/// The messages in flight, shared by the publisher and the subscribers.
#[derive(Debug)]
pub(crate) struct Board {
    slots: Box<[Slot]>,
    /// Send times in heads count from here.
    epoch: Instant,
    /// Subscribers still reading: a message is complete when this many received it.
    live: AtomicUsize,
    /// Wakes the publisher when a message completes or a subscriber leaves.
    changed: Notify,
    /// Set when the subscription check passed.
    schedule: OnceLock<Schedule>,
}

impl Board {
    /// A board for at least `in_flight` messages at once, with `subscribers` subscribers.
    pub(crate) fn new(in_flight: usize, subscribers: usize) -> Self {
        let capacity = in_flight.max(1).next_power_of_two();
        Self {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            epoch: Instant::now(),
            live: AtomicUsize::new(subscribers),
            changed: Notify::new(),
            schedule: OnceLock::new(),
        }
    }

    /// Messages the board holds at once.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, seq: u64) -> &Slot {
        // The capacity is a power of two.
        &self.slots[(seq as usize) & (self.slots.len() - 1)]
    }

    /// Nanoseconds from the epoch to `at` (0 before it), as heads carry them.
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX) & ((1 << HEAD_NUMBER_BITS) - 1)
    }

    /// The instant `nanos` after the epoch.
    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Subscribers still reading.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// A subscriber stopped reading: messages no longer wait for it.
    pub(crate) fn subscriber_left(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// Waits until a message completes or a subscriber leaves (a wake-up given while
    /// nobody waited is kept for the next wait).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The measurement schedule, once the subscription check passed.
    pub(crate) fn schedule(&self) -> Option<&Schedule> {
        self.schedule.get()
    }

    /// Sets the measurement schedule (once; later calls change nothing).
    pub(crate) fn set_schedule(&self, schedule: Schedule) {
        let _ = self.schedule.set(schedule);
    }

    /// Opens the slot of message `seq`, which must not be in flight any more (see
    /// [`occupied`](Self::occupied)).
    pub(crate) fn open(&self, seq: u64) {
        let slot = self.slot(seq);
        slot.completed_ns.store(0, Ordering::Relaxed);
        slot.state.store(tag(seq), Ordering::Release);
    }

    /// Whether the slot that message `seq` would use is still taken by another one.
    pub(crate) fn occupied(&self, seq: u64) -> bool {
        self.slot(seq).state.load(Ordering::Acquire) != 0
    }

    /// Counts a subscriber's receipt of message `seq` at `now`.
    pub(crate) fn receive(&self, seq: u64, now: Instant) -> Receipt {
        let slot = self.slot(seq);
        let tag = tag_of(tag(seq));
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if state == 0 || tag_of(state) != tag {
                return Receipt::Late;
            }
            match slot.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        let count = count_of(state) + 1;
        if count as usize >= self.live() {
            // Only the first to see it complete notes the time.
            let _ = slot.completed_ns.compare_exchange(
                0,
                self.nanos_at(now).max(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            self.changed.notify_one();
            return Receipt::Completed;
        }
        Receipt::Counted
    }

    /// How many subscribers received message `seq` so far, and when the last one due did
    /// (if all did).
    pub(crate) fn progress(&self, seq: u64) -> (usize, Option<Instant>) {
        let slot = self.slot(seq);
        let state = slot.state.load(Ordering::Acquire);
        if state == 0 || tag_of(state) != tag_of(tag(seq)) {
            return (0, None);
        }
        let count = count_of(state) as usize;
        let completed = match slot.completed_ns.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.instant_at(nanos)),
        };
        (count, completed)
    }

    /// Frees the slot of message `seq`: receipts from then on are late.
    pub(crate) fn close(&self, seq: u64) {
        // A subscriber's compare-and-swap racing with this fails, and it then finds the
        // slot free: late.
        self.slot(seq).state.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_are_ascii() {
        for (seq, nanos) in [
            (0, 0),
            (1, 2),
            (123_456_789, 987_654_321_000),
            ((1 << 48) - 1, (1 << 48) - 1),
        ] {
            let mut head = [0; HEAD_LEN];
            encode_head(seq, nanos, &mut head);
            assert!(head.is_ascii(), "{head:?}");
            assert_eq!(decode_head(&head), Some((seq, nanos)));
        }
        assert_eq!(decode_head(b"short"), None);
        assert_eq!(decode_head(b"AAAAAAAA AAAAAAA"), None);
        assert_eq!(decode_head(&[0xFF; HEAD_LEN]), None);
    }

    #[test]
    fn a_message_completes_with_its_last_subscriber() {
        let board = Board::new(3, 3);
        assert_eq!(board.capacity(), 4);
        let now = Instant::now();
        board.open(5);
        assert!(board.occupied(5) && board.occupied(9) && !board.occupied(6));
        assert_eq!(board.receive(5, now), Receipt::Counted);
        assert_eq!(board.receive(5, now), Receipt::Counted);
        assert_eq!(board.progress(5), (2, None));
        assert_eq!(board.receive(5, now), Receipt::Completed);
        let (count, completed) = board.progress(5);
        assert_eq!(count, 3);
        assert!(completed.is_some());
        // Another message in the same slot: receipts of the old one are late.
        board.close(5);
        assert_eq!(board.receive(5, now), Receipt::Late);
        board.open(9);
        assert_eq!(board.receive(5, now), Receipt::Late);
        assert_eq!(board.progress(5), (0, None));
        assert_eq!(board.progress(9), (0, None));
        // A subscriber leaving lowers the bar.
        assert_eq!(board.receive(9, now), Receipt::Counted);
        board.subscriber_left();
        assert_eq!(board.receive(9, now), Receipt::Completed);
    }
}
