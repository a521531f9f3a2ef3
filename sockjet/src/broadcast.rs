//! [`broadcast`] and [`Broadcast`]: one message to many connections, encoded once, with a
//! bounded queue per receiver so that a slow one never holds up the sender or the others.

use std::{
    cell::RefCell,
    sync::{Arc, Mutex},
};

use sockjet_proto::{CloseCode, Message, PreparedMessage, State};

use crate::{
    WeakSender,
    connection::{Inner, Shared},
};

/// What a broadcast does with a receiver whose outgoing queue is full: more than the
/// connection's [`write_limit`](crate::ConnectionConfig::write_limit) bytes already
/// waiting to be written because the peer does not read fast enough.
///
/// Control frames (pings, pongs, the close frame) are never dropped; only broadcast
/// messages are.
///
/// ```
/// use sockjet::{CloseCode, SlowReceiver};
/// let policy = SlowReceiver::Close(CloseCode::TRY_AGAIN_LATER);
/// assert_ne!(policy, SlowReceiver::default());
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum SlowReceiver {
    /// Skip the message for this receiver and count it
    /// ([`Sender::dropped_messages`](crate::Sender::dropped_messages)). The default, as
    /// Python `websockets.broadcast` skips connections that are not ready to write.
    #[default]
    Drop,
    /// Close the receiver's connection with this code (1008 Policy Violation or 1013 Try
    /// Again Later, typically) and the reason "too slow".
    Close(CloseCode),
}

/// The outcome of a broadcast, counted over its receivers.
///
/// ```
/// let report = sockjet::broadcast(std::iter::empty::<&sockjet::Sender>(), "nobody listens");
/// assert_eq!(report, sockjet::BroadcastReport::default());
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Receivers the message was queued (or written) to.
    pub queued: usize,
    /// Receivers whose queue was full, skipped under [`SlowReceiver::Drop`].
    pub dropped: usize,
    /// Receivers whose queue was full, closed under [`SlowReceiver::Close`].
    pub closed: usize,
    /// Receivers that were not open (closing or closed), skipped.
    pub not_open: usize,
}

/// Sends `message` to every receiver without waiting, like Python's
/// `websockets.broadcast`: the frame is built (and compressed, for receivers that share
/// their compression settings without context takeover) once, and each receiver's
/// connection queues it, or writes it at once when its socket can take it. A receiver
/// whose queue is full is handled as its connection's
/// [`slow_receiver`](crate::ConnectionConfig::slow_receiver) option says (by default the
/// message is dropped for it and counted). Receivers that are closing or closed are
/// skipped.
///
/// Messages from one task's broadcasts reach each receiver in the order sent. Receivers
/// are [`Sender`](crate::Sender)s or [`WeakSender`]s (what a room should hold), by value
/// or by reference.
///
/// ```no_run
/// # async fn f(room: Vec<sockjet::Sender>) {
/// let report = sockjet::broadcast(&room, "tick");
/// println!("{} queued, {} dropped", report.queued, report.dropped);
/// # }
/// ```
pub fn broadcast<R: AsRef<WeakSender>>(
    receivers: impl IntoIterator<Item = R>,
    message: impl Into<Message>,
) -> BroadcastReport {
    Broadcast::new(message).send_to(receivers)
}

/// A broadcast with options: the same message to several groups of receivers (encoded
/// once for all), and a [`SlowReceiver`] policy for this message that overrides the
/// connections' own.
///
/// ```no_run
/// # async fn f(players: Vec<sockjet::Sender>, spectators: Vec<sockjet::Sender>) {
/// use sockjet::{Broadcast, CloseCode, SlowReceiver};
/// let mut state = Broadcast::new("state 42")
///     .slow_receiver(SlowReceiver::Close(CloseCode::TRY_AGAIN_LATER));
/// state.send_to(&players);
/// state.send_to(&spectators);
/// # }
/// ```
#[derive(Debug)]
pub struct Broadcast {
    prepared: PreparedMessage,
    slow_receiver: Option<SlowReceiver>,
}

impl Broadcast {
    /// Prepares `message` for broadcasting.
    ///
    /// ```
    /// let _tick = sockjet::Broadcast::new(sockjet::Message::binary(vec![1u8, 2, 3]));
    /// ```
    pub fn new(message: impl Into<Message>) -> Self {
        Self {
            prepared: PreparedMessage::new(message.into()),
            slow_receiver: None,
        }
    }

    /// What to do with receivers whose queue is full, for this message, instead of each
    /// connection's [`slow_receiver`](crate::ConnectionConfig::slow_receiver) option.
    ///
    /// ```
    /// let _b = sockjet::Broadcast::new("x").slow_receiver(sockjet::SlowReceiver::Drop);
    /// ```
    pub fn slow_receiver(mut self, policy: SlowReceiver) -> Self {
        self.slow_receiver = Some(policy);
        self
    }

