//! Opening many connections at once, with a bounded number of handshakes in flight.

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use sockjet_proto::DeflateConfig;
use tokio::{
    sync::{Notify, Semaphore, mpsc},
    task::JoinSet,
};

use super::{
    Settings,
    dial::{Opened, Target, dial},
    phases::{Interrupt, all_opened},
    progress::{Progress, opening_status},
    stats::SharedStats,
};
use crate::Failure;

/// Most handshakes in flight: more only fills the server's accept queue (and SYN
/// cookies kick in), which measures the kernel rather than the server.
pub(crate) const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// How many of the connections asked for are open or failed so far.
#[derive(Debug, Default)]
pub(crate) struct OpenCounts {
    /// Connections opened.
    opened: AtomicUsize,
    /// Attempts that failed.
    failed: AtomicUsize,
    /// Connections on which the server accepted permessage-deflate.
    compressed: AtomicUsize,
    /// The server's first `Sec-WebSocket-Extensions` answer.
    extensions: Mutex<Option<String>>,
    /// Connections asked for.
    requested: usize,
    /// Attempts ended, opened or failed.
    ended: AtomicUsize,
    /// Signalled when the last attempt ends.
    all_done: Notify,
}

impl OpenCounts {
    /// Connections opened so far.
    pub(crate) fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Attempts failed so far.
    pub(crate) fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Connections on which the server accepted permessage-deflate.
    pub(crate) fn compressed(&self) -> usize {
        self.compressed.load(Ordering::Relaxed)
    }

