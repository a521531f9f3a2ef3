//! A subscriber: reads what the server broadcasts, and times each delivery.
//!
//! It only reads (and answers pings). One read takes whatever has arrived (up to 64 KiB,
//! into the worker thread's buffer), the frames are parsed in place, and the clock is read
//! once for all the messages of the read. Per message it decodes the 16-byte head, counts
//! its receipt on the board (one compare-and-swap) and keeps the latency in its own
//! buffer, which goes to the shared histograms a few hundred samples at a time.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sockjet_proto::{MaskKeys as _, OsRandomMaskKeys};
use tokio::sync::watch;

use super::board::{Board, Receipt, decode_head};
use crate::bench::{
    dial::Opened,
    session::Session,
    stats::{ErrorKind, Recorder},
};

/// What subscribers count besides latency, added up when each one ends.
#[derive(Debug, Default)]
pub(crate) struct SubscriberTotals {
    /// Messages received in the measurement window after the publisher gave up on them.
    pub(crate) late: AtomicU64,
    /// Messages that did not start with a head (not sent by the publisher).
    pub(crate) unrecognized: AtomicU64,
}

/// Reads broadcasts on `opened` until `stop`, then closes with 1000.
pub(crate) async fn subscribe(
    opened: Opened,
    board: Arc<Board>,
    mut recorder: Recorder,
    mut stop: watch::Receiver<bool>,
    totals: Arc<SubscriberTotals>,
    close_timeout: Duration,
) {
    let mask = OsRandomMaskKeys::default().next_key();
    let mut session = Session::new(opened, None, mask);
    session.keep_heads();
    let stopping = async {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let (mut late, mut unrecognized) = (0u64, 0u64);
    let failed = loop {
        if let Err(error) = session.write_pending() {
            break Some((ErrorKind::Io, crate::io_message(&error)));
        }
        let ready = tokio::select! {
            biased;
            () = &mut stopping => break None,
            ready = session.ready() => ready,
        };
        match ready {
            Ok(ready) if !ready.is_readable() => continue,
            Ok(_) => {}
            Err(error) => break Some((ErrorKind::Io, crate::io_message(&error))),
        }
        let now = std::time::Instant::now();
        let schedule = board.schedule().copied();
        let measuring = schedule.is_some_and(|schedule| schedule.measures(now));
        let outcome = session.read_available(&mut |message| {
            let Some((seq, sent_ns)) = decode_head(message.head) else {
                unrecognized += 1;
                return;
            };
            // A message read after its timeout was counted missing, but it is a delivery
            // all the same (the server did the work), with its real latency.
            if board.receive(seq, now) == Receipt::Late {
                late += u64::from(measuring);
            }
            // Before the subscription check passed, nothing is timed.
            if schedule.is_some() {
                let sent = board.instant_at(sent_ns);
                recorder.latency(now.saturating_duration_since(sent), measuring, now);
            }
        });
        recorder.maybe_flush(now);
        if let Some(failed) = session.stop_after(outcome, &recorder) {
            break Some(failed);
        }
    };
    // Messages in flight stop waiting for this one.
    board.subscriber_left();
    totals.late.fetch_add(late, Ordering::Relaxed);
    totals
        .unrecognized
        .fetch_add(unrecognized, Ordering::Relaxed);
    recorder.flush();
    session.end(failed, close_timeout, &mut recorder).await;
}