    /// Sends the message to `receivers`; see [`broadcast`].
    ///
    /// ```no_run
    /// # fn f(room: &[sockjet::Sender]) {
    /// let report = sockjet::Broadcast::new("hi").send_to(room);
    /// assert!(report.queued <= room.len());
    /// # }
    /// ```
    pub fn send_to<R: AsRef<WeakSender>>(
        &mut self,
        receivers: impl IntoIterator<Item = R>,
    ) -> BroadcastReport {
        let mut report = BroadcastReport::default();
        for receiver in receivers {
            let shared = &receiver.as_ref().shared;
            let policy = self.slow_receiver.unwrap_or(shared.config.slow_receiver);
            match offer(shared, &mut self.prepared, policy) {
                Outcome::Queued => report.queued += 1,
                Outcome::Dropped => report.dropped += 1,
                Outcome::Closed => report.closed += 1,
                Outcome::NotOpen => report.not_open += 1,
            }
        }
        report
    }
}

enum Outcome {
    Queued,
    Dropped,
    Closed,
    NotOpen,
}

/// Queues `prepared` on one connection, unless its queue is full.
fn offer(shared: &Arc<Shared>, prepared: &mut PreparedMessage, policy: SlowReceiver) -> Outcome {
    let mut inner = shared.lock();
    if inner.is_terminated() || inner.discard_messages || inner.proto.state() != State::Open {
        return Outcome::NotOpen;
    }
    // Always take a message when nothing waits, however large it is: the bound is on
    // what piles up, not on message size (that is max_message_size's job at the reader).
    let limit = shared.config.write_limit;
    let over = |pending: usize| pending > 0 && pending + prepared.payload_len() > limit;
    if over(inner.pending_write_len()) {
        // What waits may have become writable since: try before calling the peer slow.
        inner.flush_with_driver_waker();
        if over(inner.pending_write_len()) {
            return match policy {
                SlowReceiver::Drop => {
                    inner.dropped_messages += 1;
                    Outcome::Dropped
                }
                SlowReceiver::Close(code) => {
                    tracing::info!(id = %shared.id, %code, "closing a receiver too slow for a broadcast");
                    // The close frame is a control frame: it is queued behind the data
                    // already waiting, never dropped. If the peer does not read it either,
                    // the close timeout ends the connection.
                    if inner.start_close(code, "too slow").is_err() {
                        // A code that cannot be sent (1005, 1006...): fall back to the
                        // generic policy violation rather than leave the receiver open.
                        let _ = inner.start_close(CloseCode::POLICY_VIOLATION, "too slow");
                    }
                    Outcome::Closed
                }
            };
        }
    }
    match inner.proto.send_prepared(prepared) {
        Ok(()) => {
            flush_after_burst(shared, &mut inner);
            Outcome::Queued
        }
        Err(_) => Outcome::NotOpen,
    }
}

/// Receivers given broadcast messages since the broadcasting task last yielded, to be
/// written together when it does.
///
/// A publisher often has several messages ready at once (a burst read from one socket,
/// a game tick and a chat line): writing each message to each receiver at once would cost
/// a system call per message per receiver, most of the CPU time of a fan-out. Instead the
/// messages pile up in each receiver's buffer, and one task, spawned with the first
/// receiver of the burst, writes every receiver's pile in one call each once the
/// publisher's task yields (tokio runs a task spawned from a worker right after the
/// current one). A pile above the receiver's write limit is written at once instead (see
/// `offer`), so a publisher that never yields still gets its messages out.
#[derive(Default)]
struct Burst {
    state: Mutex<BurstState>,
}

#[derive(Default)]
struct BurstState {
    /// The writer took the receivers: later ones go to a new burst.
    taken: bool,
    receivers: Vec<Arc<Shared>>,
}

thread_local! {
    /// This thread's open burst, if any.
    static CURRENT_BURST: RefCell<Option<Arc<Burst>>> = const { RefCell::new(None) };
}

/// Arranges for `inner`'s new output to be written when the current burst ends.
fn flush_after_burst(shared: &Arc<Shared>, inner: &mut Inner) {
    if inner.in_burst {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to run the writer on: write now.
        inner.flush_with_driver_waker();
        return;
    };
    inner.in_burst = true;
    CURRENT_BURST.with(|current| {
        let mut current = current.borrow_mut();
        loop {
            let burst = current.get_or_insert_with(|| {
                let burst = Arc::new(Burst::default());
                runtime.spawn(write_burst(burst.clone()));
                burst
            });
            let mut state = burst.state.lock().unwrap_or_else(|e| e.into_inner());
            if !state.taken {
                state.receivers.push(shared.clone());
                return;
            }
            drop(state);
            *current = None;
        }
    });
}

/// Writes what every receiver of `burst` has pending, one write each.
async fn write_burst(burst: Arc<Burst>) {
    let receivers = {
        let mut state = burst.state.lock().unwrap_or_else(|e| e.into_inner());
        state.taken = true;
        std::mem::take(&mut state.receivers)
    };
    // Unconstrained: tokio's cooperative budget (128 operations per poll) would otherwise
    // turn the writes past the 128th into wakeups of each receiver's own task.
    tokio::task::unconstrained(async move {
        for shared in receivers {
            let mut inner = shared.lock();
            inner.in_burst = false;
            inner.flush_with_driver_waker();
        }
    })
    .await;
}
