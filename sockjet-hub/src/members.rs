//! One topic's local members: a list that publishers read without holding a lock while
//! they send, and that joins and leaves update copy-on-write.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use sockjet::{ConnectionId, WeakSender};

/// A topic with at least one local member (an empty one is removed from the hub).
pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    members: Mutex<Members>,
}

struct Members {
    /// What publishers iterate over. A publish clones the `Arc` (under the lock, which is
    /// held for nothing else) and sends with no lock held, so a topic with 10k members
    /// blocks neither joins nor other publishes while it sends. A join or leave changes
    /// the list in place with `Arc::make_mut`, which copies it only when a publish is
    /// reading it at that very moment.
    senders: Arc<Vec<WeakSender>>,
    /// Where each member is in `senders`, so that a leave is O(1) (`swap_remove`).
    index: HashMap<ConnectionId, usize>,
    /// Set when the hub took this topic out of its map: a join that looked it up just
    /// before must look again, or it would join a topic that nobody publishes to.
    removed: bool,
}

/// The topic was removed from the hub between the lookup and the join: look up again.
pub(crate) struct Removed;

impl Topic {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            members: Mutex::new(Members {
                senders: Arc::new(Vec::new()),
                index: HashMap::new(),
                removed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        // Nothing panics while the lock is held; should it, the list is still consistent.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `sender`; `Ok(false)` if it was already a member.
    pub(crate) fn add(&self, sender: &WeakSender) -> Result<bool, Removed> {
        let mut members = self.lock();
        if members.removed {
            return Err(Removed);
        }
        let id = sender.id();
        if members.index.contains_key(&id) {
            return Ok(false);
        }
        let position = members.senders.len();
        Arc::make_mut(&mut members.senders).push(sender.clone());
        members.index.insert(id, position);
        Ok(true)
    }

    /// Removes member `id`; the number of members left, or `None` if it was not one.
    pub(crate) fn remove(&self, id: ConnectionId) -> Option<usize> {
        let mut members = self.lock();
        let position = members.index.remove(&id)?;
        let senders = Arc::make_mut(&mut members.senders);
        let gone = senders.swap_remove(position);
        let left = senders.len();
        if let Some(moved) = senders.get(position) {
            let moved = moved.id();
            members.index.insert(moved, position);
        }
        drop(members);
        // The connection's state may be freed here: not while holding the topic's lock.
        drop(gone);
        Some(left)
    }

    /// Marks the topic removed if it has no member left; true if it did.
    pub(crate) fn remove_if_empty(&self) -> bool {
        let mut members = self.lock();
        if members.removed || !members.senders.is_empty() {
            return false;
        }
        members.removed = true;
        true
    }

    /// The members as they are now, to send to without holding any lock.
    pub(crate) fn snapshot(&self) -> Arc<Vec<WeakSender>> {
        self.lock().senders.clone()
    }

    pub(crate) fn ids(&self) -> Vec<ConnectionId> {
        self.lock().senders.iter().map(WeakSender::id).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().senders.len()
    }
}
