//! A worker thread's event loop: one ring, its connections, their deadlines.
//!
//! Each pass submits everything queued since the last one and waits for completions in
//! one `io_uring_enter`, then handles the completions: data is fed to the connection's
//! protocol, the handler runs, and what it sent goes into the ring as a send, to be
//! submitted with the next pass. Per connection the ring holds at most one multishot
//! receive, one send and one shutdown; a connection's slot is freed (and its socket
//! closed) only once none of them is left, so no completion outlives what it refers to.
//! While the worker is busy, its waits gather completions a little longer (`batching.rs`).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    io,
    os::fd::RawFd,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use io_uring::{
    IoUring, cqueue, opcode,
    squeue::{self, Entry},
    types,
};
use sockjet_proto::{
    CloseCode, Event, ServerProtocol, State,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
};

use crate::{
    Handler, Socket, SocketId,
    batching::Batching,
    buffers::{GROUP, ProvidedBuffers},
    conn::{Conn, InFlight, Phase},
    low_water::wait_for_rest_of_frame,
    server::Shared,
};

/// What a completion is for (the top byte of its user data).
const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_CANCEL: u64 = 5;
const OP_CLOSE: u64 = 6;
const OP_WAKE: u64 = 7;
const OP_RECV_DIRECT: u64 = 8;

/// `IORING_RECVSEND_POLL_FIRST`: wait for readiness before the first attempt.
const RECVSEND_POLL_FIRST: u16 = 1;

/// A busy worker's wait returns before its gathering time once this many completions are
/// in (`batching.rs`). High: with 100 connections at one message in flight, a wait that
/// ended at 64 completions gathered less and saved less (4.9-6.5 us per message against
/// 4.7-4.9 for one that always waited its 50 us).
const GATHER_ENOUGH: usize = 1024;

/// A connection that fills a pool buffer, or is receiving a frame that misses this much,
/// switches to receiving straight into its protocol's buffer: large messages then cost no
/// copy out of the pool (whose buffers, taken in turn, are cold), and a large frame's
/// missing bytes come in one completion (`low_water.rs`). It switches back once a receive
/// brings less than this and less than it could.
const DIRECT_MIN: usize = 8 * 1024;

/// The most room a direct receive gets for the next message when no frame is under way
/// (`Conn::direct_last`); a larger frame's missing bytes size its receives instead.
const DIRECT_ROOM_MAX: usize = 64 * 1024;

/// Receive buffers in each worker's pool, and their size. A buffer is taken only while
/// the data in it is copied into its connection's protocol, so the pool bounds memory, not
/// connections; a receive that finds it empty ends with ENOBUFS and is posted again.
const POOL_BUFFERS: u16 = 512;
const POOL_BUFFER_SIZE: usize = DIRECT_MIN;

/// Receive buffers kept for reuse by a worker: a connection lends its buffer back once
/// it has parsed everything in it, so an idle connection holds none, and a busy one takes
/// a warm one for its next data.
const SPARE_INPUTS: usize = 32;

/// Retry delay after accept failed for want of file descriptors or memory.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Submission-queue entries per ring.
const RING_ENTRIES: u32 = 4096;

/// A completion's user data: operation, slot generation (24 bits) and slot.
fn user_data(op: u64, slot: u32, generation: u32) -> u64 {
    op << 56 | (u64::from(generation) & 0xFF_FFFF) << 32 | u64::from(slot)
}

/// Builds a ring for a worker: single issuer, task work deferred to our waits (so the
/// kernel runs completions when we ask, not by interrupting us), where the kernel has them.
pub(crate) fn new_ring() -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(RING_ENTRIES * 4)
        .build(RING_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(RING_ENTRIES * 4)
                .build(RING_ENTRIES)
        })
}

/// What a handler callback gets for an open connection.
fn socket_of(id: SocketId, conn: &mut Conn) -> Socket<'_> {
    Socket {
        id,
        in_flight: conn.in_flight_len(),
        fd: conn.fd,
        protocol: conn.protocol.protocol_mut(),
    }
}

/// A slot of the connection table.
struct Slot {
    generation: u32,
    /// Boxed: the table then grows by pointers, and a connection's memory is its own
    /// allocation rather than a share of a vector that doubles.
    conn: Option<Box<Conn>>,
}

