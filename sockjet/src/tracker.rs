//! The server's record of its connections: how many are open (in total and per client
//! address), which task serves each, and whether the server is shutting down.
//!
//! A connection holds a [`Slot`] from the moment it is accepted until its task ends,
//! however it ends (handler returned, handshake failed, task aborted): the slot's `Drop`
//! releases its counts exactly once. The record costs one small table entry per open
//! connection, and no timer or waker of its own.

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use sockjet_proto::CloseCode;
use tokio::{sync::Notify, task::AbortHandle};

use crate::{connection::Shared, server_options::ServeOptions};

/// The reason sent with the close frame of every connection at shutdown.
pub(crate) const SHUTDOWN_REASON: &str = "server shutting down";

/// Why a connection was refused on accept.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Full,
    /// `max_connections_per_ip` are open from this address.
    PerIp,
}

pub(crate) struct Tracker {
    state: Mutex<State>,
    max_connections: Option<usize>,
    max_per_ip: Option<usize>,
    /// The answers to refused connections, built once per server.
    full_response: Box<[u8]>,
    per_ip_response: Box<[u8]>,
    /// Notified when the last connection ends during shutdown.
    idle: Notify,
    shutdown_requested: AtomicBool,
    shutdown_request: Notify,
}

#[derive(Default)]
struct State {
    shutting_down: bool,
    open: usize,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Open connections per client address, when a per-address limit is set.
    per_ip: HashMap<IpAddr, usize>,
}

enum Entry {
    Vacant,
    Occupied {
        /// The connection's task, to abort if it outlives the shutdown timeout.
        task: Option<AbortHandle>,
        /// Set once the opening handshake is over.
        connection: Weak<Shared>,
        /// Counted against the per-address limit.
        ip: Option<IpAddr>,
    },
}

