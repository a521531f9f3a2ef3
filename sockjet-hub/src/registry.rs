//! The connections that are members of at least one topic, and the watchers that make
//! them leave every topic when their connection ends.
//!
//! Connections are spread over [`SHARDS`] shards by id. Each shard has one watcher task,
//! started with the shard's first member, and one waker ([`CloseWaker`]) that it
//! registers with every member's [`WeakSender::closed`]. One waker per shard, not per
//! connection, matters: a connection keeps the wakers it was given until it ends, and
//! sockjet skips a waker that `will_wake` the same task, so a connection that joins and
//! leaves rooms a thousand times still holds one waker from the hub, not a thousand, and
//! no task per connection is ever spawned or left behind.

use std::{
    collections::HashMap,
    future::{Future, poll_fn},
    pin::pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use sockjet::{ConnectionId, WeakSender};
use tokio::task::AbortHandle;

use crate::hub::HubInner;

/// Enough to keep the watchers' scans short (a close rescans one shard) without many idle
/// tasks.
const SHARDS: usize = 16;

pub(crate) struct Registry {
    shards: Box<[Shard]>,
}

pub(crate) struct Shard {
    state: Mutex<ShardState>,
    close_waker: Arc<CloseWaker>,
}

#[derive(Default)]
pub(crate) struct ShardState {
    pub(crate) connections: HashMap<ConnectionId, Membership>,
    /// Connections added since the watcher last looked: it must register with them.
    fresh: Vec<ConnectionId>,
    watcher: Option<AbortHandle>,
}

/// A connection's topics, and a way to see it end for the watcher (one that does not
/// keep it open).
pub(crate) struct Membership {
    sender: WeakSender,
    pub(crate) topics: Vec<Arc<str>>,
}

/// The waker a shard's watcher gives its members' `closed()`: it says "one of them may
/// have ended: look at them all" and wakes the watcher.
#[derive(Default)]
struct CloseWaker {
    scan: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl CloseWaker {
    fn task(&self) -> MutexGuard<'_, Option<Waker>> {
        self.task.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_task(&self) {
        if let Some(task) = self.task().as_ref() {
            task.wake_by_ref();
        }
    }
}

impl Wake for CloseWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.scan.store(true, Ordering::Release);
        self.wake_task();
    }
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    state: Mutex::default(),
                    close_waker: Arc::default(),
                })
                .collect(),
        }
    }

    fn index(id: ConnectionId) -> usize {
        // ConnectionId's only public view of its number is Display/Debug; its hash is the
        // portable way to spread ids.
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(id);
        (hash % SHARDS as u64) as usize
    }

    pub(crate) fn shard(&self, id: ConnectionId) -> &Shard {
        &self.shards[Self::index(id)]
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().connections.len()).sum()
    }

    /// Stops every watcher (the hub is going away).
    pub(crate) fn stop_watchers(&self) {
        for shard in self.shards.iter() {
            if let Some(watcher) = shard.lock().watcher.take() {
                watcher.abort();
            }
        }
    }
}

impl Shard {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a connection's first topic, and has the watcher watch it.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, when the shard's watcher must be started.
    pub(crate) fn add_connection(
        &self,
        state: &mut ShardState,
        sender: &WeakSender,
        topic: Arc<str>,
        hub: Weak<HubInner>,
    ) {
        let id = sender.id();
        state.connections.insert(
            id,
            Membership {
                sender: sender.clone(),
                topics: vec![topic],
            },
        );
        state.fresh.push(id);
        if state.watcher.is_none() {
            let index = Registry::index(id);
            state.watcher = Some(tokio::spawn(watch(hub, index)).abort_handle());
        } else {
            self.close_waker.wake_task();
        }
    }
}

/// A shard's watcher: registers the shard's waker with each new member's `closed()`, and
/// when it fires, finds the members whose connection ended and makes them leave.
async fn watch(hub: Weak<HubInner>, index: usize) {
    poll_fn(|cx| {
        let Some(hub) = hub.upgrade() else {
            return Poll::Ready(());
        };
        let shard = &hub.registry.shards[index];
        {
            let mut task = shard.close_waker.task();
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let ended = shard.ended_connections();
        for id in ended {
            hub.leave_all(id);
        }
        Poll::Pending
    })
    .await;
}

impl Shard {
    fn ended_connections(&self) -> Vec<ConnectionId> {
        let waker = Waker::from(self.close_waker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut state = self.lock();
        let fresh = std::mem::take(&mut state.fresh);
        let mut ended = Vec::new();
        // Cleared before the scan: a connection that ends during it wakes us again.
        if self.close_waker.scan.swap(false, Ordering::AcqRel) {
            for (id, membership) in &state.connections {
                if has_ended(&membership.sender, &mut cx) {
                    ended.push(*id);
                }
            }
        } else {
            for id in fresh {
                if let Some(membership) = state.connections.get(&id)
                    && has_ended(&membership.sender, &mut cx)
                {
                    ended.push(id);
                }
            }
        }
        ended
    }
}

/// Whether the connection has ended; if not, `cx`'s waker is woken when it does.
fn has_ended(sender: &WeakSender, cx: &mut Context<'_>) -> bool {
    pin!(sender.closed()).poll(cx).is_ready()
}