/// One worker thread's engine.
pub(crate) struct Worker<H> {
    // Dropped first: the ring, then the buffers it used.
    ring: IoUring,
    buffers: ProvidedBuffers,
    buffers_staged: bool,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Deadlines of connections: (when, slot, generation); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    handler: H,
    shared: Arc<Shared>,
    /// The listening socket this worker accepts from.
    listener: RawFd,
    /// This worker's eventfd, written to wake it for shutdown, and the read posted on it.
    wake_fd: RawFd,
    wake_value: Box<u64>,
    accepting: bool,
    accept_retry: Option<Instant>,
    /// Set once shutting down: when the remaining connections are closed anyway.
    stopping: Option<Instant>,
    completions: Vec<(u64, i32, u32)>,
    now: Instant,
    /// Input buffers lent back by idle connections (at most `SPARE_INPUTS`).
    spare_inputs: Vec<bytes::BytesMut>,
    /// Connections that completions of this pass changed (`Conn::dirty`).
    dirty: Vec<u32>,
    /// Whether waits gather completions (while busy).
    batching: Batching,
    /// Flags of a socket's close: no completion when it succeeds, where the kernel allows
    /// (`IOSQE_CQE_SKIP_SUCCESS`, 5.17). Nothing waits for a close, and a close runs at
    /// once, so its completion would end the wait it was submitted with: a pass more per
    /// connection.
    close_flags: squeue::Flags,
}

