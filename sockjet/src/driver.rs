//! The per-connection driver: what must happen when the application is not calling. A
//! task of its own for clients and upgraded streams; on the server, polled in the
//! connection's task beside the handler ([`RunBeside`]).
//!
//! It flushes writes that were deferred or blocked, reads (answering pings and close
//! frames) while no `recv()` is waiting, sends keepalive pings and fails the connection
//! when they go unanswered, closes with 1000 when every handle is dropped, and enforces
//! the close timeout. On the hot path it is not involved at all.

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};

use sockjet_proto::{CloseCode, State};
use tokio::time::{Instant, Sleep, sleep_until};

use crate::connection::{Shared, random_ping_payload};

/// How often the driver looks at a connection it was not woken for. It takes over reading
/// when the application stopped calling `recv()` without leaving the read registration to
/// the driver; pings are then answered within this delay.
const WATCHDOG: Duration = Duration::from_millis(500);

/// Reads per wakeup before the driver yields to other tasks.
const READ_BUDGET: usize = 16;

/// A connection's driver, as a future: spawned as a task of its own, or run in the
/// server's connection task beside the handler ([`RunBeside`]). It completes when the
/// connection is over.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    timers: Timers,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let timers = Timers::new(&shared);
        Self { shared, timers }
    }

    /// Gives the driver a timer to re-arm for its deadlines (the server's handshake
    /// timer), so that a connection allocates and registers one timer in all.
    pub(crate) fn reuse_timer(&mut self, sleep: Pin<Box<Sleep>>) {
        self.timers.sleep = Some(sleep);
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        poll_driver(&this.shared, &mut this.timers, cx)
    }
}

pin_project_lite::pin_project! {
    /// Runs a handler (if any) and a connection's driver in the calling task until both
    /// are done, polling the driver only when it was woken: a task less per connection
    /// (its allocation, its scheduling, a wakeup at the end), and the handler's own
    /// wakeups cost nothing more. A struct rather than an `async fn`, whose arguments and
    /// locals would each take room in the future for the same handler.
    pub(crate) struct RunBeside<F> {
        #[pin]
        handler: Option<F>,
        driver: Driver,
        driver_done: bool,
        wake: Arc<DriverWake>,
        driver_waker: Waker,
        // The task's waker as last given to `wake`: it rarely changes, so the lock that
        // gives it is taken only when it does.
        task_waker: Option<Waker>,
    }
}

impl<F: Future<Output = ()>> RunBeside<F> {
    pub(crate) fn new(handler: Option<F>, driver: Driver) -> Self {
        let wake = Arc::new(DriverWake::default());
        Self {
            handler,
            driver,
            driver_done: false,
            driver_waker: Waker::from(wake.clone()),
            wake,
            task_waker: None,
        }
    }
}

impl<F: Future<Output = ()>> Future for RunBeside<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if !this
            .task_waker
            .as_ref()
            .is_some_and(|known| known.will_wake(cx.waker()))
        {
            *this.task_waker = Some(cx.waker().clone());
            this.wake.set_task(cx.waker());
        }
        this.wake.polling.store(true, Ordering::SeqCst);
        if let Some(running) = this.handler.as_mut().as_pin_mut()
            && running.poll(cx).is_ready()
        {
            // Dropping the handler may drop the last handle: let the driver close.
            this.handler.set(None);
            this.wake.woken.store(true, Ordering::SeqCst);
        }
        if !*this.driver_done && this.wake.woken.swap(false, Ordering::SeqCst) {
            let mut driver_cx = Context::from_waker(this.driver_waker);
            *this.driver_done = Pin::new(&mut *this.driver).poll(&mut driver_cx).is_ready();
        }
        this.wake.leave();
        match this.handler.is_none() && *this.driver_done {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }
}