    /// The server's first `Sec-WebSocket-Extensions` answer, if it sent one.
    pub(crate) fn extensions(&self) -> Option<String> {
        self.extensions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The counts of a run whose attempts all ended elsewhere (in load processes):
    /// `opened` and `failed` of `opened + failed` requested, permessage-deflate accepted
    /// on `compressed`, the server's first `extensions` answer.
    pub(crate) fn ended(
        opened: usize,
        failed: usize,
        compressed: usize,
        extensions: Option<String>,
    ) -> Self {
        Self {
            opened: AtomicUsize::new(opened),
            failed: AtomicUsize::new(failed),
            compressed: AtomicUsize::new(compressed),
            extensions: Mutex::new(extensions),
            requested: opened + failed,
            ended: AtomicUsize::new(opened + failed),
            all_done: Notify::new(),
        }
    }

    /// Waits until every attempt has ended.
    pub(crate) async fn all_done(&self) {
        if self.requested > 0 {
            self.all_done.notified().await;
        }
    }

    /// Counts a connection opened.
    fn opened_one(&self, opened: &Opened) {
        if opened.compression.is_some() {
            self.compressed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(answer) = &opened.extensions {
            self.extensions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get_or_insert_with(|| answer.clone());
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.attempt_ended();
    }

    /// Counts a failed attempt.
    fn failed_one(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.attempt_ended();
    }

    /// Counts the end of an attempt, and wakes the waiter after the last.
    fn attempt_ended(&self) {
        if self.ended.fetch_add(1, Ordering::AcqRel) + 1 == self.requested {
            // `notify_one` keeps the wake-up if nobody waits yet.
            self.all_done.notify_one();
        }
    }
}

/// How to open the connections.
#[derive(Clone, Debug)]
pub(crate) struct OpenPlan {
    /// The server.
    pub(crate) target: Arc<Target>,
    /// Number of connections.
    pub(crate) count: usize,
    /// permessage-deflate to offer, if any.
    pub(crate) deflate: Option<DeflateConfig>,
    /// Longest connect and handshake of one connection.
    pub(crate) timeout: Duration,
    /// Where these connections stand among all of the run's, when they are a load
    /// process's share; `None`: they are all of them.
    pub(crate) share: Option<Share>,
}

impl OpenPlan {
    /// The source address of connection `index` of the plan (see
    /// [`Target::source_for`]). A share's connections are numbered run-wide: the ports of
    /// a source address are the whole machine's, so a share takes its source addresses
    /// where one process holding every connection would.
    pub(crate) fn source_for(&self, index: usize) -> Option<IpAddr> {
        match self.share {
            Some(share) => self.target.source_for(share.first + index, share.total),
            None => self.target.source_for(index, self.count),
        }
    }
}

/// A load process's share of a run spread over several (`--idle N --processes P`):
/// connections `first..first + count` of `total`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) struct Share {
    /// The run-wide index of the share's first connection.
    pub(crate) first: usize,
    /// Connections in the run, over all load processes.
    pub(crate) total: usize,
}

/// Spawns one task per connection that opens it (waiting its turn among at most 256
/// handshakes; a share, among its part of them), records its connect time or failure,
/// then runs `then(index, opened)`.
/// The returned tasks end when their `then` does.
pub(crate) fn spawn_openers<F, Fut>(
    plan: OpenPlan,
    stats: &Arc<SharedStats>,
    then: F,
) -> (JoinSet<()>, Arc<OpenCounts>)
where
    F: Fn(usize, Opened) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let counts = Arc::new(OpenCounts {
        requested: plan.count,
        ..OpenCounts::default()
    });
    // A share takes its part of the handshakes in flight, so that the server sees no more
    // at once from all load processes than from one.
    let in_flight = match plan.share {
        Some(share) => (MAX_CONCURRENT_HANDSHAKES * plan.count / share.total.max(1)).max(1),
        None => MAX_CONCURRENT_HANDSHAKES,
    };
    let permits = Arc::new(Semaphore::new(in_flight));
    let then = Arc::new(then);
    let mut tasks = JoinSet::new();
    for index in 0..plan.count {
        let (plan, stats, counts, permits, then) = (
            plan.clone(),
            Arc::clone(stats),
            Arc::clone(&counts),
            Arc::clone(&permits),
            Arc::clone(&then),
        );
        tasks.spawn(async move {
            let source = plan.source_for(index);
            let attempt = {
                // The semaphore is never closed, so acquiring only fails in theory.
                let _permit = permits.acquire().await;
                dial(&plan.target, source, plan.deflate.as_ref(), plan.timeout).await
            };
            match attempt {
                Ok(opened) => {
                    stats.recorder(index).connect_time(opened.connect_time);
                    counts.opened_one(&opened);
                    then(index, opened).await;
                }
                Err(error) => {
                    stats.connect_failure(error.reason(), error.to_string());
                    counts.failed_one();
                }
            }
        });
    }
    (tasks, counts)
}

/// Opens every connection of `plan` before the clock starts, showing progress; returns
/// the ones that opened, each with its index, and the counts. Fails if Ctrl-C came
/// first or none opened.
pub(crate) async fn open_all(
    plan: OpenPlan,
    settings: &Settings,
    stats: &Arc<SharedStats>,
    interrupt: &mut Interrupt,
) -> Result<(Vec<(usize, Opened)>, Arc<OpenCounts>), Failure> {
    let requested = plan.count;
    let (opened, mut receiver) = mpsc::unbounded_channel();
    let (mut openers, counts) = spawn_openers(plan, stats, move |index, connection| {
        let opened = opened.clone();
        async move {
            let _ = opened.send((index, connection));
        }
    });
    let progress = Progress::start(settings.display, {
        let counts = Arc::clone(&counts);
        move || opening_status(&counts, requested)
    });
    let all_open = all_opened(&counts, requested, settings, stats, interrupt).await;
    progress.finish();
    if all_open.is_err() {
        openers.abort_all();
    }
    while openers.join_next().await.is_some() {}
    all_open?;
    let mut connections = Vec::with_capacity(counts.opened());
    while let Ok(connection) = receiver.try_recv() {
        connections.push(connection);
    }
    Ok((connections, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_take_the_source_addresses_of_one_process() {
        let target = Arc::new(Target::resolve("ws://127.0.0.1:9").await.unwrap());
        let whole = OpenPlan {
            target,
            count: 50_000,
            deflate: None,
            timeout: Duration::from_secs(1),
            share: None,
        };
        // The second of three load processes: connections 16,666..33,333.
        let share = OpenPlan {
            count: 16_667,
            share: Some(Share {
                first: 16_666,
                total: 50_000,
            }),
            ..whole.clone()
        };
        for index in [0, 3_333, 3_334, 16_666] {
            assert_eq!(
                share.source_for(index),
                whole.source_for(16_666 + index),
                "{index}"
            );
        }
        assert_ne!(share.source_for(0), share.source_for(16_666));
        // A small run lets the kernel choose, shared or not.
        let small = OpenPlan {
            count: 100,
            share: Some(Share {
                first: 100,
                total: 300,
            }),
            ..whole
        };
        assert_eq!(small.source_for(5), None);
    }
}