impl<H: Handler> Worker<H> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        listener: RawFd,
        wake_fd: RawFd,
        handler: H,
    ) -> io::Result<Self> {
        let ring = new_ring()?;
        let buffers = ProvidedBuffers::register(&ring, POOL_BUFFERS, POOL_BUFFER_SIZE)?;
        // Gathering needs the kernel's minimum wait (6.12); older ones run without it.
        let gather_wait =
            (shared.options.busy_gather_wait).filter(|_| ring.params().is_feature_min_timeout());
        let batching = Batching::new(gather_wait, GATHER_ENOUGH, Instant::now());
        let close_flags = if ring.params().is_feature_skip_cqe_on_success() {
            squeue::Flags::SKIP_SUCCESS
        } else {
            squeue::Flags::empty()
        };
        Ok(Self {
            ring,
            buffers,
            buffers_staged: false,
            slots: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            handler,
            shared,
            listener,
            wake_fd,
            wake_value: Box::new(0),
            accepting: false,
            accept_retry: None,
            stopping: None,
            completions: Vec::with_capacity(1024),
            now: Instant::now(),
            spare_inputs: Vec::with_capacity(SPARE_INPUTS),
            dirty: Vec::new(),
            batching,
            close_flags,
        })
    }

    /// Runs until shutdown completes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        self.arm_accept();
        self.arm_wake();
        loop {
            self.wait()?;
            self.now = Instant::now();
            self.batching.observe(self.now);
            self.completions.clear();
            self.completions.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for index in 0..self.completions.len() {
                let (data, result, flags) = self.completions[index];
                self.complete(data, result, flags);
            }
            self.flush();
            if self.buffers_staged {
                self.buffers.publish();
                self.buffers_staged = false;
            }
            self.fire_timers();
            if self.shared.stop.load(Ordering::Acquire) && self.stopping.is_none() {
                self.begin_shutdown();
            }
            if let Some(deadline) = self.stopping {
                if self.now >= deadline {
                    for slot in 0..self.slots.len() as u32 {
                        if let Some(conn) = self.slots[slot as usize].conn.as_mut() {
                            conn.abort = true;
                            self.after(slot);
                        }
                    }
                }
                if self.slots.len() == self.free.len() && !self.accepting {
                    break;
                }
            }
            if !self.accepting && self.stopping.is_none() {
                match self.accept_retry {
                    Some(at) if at > self.now => {}
                    _ => self.arm_accept(),
                }
            }
        }
        // Let the last closes reach the kernel.
        let _ = self.ring.submit();
        self.buffers.unregister(&self.ring);
        Ok(())
    }

    /// Submits what is queued and waits for a completion or the next deadline.
    fn wait(&mut self) -> io::Result<()> {
        let mut next = self.timers.peek().map(|Reverse((at, _, _))| *at);
        for at in [self.accept_retry, self.stopping].into_iter().flatten() {
            next = Some(next.map_or(at, |next| next.min(at)));
        }
        let (want, min_wait_usec) = self.batching.gather().unwrap_or((1, 0));
        let timeout =
            next.map(|at| types::Timespec::from(at.saturating_duration_since(Instant::now())));
        // A zero `min_wait_usec` is the kernel's "none".
        let args = types::SubmitArgs::new().min_wait_usec(min_wait_usec);
        let result = match (&timeout, min_wait_usec) {
            (None, 0) => self.ring.submit_and_wait(1),
            (None, _) => self.ring.submitter().submit_with_args(want, &args),
            (Some(timeout), _) => self
                .ring
                .submitter()
                .submit_with_args(want, &args.timespec(timeout)),
        };
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Queues an entry, submitting first if the queue is full.
    fn push(&mut self, entry: &Entry) {
        for _ in 0..3 {
            // SAFETY: every entry queued by this worker points only to memory that lives,
            // unmoved and untouched by us, until its completion: the pool's buffers; a
            // connection's send buffer or shared chunks (kept in `Conn::in_flight`) and the
            // spare capacity of its protocol's input buffer (`Conn::direct_posted`, which
            // stops `process` from parsing), whose slot is not freed while they are in the
            // ring; and `wake_value` (boxed, freed with the worker after the ring).
            #[allow(unsafe_code)]
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            let _ = self.ring.submit();
        }
        tracing::error!("io_uring submission queue stays full; an operation is lost");
    }

    fn arm_accept(&mut self) {
        let entry = opcode::AcceptMulti::new(types::Fd(self.listener))
            .build()
            .user_data(user_data(OP_ACCEPT, 0, 0));
        self.push(&entry);
        self.accepting = true;
        self.accept_retry = None;
    }

    fn arm_wake(&mut self) {
        let value: *mut u64 = &mut *self.wake_value;
        let entry = opcode::Read::new(types::Fd(self.wake_fd), value.cast(), 8)
            .build()
            .user_data(user_data(OP_WAKE, 0, 0));
        self.push(&entry);
    }

    /// Handles one completion.
    fn complete(&mut self, data: u64, result: i32, flags: u32) {
        let op = data >> 56;
        let slot = data as u32;
        let generation = (data >> 32) as u32 & 0xFF_FFFF;
        match op {
            OP_ACCEPT => return self.on_accept(result, flags),
            OP_WAKE => {
                if !self.shared.stop.load(Ordering::Acquire) && result >= 0 {
                    self.arm_wake();
                }
                return;
            }
            OP_CLOSE => return,
            _ => {}
        }
        let current = self
            .slots
            .get(slot as usize)
            .filter(|entry| entry.generation & 0xFF_FFFF == generation && entry.conn.is_some());
        if current.is_none() {
            // Cannot happen (slots outlive their operations); a buffer must still go back.
            if let Some(id) = cqueue::buffer_select(flags) {
                self.recycle(id);
            }
            return;
        }
        match op {
            OP_RECV => self.on_receive(slot, result, flags),
            OP_RECV_DIRECT => self.on_direct_receive(slot, result, flags),
            OP_SEND => self.on_send(slot, result),
            OP_CANCEL => self.conn(slot).cancelling = false,
            _ => {}
        }
        let conn = self.conn(slot);
        // A direct receive (large data) gets its send and next receive at once: there is
        // nothing to coalesce with, and waiting for the end of the pass cost 2-3% per
        // message at 10 x 16 KiB (bench/concurrent against the per-completion engine).
        if op == OP_RECV_DIRECT && !conn.dirty {
            self.after(slot);
        } else if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Puts into the ring what each connection changed by this pass's completions needs
    /// next. Once per pass rather than after each completion: the echoes of everything a
    /// connection received in the pass leave in one send, where the first completion's
    /// would otherwise hold the send and the rest wait for it to complete.
    fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            // Live: only `after` frees a slot, and it runs here once per slot.
            self.conn(slot).dirty = false;
            self.after(slot);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn conn(&mut self, slot: u32) -> &mut Conn {
        self.slots[slot as usize]
            .conn
            .as_mut()
            .expect("a live connection")
    }

    fn recycle(&mut self, id: u16) {
        self.buffers.stage(id);
        self.buffers_staged = true;
    }

    fn on_accept(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accepting = false;
        }
        if result < 0 {
            match -result {
                libc::ECANCELED => {}
                libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                    tracing::warn!(
                        error = %io::Error::from_raw_os_error(-result),
                        "cannot accept connections; retrying"
                    );
                    self.accept_retry = Some(self.now + ACCEPT_RETRY);
                }
                _ => tracing::debug!(
                    error = %io::Error::from_raw_os_error(-result),
                    "accept failed"
                ),
            }
            return;
        }
        let fd = result;
        if self.stopping.is_some() {
            self.close_fd(fd);
            return;
        }
        let mut protocol = ServerProtocol::new(self.shared.options.config.clone());
        protocol.set_server_header(None);
        let mut conn = Conn::new(fd, protocol);
        conn.counted = match self.shared.options.max_connections {
            Some(max) => self
                .shared
                .open
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                    (open < max).then_some(open + 1)
                })
                .is_ok(),
            None => {
                self.shared.open.fetch_add(1, Ordering::AcqRel);
                true
            }
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                self.slots.len() as u32 - 1
            }
        };
        self.slots[slot as usize].conn = Some(Box::new(conn));
        let deadline = self.now + self.shared.options.handshake_timeout;
        self.set_deadline(slot, Some(deadline));
        self.after(slot);
    }

    fn on_receive(&mut self, slot: u32, result: i32, flags: u32) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live");
        if !cqueue::more(flags) {
            conn.receiving = false;
        }
        match result {
            1.. => {
                self.batching.saw_receive(&mut conn.receive_record);
                let id =
                    cqueue::buffer_select(flags).expect("a multishot receive selects a buffer");
                if conn.phase != Phase::Closing && !conn.abort && !conn.peer_eof {
                    if conn.phase == Phase::Open {
                        if let Some(spare) = self.spare_inputs.pop() {
                            let protocol = conn.protocol.protocol_mut();
                            if let Some(unused) = protocol.provide_receive_buffer(spare) {
                                self.spare_inputs.push(unused);
                            }
                        }
                    }
                    // Into the buffer the protocol sizes for the frame being received, so
                    // that a large one grows it once, not by doubling.
                    conn.protocol
                        .receive_buffer()
                        .extend_from_slice(self.buffers.filled(id, result as usize));
                }
                if result as usize >= POOL_BUFFER_SIZE
                    || conn.protocol.protocol().frame_bytes_missing() >= DIRECT_MIN
                {
                    conn.direct_mode = true;
                }
                self.recycle(id);
                self.process(slot);
                self.lend_input(slot);
            }
            0 => {
                conn.receiving = false;
                if !conn.peer_eof {
                    conn.peer_eof = true;
                    conn.protocol.receive_eof();
                    self.process(slot);
                }
            }
            _ => match -result {
                // The pool ran dry: `after` posts the receive again.
                libc::ENOBUFS | libc::ECANCELED => {}
                _ => conn.abort = true,
            },
        }
    }

    /// Takes an open connection's input buffer back into the spares once everything in
    /// it was parsed (not while a direct receive may want it).
    fn lend_input(&mut self, slot: u32) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live");
        if conn.phase != Phase::Open || conn.direct_mode || conn.direct_posted {
            return;
        }
        if let Some(buffer) = conn.protocol.protocol_mut().take_idle_receive_buffer() {
            if self.spare_inputs.len() < SPARE_INPUTS {
                self.spare_inputs.push(buffer);
            }
        }
    }

    fn on_direct_receive(&mut self, slot: u32, result: i32, flags: u32) {
        let conn = self.conn(slot);
        conn.direct_posted = false;
        conn.direct_left_data = cqueue::sock_nonempty(flags);
        match result {
            1.. => {
                // Not `receive_buffer()`: the message that shared the buffer when the
                // receive was posted may be gone now, and it would rewind the buffer's
                // start over the bytes just written. Checked all the same.
                let buffer = conn.protocol.protocol_mut().input_buffer();
                let filled = buffer.len() + result as usize;
                assert!(
                    buffer.as_ptr() as usize + buffer.len() == conn.direct_at
                        && result as u32 <= conn.direct_len,
                    "the direct receive's buffer moved or overflowed"
                );
                // SAFETY: the kernel wrote `result` bytes (at most the `direct_len` it was
                // given) at `direct_at`, the start of this buffer's spare capacity (both
                // checked above), which nothing touched meanwhile.
                #[allow(unsafe_code)]
                unsafe {
                    buffer.set_len(filled)
                };
                conn.direct_last = result as u32;
                // Back to the pool once the peer sends little: a receive that did not fill
                // what it was given, with no large frame under way. One that filled it
                // leaves more waiting, so direct receives go on (a stream of large
                // messages never goes back through the pool).
                if (result as usize) < conn.direct_len as usize
                    && (result as usize) < DIRECT_MIN
                    && conn.protocol.protocol().frame_bytes_missing() < DIRECT_MIN
                {
                    conn.leave_direct_mode();
                }
                self.process(slot);
            }
            0 => {
                conn.peer_eof = true;
                conn.protocol.receive_eof();
                self.process(slot);
            }
            _ if -result == libc::ECANCELED => {}
            _ => conn.abort = true,
        }
    }

    fn on_send(&mut self, slot: u32, result: i32) {
        let write_limit = self.shared.options.write_limit;
        let conn = self.conn(slot);
        conn.send_posted = false;
        if result < 0 {
            conn.in_flight = None;
            conn.abort = true;
            return;
        }
        conn.in_flight_sent += result as usize;
        if conn.in_flight_len() > 0 {
            // A short send: the rest goes next (`after`).
            return;
        }
        conn.sent_all();
        if conn.paused && conn.unsent() <= write_limit / 2 {
            conn.paused = false;
            self.process(slot);
        }
    }

    /// Feeds the protocol's events to the handler.
    fn process(&mut self, slot: u32) {
        let Self {
            slots,
            handler,
            shared,
            now,
            ..
        } = self;
        let entry = &mut slots[slot as usize];
        let id = SocketId {
            slot,
            generation: entry.generation,
        };
        let conn = entry.conn.as_mut().expect("live");
        let options = &shared.options;
        while !conn.paused && !conn.direct_posted && !conn.abort && conn.phase != Phase::Closing {
            let Some(event) = conn.protocol.next_event() else {
                break;
            };
            match event {
                Event::Request(request) => {
                    if !conn.counted {
                        let mut response = conn
                            .protocol
                            .reject(StatusCode::SERVICE_UNAVAILABLE, "Too many connections");
                        response
                            .headers_mut()
                            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                        let _ = conn.protocol.send_response(response);
                        continue;
                    }
                    if let Some(response) = handler.request(&request) {
                        let _ = conn.protocol.send_response(response);
                        continue;
                    }
                    let accepted = match conn.protocol.send_accept(&request) {
                        Ok(true) => true,
                        Ok(false) => {
                            let response = conn.protocol.accept(&request);
                            let _ = conn.protocol.send_response(response);
                            conn.protocol.state() == State::Open
                        }
                        Err(_) => false,
                    };
                    if accepted {
                        conn.phase = Phase::Open;
                        conn.opened = true;
                        conn.keepalive_at = options.ping_interval.map(|every| *now + every);
                        handler.open(&mut socket_of(id, conn), &request);
                    }
                }
                Event::Message(message) => {
                    handler.message(&mut socket_of(id, conn), message);
                    if conn.unsent() > options.write_limit {
                        conn.paused = true;
                    }
                }
                Event::Pong(_) => {
                    if let Some(sent) = conn.ping_sent.take() {
                        conn.keepalive_at = options.ping_interval.map(|every| sent + every);
                    }
                }
                _ => {}
            }
        }
    }

    /// Puts into the ring what a connection needs next: its send, its shutdown, its
    /// receive, its cancellation, its close; and sets its deadline.
    fn after(&mut self, slot: u32) {
        let options = &self.shared.options;
        let (close_timeout, handshake_timeout) = (options.close_timeout, options.handshake_timeout);
        let ping_timeout = options.ping_timeout;
        let now = self.now;
        let generation = self.slots[slot as usize].generation;
        let conn = self.slots[slot as usize].conn.as_mut().expect("live");
        let fd = conn.fd;
        if conn.abort && conn.phase != Phase::Closing {
            conn.phase = Phase::Closing;
            // Whatever the ring still does with the socket ends now: a receive returns 0,
            // a send fails.
            // SAFETY: `fd` is this connection's socket, still open (closed only below).
            #[allow(unsafe_code)]
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR)
            };
        }
        if conn.phase == Phase::Closing {
            if !conn.in_ring() {
                self.finish(slot);
            }
            return;
        }
        let mut entries: [Option<Entry>; 2] = [None, None];
        // The next send.
        if conn.in_flight.is_none() && !conn.write_shut {
            conn.take_send();
        }
        if conn.in_flight.is_some() && !conn.send_posted {
            conn.send_posted = true;
            let sent = conn.in_flight_sent;
            let entry = match &mut conn.in_flight {
                Some(InFlight::Vectored(vectored)) => {
                    let header = vectored.aim(&conn.send_buffer, sent);
                    opcode::SendMsg::new(types::Fd(fd), header)
                        .flags(libc::MSG_NOSIGNAL as u32)
                        .build()
                }
                _ => {
                    let rest = conn.in_flight_rest();
                    opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                }
            };
            entries[0] = Some(entry.user_data(user_data(OP_SEND, slot, generation)));
        }
        // The end of our side, once everything before it is sent. A system call of its
        // own: the ring would hand IORING_OP_SHUTDOWN to a worker thread (io-wq), since it
        // cannot run without blocking, at the cost of a thread wakeup per connection.
        if conn.in_flight.is_none()
            && !conn.write_shut
            && conn.protocol.outgoing().is_empty()
            && conn.protocol.eof_to_send()
        {
            conn.write_shut = true;
            // SAFETY: `fd` is this connection's socket, open until `finish`.
            #[allow(unsafe_code)]
            if unsafe { libc::shutdown(fd, libc::SHUT_WR) } != 0 {
                conn.abort = true;
            }
        }
        // Reading: on, unless the peer ended or we wait for the peer to read; from the
        // pool (multishot) or, for large data, straight into the protocol's buffer.
        let want_receive = !conn.peer_eof && !conn.paused;
        let want_direct = want_receive && conn.direct_mode && conn.phase == Phase::Open;
        if conn.receiving && !conn.cancelling && (!want_receive || want_direct) {
            conn.cancelling = true;
            entries[1] = Some(
                opcode::AsyncCancel::new(user_data(OP_RECV, slot, generation))
                    .build()
                    .user_data(user_data(OP_CANCEL, slot, generation)),
            );
        } else if want_receive && !conn.receiving && !conn.cancelling && !conn.direct_posted {
            if want_direct {
                let missing = conn.protocol.protocol().frame_bytes_missing();
                wait_for_rest_of_frame(fd, &mut conn.low_water, missing);
                if missing == 0 {
                    // Room for a message like the last (at most DIRECT_ROOM_MAX, so that
                    // an idle connection holds no more); for as much as that when the peer
                    // streams, so that one receive takes several messages.
                    let room = if conn.direct_left_data {
                        DIRECT_ROOM_MAX
                    } else {
                        (conn.direct_last as usize).min(DIRECT_ROOM_MAX)
                    };
                    conn.make_direct_room(room);
                }
                let buffer = conn.protocol.receive_buffer();
                let spare = buffer.spare_capacity_mut();
                // Go straight to waiting, without a first try, when it would be wasted:
                // with the mark raised it would only take the part that is there; and
                // while our send is in the ring, a peer that waits for it (request and
                // response: the last receive emptied the socket) has nothing to say yet.
                // A failed try costs a lock of the socket and a receive call before the
                // poll is armed anyway (1.5-3% per message at 10 x 16 KiB); a peer that
                // streams (the last receive left data behind) is read at once.
                let poll_first =
                    if conn.low_water > 1 || (conn.send_posted && !conn.direct_left_data) {
                        RECVSEND_POLL_FIRST
                    } else {
                        0
                    };
                let len = match missing {
                    0 => spare.len(),
                    missing => missing.min(spare.len()),
                };
                conn.direct_posted = true;
                conn.direct_len = len as u32;
                conn.direct_at = spare.as_ptr() as usize;
                entries[1] = Some(
                    opcode::Recv::new(types::Fd(fd), spare.as_mut_ptr().cast(), len as u32)
                        .ioprio(poll_first)
                        .build()
                        .user_data(user_data(OP_RECV_DIRECT, slot, generation)),
                );
            } else {
                wait_for_rest_of_frame(fd, &mut conn.low_water, 0);
                conn.receiving = true;
                entries[1] = Some(
                    opcode::RecvMulti::new(types::Fd(fd), GROUP)
                        .build()
                        .user_data(user_data(OP_RECV, slot, generation)),
                );
            }
        }
        let closed = conn.protocol.state() == State::Closed
            && conn.in_flight.is_none()
            && conn.protocol.outgoing().is_empty();
        if closed && conn.peer_eof {
            conn.phase = Phase::Closing;
        }
        // The deadline: the closing handshake's, the opening handshake's or keepalive's.
        let deadline = if conn.phase == Phase::Closing {
            None
        } else if conn.protocol.close_expected() || conn.protocol.state() == State::Closed {
            Some(*conn.closing_since.get_or_insert(now) + close_timeout)
        } else if conn.phase == Phase::Handshake {
            conn.deadline.or(Some(now + handshake_timeout))
        } else {
            match (conn.ping_sent, ping_timeout) {
                (Some(sent), Some(timeout)) => Some(sent + timeout),
                (Some(_), None) => None,
                (None, _) => conn.keepalive_at,
            }
        };
        let phase = conn.phase;
        for entry in entries.iter().flatten() {
            self.push(entry);
        }
        if phase == Phase::Closing {
            return self.after(slot);
        }
        self.set_deadline(slot, deadline);
    }

    /// Closes a connection's socket and frees its slot, once the ring is done with it.
    fn finish(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        let id = SocketId {
            slot,
            generation: entry.generation,
        };
        let conn = entry.conn.take().expect("live");
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        if conn.counted {
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
        }
        self.close_fd(conn.fd);
        if conn.opened {
            let closed = conn.protocol.protocol().connection_closed();
            self.handler.closed(id, &closed);
        }
    }

    fn close_fd(&mut self, fd: RawFd) {
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .flags(self.close_flags)
            .user_data(user_data(OP_CLOSE, 0, 0));
        self.push(&entry);
    }

    fn set_deadline(&mut self, slot: u32, deadline: Option<Instant>) {
        let entry = &mut self.slots[slot as usize];
        let conn = entry.conn.as_mut().expect("live");
        if conn.deadline == deadline {
            return;
        }
        conn.deadline = deadline;
        if let Some(at) = deadline {
            self.timers.push(Reverse((at, slot, entry.generation)));
        }
    }

    fn fire_timers(&mut self) {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            let Some(conn) = entry.conn.as_mut() else {
                continue;
            };
            if conn.deadline != Some(at) {
                continue;
            }
            conn.deadline = None;
            self.on_deadline(slot);
        }
    }

    fn on_deadline(&mut self, slot: u32) {
        let now = self.now;
        let conn = self.conn(slot);
        if conn.closing_since.is_some() || conn.phase == Phase::Handshake {
            // The peer did not finish the closing (or opening) handshake in time.
            conn.abort = true;
        } else if conn.ping_sent.is_some() {
            conn.protocol
                .protocol_mut()
                .fail(CloseCode::INTERNAL_ERROR, "keepalive ping timeout");
        } else if conn.protocol.state() == State::Open {
            let payload = (now.elapsed().as_nanos() as u32).to_be_bytes();
            if conn.protocol.protocol_mut().send_ping(&payload).is_ok() {
                conn.ping_sent = Some(now);
            }
        }
        self.after(slot);
    }

    /// Stops accepting and starts the closing handshake of every open connection (1001).
    fn begin_shutdown(&mut self) {
        self.stopping = Some(self.now + self.shared.options.shutdown_timeout);
        if self.accepting {
            let entry = opcode::AsyncCancel::new(user_data(OP_ACCEPT, 0, 0))
                .build()
                .user_data(user_data(OP_CLOSE, 0, 0));
            self.push(&entry);
        }
        for slot in 0..self.slots.len() as u32 {
            let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
                continue;
            };
            match conn.phase {
                Phase::Handshake => conn.abort = true,
                Phase::Open => {
                    if conn.protocol.state() == State::Open {
                        let _ = conn
                            .protocol
                            .protocol_mut()
                            .send_close(CloseCode::GOING_AWAY, "server shutting down");
                    }
                }
                Phase::Closing => {}
            }
            self.after(slot);
        }
    }
}