/// The driver's waker in [`RunBeside`]: marks the driver to be polled and wakes the
/// task, unless the task is being polled right now (it looks at the mark before it
/// returns). `woken` and `polling` are each stored by one side and loaded by the other
/// (a waker on another thread, the polling task): sequentially consistent, so that at
/// least one of the two sees the other's store and the wakeup is never lost.
struct DriverWake {
    woken: AtomicBool,
    polling: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Default for DriverWake {
    fn default() -> Self {
        Self {
            // The first poll runs the driver, which registers its waker and timers.
            woken: AtomicBool::new(true),
            polling: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }
}

impl DriverWake {
    fn set_task(&self, task: &Waker) {
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.clone());
    }

    fn leave(&self) {
        self.polling.store(false, Ordering::SeqCst);
        // A wake that came between the driver's poll and now found `polling` set and
        // did not wake the task: do it for it.
        if self.woken.load(Ordering::SeqCst) {
            self.wake_task();
        }
    }

    fn wake_task(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Wake for DriverWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.wake_task();
        }
    }
}

/// The driver's deadlines, all served by one tokio timer armed at the earliest: one
/// allocation and one registration in tokio's timer wheel per connection instead of one
/// per kind of deadline (a registration takes the wheel's lock, and moving a deadline
/// later does not: the common case, as keepalive goes on).
struct Timers {
    ping_interval: Option<Duration>,
    ping_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
    /// When to send the next keepalive ping (none without keepalive).
    next_ping: Option<Instant>,
    /// When the oldest unanswered keepalive ping times out.
    ping_deadline: Option<Instant>,
    /// When a closing handshake under way is abandoned.
    close_deadline: Option<Instant>,
    /// When the driver looks again at a connection it was not woken for (see WATCHDOG);
    /// none while disarmed, so that an idle connection has no periodic wakeup.
    watchdog: Option<Instant>,
    /// Armed at the earliest deadline above; created on first need, or handed over by
    /// the server from the opening handshake (`Driver::reuse_timer`).
    sleep: Option<Pin<Box<Sleep>>>,
    seen_recv_polls: u64,
}

impl Timers {
    fn new(shared: &Shared) -> Self {
        let config = &shared.config;
        let now = Instant::now();
        Self {
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            close_timeout: config.close_timeout,
            next_ping: config.ping_interval.map(|interval| now + interval),
            ping_deadline: None,
            close_deadline: None,
            watchdog: Some(now + WATCHDOG),
            sleep: None,
            seen_recv_polls: 0,
        }
    }

    /// The time to compare deadlines with: `None` while the timer has not fired (no
    /// deadline is due before the earliest, which it is armed at).
    fn fired(&mut self, cx: &mut Context<'_>) -> Option<Instant> {
        let sleep = self.sleep.as_mut()?;
        if sleep.as_mut().poll(cx).is_pending() {
            return None;
        }
        // The timer may fire within its resolution of the deadline: count the deadline
        // it was armed at as reached.
        Some(Instant::now().max(sleep.deadline()))
    }

    /// Arms the timer at the earliest deadline, and registers the task's waker with it.
    fn arm(&mut self, cx: &mut Context<'_>) {
        let earliest = [
            self.next_ping,
            self.ping_deadline,
            self.close_deadline,
            self.watchdog,
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(earliest) = earliest else {
            // Nothing to wait for: a timer left armed wakes the driver once for nothing.
            return;
        };
        match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != earliest || sleep.is_elapsed() {
                    sleep.as_mut().reset(earliest);
                }
                let _ = sleep.as_mut().poll(cx);
            }
            None => {
                let mut sleep = Box::pin(sleep_until(earliest));
                let _ = sleep.as_mut().poll(cx);
                self.sleep = Some(sleep);
            }
        }
    }
}

/// Far enough to mean "never" without overflowing `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(86400 * 365);