impl Tracker {
    pub(crate) fn new(options: &ServeOptions) -> Arc<Self> {
        let retry_after =
            options.retry_after.as_secs() + u64::from(options.retry_after.subsec_nanos() > 0);
        let tls = options.has_tls();
        Arc::new(Self {
            state: Mutex::new(State::default()),
            max_connections: options.max_connections,
            max_per_ip: options.max_connections_per_ip,
            full_response: refusal_response(
                tls,
                "503 Service Unavailable",
                retry_after,
                "The server is at its connection limit; try again later.\n",
            ),
            per_ip_response: refusal_response(
                tls,
                "429 Too Many Requests",
                retry_after,
                "Too many connections from your address; try again later.\n",
            ),
            idle: Notify::new(),
            shutdown_requested: AtomicBool::new(false),
            shutdown_request: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything that could panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a new connection, or says why it must be refused. Only the accept loop calls
    /// this, so a slot it hands out cannot be reused before [`set_task`](Self::set_task).
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        let mut state = self.lock();
        if self.max_connections.is_some_and(|max| state.open >= max) {
            return Err(Refusal::Full);
        }
        let ip = match (self.max_per_ip, ip) {
            (Some(max), Some(ip)) => {
                if state.per_ip.get(&ip).copied().unwrap_or(0) >= max {
                    return Err(Refusal::PerIp);
                }
                *state.per_ip.entry(ip).or_insert(0) += 1;
                Some(ip)
            }
            _ => None,
        };
        state.open += 1;
        let entry = Entry::Occupied {
            task: None,
            connection: Weak::new(),
            ip,
        };
        let index = match state.free.pop() {
            Some(index) => {
                state.entries[index as usize] = entry;
                index
            }
            None => {
                state.entries.push(entry);
                u32::try_from(state.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        Ok(Slot {
            tracker: self.clone(),
            index,
        })
    }

    /// The static answer to a refused connection.
    pub(crate) fn refusal_response(&self, refusal: Refusal) -> &[u8] {
        match refusal {
            Refusal::Full => &self.full_response,
            Refusal::PerIp => &self.per_ip_response,
        }
    }

    /// Records the task serving the connection in slot `index`, if it still runs.
    pub(crate) fn set_task(&self, index: u32, handle: AbortHandle) {
        if let Some(Entry::Occupied { task, .. }) = self.lock().entries.get_mut(index as usize) {
            *task = Some(handle);
        }
    }

    fn release(&self, index: u32) {
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(index as usize) else {
            return;
        };
        if let Entry::Occupied { ip, .. } = std::mem::replace(entry, Entry::Vacant) {
            if let Some(ip) = ip {
                if let Some(count) = state.per_ip.get_mut(&ip) {
                    *count -= 1;
                    if *count == 0 {
                        state.per_ip.remove(&ip);
                    }
                }
            }
            state.open -= 1;
            state.free.push(index);
        }
        let now_idle = state.open == 0 && state.shutting_down;
        drop(state);
        if now_idle {
            self.idle.notify_waiters();
        }
    }

    /// Asks the server to shut down (see [`ShutdownHandle`](crate::ShutdownHandle)).
    pub(crate) fn request_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::Release);
        self.shutdown_request.notify_waiters();
    }

    /// Resolves once [`request_shutdown`](Self::request_shutdown) was called.
    pub(crate) async fn shutdown_requested(&self) {
        loop {
            let notified = self.shutdown_request.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shutdown_requested.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Marks the server as shutting down and starts the closing handshake, with 1001, on
    /// every open connection; returns how many there are, handshakes included. Connections
    /// whose handshake finishes later are closed as soon as it does (see [`Slot::opened`]).
    pub(crate) fn close_all(&self) -> usize {
        let (open, connections): (usize, Vec<Arc<Shared>>) = {
            let mut state = self.lock();
            state.shutting_down = true;
            let connections = state
                .entries
                .iter()
                .filter_map(|entry| match entry {
                    Entry::Occupied { connection, .. } => connection.upgrade(),
                    Entry::Vacant => None,
                })
                .collect();
            (state.open, connections)
        };
        // Outside the lock: each close takes its connection's own lock and writes.
        for connection in connections {
            // Through the connection's send path: what `send` accepted goes out first.
            let _ = connection.start_close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
        open
    }

    /// Waits until no connection is left.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().open == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Ends every connection still open: aborts its task and closes its socket. Returns
    /// how many there were.
    pub(crate) fn abort_all(&self) -> usize {
        let mut tasks = Vec::new();
        let mut connections = Vec::new();
        let open = {
            let state = self.lock();
            for entry in &state.entries {
                if let Entry::Occupied {
                    task, connection, ..
                } = entry
                {
                    tasks.extend(task.clone());
                    connections.extend(connection.upgrade());
                }
            }
            state.open
        };
        for task in tasks {
            task.abort();
        }
        for connection in connections {
            connection.abort("shutdown timeout");
        }
        open
    }

    /// Open connections, handshakes included.
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("open", &self.open())
            .field("max_connections", &self.max_connections)
            .field("max_per_ip", &self.max_per_ip)
            .finish_non_exhaustive()
    }
}

/// A connection's place in the [`Tracker`]; dropping it releases the place.
pub(crate) struct Slot {
    tracker: Arc<Tracker>,
    index: u32,
}

impl Slot {
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// Records the open connection. Returns `true` if the server is shutting down, in which
    /// case the connection must be closed at once (the caller does it).
    pub(crate) fn opened(&self, shared: &Arc<Shared>) -> bool {
        let mut state = self.tracker.lock();
        if let Some(Entry::Occupied { connection, .. }) = state.entries.get_mut(self.index as usize)
        {
            *connection = Arc::downgrade(shared);
        }
        state.shutting_down
    }

    /// The connection, while it lives.
    pub(crate) fn connection(&self) -> Option<Arc<Shared>> {
        match self.tracker.lock().entries.get(self.index as usize) {
            Some(Entry::Occupied { connection, .. }) => connection.upgrade(),
            _ => None,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.release(self.index);
    }
}

/// An HTTP answer for a refused connection, or, over TLS, a fatal `internal_error` alert.
///
/// Over TLS a plain-text answer would be garbage to the client, and finishing a TLS
/// handshake first would spend the memory and CPU the limit exists to save, so the
/// refusal is the 7-byte alert record (RFC 8446 §6; record version 0x0303), which clients
/// report as "received fatal alert: InternalError".
fn refusal_response(tls: bool, status: &str, retry_after: u64, body: &str) -> Box<[u8]> {
    if tls {
        return Box::new([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);
    }
    format!(
        "HTTP/1.1 {status}\r\nRetry-After: {retry_after}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into_boxed_slice()
}