fn poll_driver(shared: &Shared, timers: &mut Timers, cx: &mut Context<'_>) -> Poll<()> {
    let mut inner = shared.lock();
    inner.set_driver_waker(cx.waker());
    let max_queue = shared.config.max_queue;
    let now = timers.fired(cx);
    let due =
        |deadline: Option<Instant>| matches!((deadline, now), (Some(at), Some(now)) if at <= now);

    // Every handle dropped: close like a handler returning (Python websockets: 1000).
    if inner.handles == 0 && inner.proto.state() == State::Open {
        let _ = inner.proto.send_close(CloseCode::NORMAL_CLOSURE, "");
        inner.discard_messages = true;
    }

    // Keepalive.
    if let (true, Some(interval), Some(now)) = (due(timers.next_ping), timers.ping_interval, now) {
        let sent = inner.proto.state() == State::Open
            && inner.send_ping(random_ping_payload(), None).is_ok();
        if let (true, Some(timeout), None) = (sent, timers.ping_timeout, timers.ping_deadline) {
            timers.ping_deadline = Some(now + timeout);
        }
        timers.next_ping = Some(now + interval);
    }

    // Read only if no recv() owns the read registration, and the application is not busy
    // reading (it polled recv() since the last look) unless something needs input now.
    let app_reading = inner.recv_polls != timers.seen_recv_polls;
    timers.seen_recv_polls = inner.recv_polls;
    let may_read = !inner.recv_waiting() && (!app_reading || inner.read_wanted);
    for _ in 0..READ_BUDGET {
        inner.flush_with_driver_waker();
        if !may_read
            || inner.recv_waiting()
            || inner.read_done()
            || (inner.queue_len() >= max_queue && !inner.discard_messages)
            || inner.pending_write_len() > shared.config.write_limit
        {
            break;
        }
        inner.process_events(max_queue);
        if inner.queue_len() >= max_queue && !inner.discard_messages {
            break;
        }
        if inner.poll_read_socket(cx).is_pending() {
            // The driver now owns the read registration: it is woken when data comes.
            inner.read_wanted = false;
            break;
        }
        inner.process_events(max_queue);
    }
    inner.flush_with_driver_waker();

    // A keepalive ping that stays unanswered fails the connection.
    if inner.pings.is_empty() {
        timers.ping_deadline = None;
    } else if let (true, Some(now)) = (due(timers.ping_deadline), now) {
        let timeout = timers.ping_timeout.unwrap_or(FAR_FUTURE);
        match inner.pings.front().map(|ping| ping.sent) {
            Some(sent) if now >= sent + timeout => {
                tracing::debug!("keepalive ping timeout");
                inner.timed_out = Some("keepalive ping timeout");
                inner
                    .proto
                    .fail(CloseCode::INTERNAL_ERROR, "keepalive ping timeout");
                inner.flush_with_driver_waker();
                timers.ping_deadline = None;
            }
            // An older ping was answered: the next one's deadline.
            Some(sent) => timers.ping_deadline = Some(sent + timeout),
            None => timers.ping_deadline = None,
        }
    }

    // Once a close is under way, the peer has close_timeout to finish it.
    if inner.proto.close_expected() || inner.read_done() {
        if timers.close_deadline.is_none() {
            let timeout = timers.close_timeout.unwrap_or(FAR_FUTURE);
            timers.close_deadline = Some(now.unwrap_or_else(Instant::now) + timeout);
        }
        if due(timers.close_deadline) {
            tracing::debug!("close timeout");
            if inner.timed_out.is_none() && !inner.proto.connection_closed().is_ok() {
                inner.timed_out = Some("close timeout");
            }
            inner.terminate();
        }
    }

    if inner.check_terminated() {
        return Poll::Ready(());
    }

    // Look again later in case reading is left to nobody (see WATCHDOG). Not while a
    // recv() waits for data: it owns reading, and when it returns it re-arms the watchdog
    // (`watchdog_armed`), so idle connections cost no periodic wakeups.
    // Disarming happens only when the deadline passes, so a busy connection costs at most
    // one disarm and one re-arm per period, never a wakeup per message.
    if !inner.watchdog_armed {
        timers.watchdog = None;
    } else if timers.watchdog.is_none() {
        timers.watchdog = Some(now.unwrap_or_else(Instant::now) + WATCHDOG);
    } else if let (true, Some(now)) = (due(timers.watchdog), now) {
        if inner.recv_waiting() && !inner.read_wanted {
            inner.watchdog_armed = false;
            timers.watchdog = None;
        } else {
            timers.watchdog = Some(now + WATCHDOG);
        }
    }
    drop(inner);
    timers.arm(cx);
    Poll::Pending
}
