//! The listening socket, the worker threads, and stopping them.

use std::{
    io,
    net::{SocketAddr, TcpListener, ToSocketAddrs},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
};

use crate::{Handler, Options, buffers::ProvidedBuffers, worker::Worker};

/// What the workers of a server share.
pub(crate) struct Shared {
    pub(crate) options: Options,
    /// Connections open, handshakes included, for `max_connections`.
    pub(crate) open: AtomicUsize,
    /// Set by [`ShutdownHandle::shutdown`].
    pub(crate) stop: AtomicBool,
    /// One eventfd per worker, written to wake it for shutdown.
    pub(crate) wake_fds: Vec<OwnedFd>,
}

/// Checks that this kernel runs what the engine needs: a ring with provided buffers (5.19
/// and later; multishot receive needs 6.0). Containers often forbid io_uring altogether
/// (seccomp); callers fall back to another engine when this fails.
///
/// ```
/// match sockjet_uring::probe() {
///     Ok(()) => println!("io_uring available"),
///     Err(error) => println!("no io_uring: {error}"),
/// }
/// ```
///
/// # Errors
///
/// The kernel's refusal.
pub fn probe() -> io::Result<()> {
    // On a thread of its own: tearing a ring down queues work for the thread that made
    // it, which interrupts that thread's next blocking call with a timeout (EINTR).
    thread::spawn(probe_here)
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the io_uring probe panicked")))
}

fn probe_here() -> io::Result<()> {
    let ring = crate::worker::new_ring()?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for code in [
        io_uring::opcode::AcceptMulti::CODE,
        io_uring::opcode::RecvMulti::CODE,
        io_uring::opcode::Send::CODE,
        io_uring::opcode::Close::CODE,
        io_uring::opcode::AsyncCancel::CODE,
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring operation {code} not supported"),
            ));
        }
    }
    let buffers = ProvidedBuffers::register(&ring, 2, 64)?;
    buffers.unregister(&ring);
    // Multishot receive (6.0) is not in the probe: ask for the kernel's version.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < (6, 0) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "multishot receive needs Linux 6.0, this is {}",
                release.trim()
            ),
        ));
    }
    Ok(())
}

/// A WebSocket server on io_uring: bind, then [`run`](Self::run) a handler on it.
pub struct Server {
    /// One listening socket per worker (SO_REUSEPORT: the kernel spreads connections over
    /// them), or one that all share.
    listeners: Vec<TcpListener>,
    /// Made with the server, so that a shutdown handle taken before `run` reaches the
    /// workers.
    shared: Arc<Shared>,
}

/// Stops a running [`Server`] gracefully: no new connections, every open one closed with
/// 1001, and [`Server::run`] returns once they are closed (or after
/// [`Options::shutdown_timeout`]). Cheap to clone; usable from any thread.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use sockjet_uring::{Options, Server};
/// # struct Echo;
/// # impl sockjet_uring::Handler for Echo {
/// #     fn message(&mut self, s: &mut sockjet_uring::Socket<'_>, m: sockjet_uring::Message) { let _ = s.send(m); }
/// # }
/// let server = Server::bind("127.0.0.1:0", Options::default())?;
/// let handle = server.shutdown_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     handle.shutdown();
/// });
/// server.run(|| Echo)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Starts the shutdown; returns at once (see the example above).
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for fd in &self.shared.wake_fds {
            let one = 1u64;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            #[allow(unsafe_code)]
            unsafe {
                libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8)
            };
        }
    }
}

impl Server {
    /// Binds a TCP listener on `addr` for each of `options.threads` workers, sharing the
    /// port with `SO_REUSEPORT` so that the kernel spreads new connections over the
    /// workers (one listener that all of them accept from would give nearly every
    /// connection to the first worker to wait on it). `TCP_NODELAY` is set on each, and
    /// the sockets they accept inherit it on Linux.
    ///
    /// ```no_run
    /// use sockjet_uring::{Options, Server};
    /// let server = Server::bind("127.0.0.1:0", Options { threads: 2, ..Default::default() })?;
    /// assert_ne!(server.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Binding failed, or the eventfds could not be made.
    pub fn bind(addr: impl ToSocketAddrs, options: Options) -> io::Result<Self> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match bind_all(addr, options.threads.max(1)) {
                Ok(listeners) => return Self::with_listeners(listeners, options),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to")
        }))
    }

    /// Serves on a listener bound elsewhere, which every worker accepts from.
    ///
    /// ```no_run
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let server = sockjet_uring::Server::from_listener(listener, Default::default())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The eventfds could not be made.
    pub fn from_listener(listener: TcpListener, options: Options) -> io::Result<Self> {
        Self::from_listeners(vec![listener], options)
    }

    /// Serves on listeners bound elsewhere, worker `i` accepting from listener `i` modulo
    /// their number: for sockets that share a port with `SO_REUSEPORT` (as
    /// [`bind`](Self::bind) makes them), one per worker. They are made blocking (a
    /// non-blocking socket would fail the ring's accept with EAGAIN instead of waiting) and
    /// get `TCP_NODELAY`.
    ///
    /// ```no_run
    /// let listeners = vec![std::net::TcpListener::bind("127.0.0.1:0")?];
    /// let server = sockjet_uring::Server::from_listeners(listeners, Default::default())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// No listener, a socket option could not be set, or the eventfds could not be made.
    pub fn from_listeners(listeners: Vec<TcpListener>, options: Options) -> io::Result<Self> {
        if listeners.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener"));
        }
        for listener in &listeners {
            listener.set_nonblocking(false)?;
            socket2::SockRef::from(listener).set_tcp_nodelay(true)?;
        }
        Self::with_listeners(listeners, options)
    }

    fn with_listeners(listeners: Vec<TcpListener>, options: Options) -> io::Result<Self> {
        let mut fds = Vec::new();
        for _ in 0..options.threads.max(1) {
            // SAFETY: eventfd takes no pointers; the result is checked before use.
            #[allow(unsafe_code)]
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
            #[allow(unsafe_code)]
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(Self {
            listeners,
            shared: Arc::new(Shared {
                options,
                open: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
                wake_fds: fds,
            }),
        })
    }

    /// The address the server listens on.
    ///
    /// ```no_run
    /// let server = sockjet_uring::Server::bind("127.0.0.1:0", Default::default())?;
    /// println!("ws://{}", server.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].local_addr()
    }

    /// A handle to stop the server with (see [`ShutdownHandle`]).
    ///
    /// ```no_run
    /// let server = sockjet_uring::Server::bind("127.0.0.1:0", Default::default())?;
    /// let handle = server.shutdown_handle();
    /// handle.shutdown(); // run() will return at once
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs the workers, each with a handler from `new_handler`, until a shutdown
    /// completes. Blocks the calling thread.
    ///
    /// ```no_run
    /// use sockjet_uring::{Handler, Message, Server, Socket};
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
    ///         let _ = socket.send(message);
    ///     }
    /// }
    /// Server::bind("127.0.0.1:8765", Default::default())?.run(|| Echo)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A worker could not set up its ring, or its ring failed.
    pub fn run<H, F>(self, new_handler: F) -> io::Result<()>
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let new_handler = Arc::new(new_handler);
        let mut threads = Vec::new();
        for (index, wake) in self.shared.wake_fds.iter().enumerate() {
            let shared = Arc::clone(&self.shared);
            let new_handler = Arc::clone(&new_handler);
            let wake_fd = wake.as_raw_fd();
            let listener = self.listeners[index % self.listeners.len()].as_raw_fd();
            let thread = thread::Builder::new()
                .name(format!("sockjet-uring-{index}"))
                .spawn(move || Worker::new(shared, listener, wake_fd, new_handler())?.run())?;
            threads.push(thread);
        }
        let mut result = Ok(());
        for thread in threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")));
            if let Err(error) = outcome {
                if result.is_ok() {
                    // Stop the others too.
                    self.shutdown_handle().shutdown();
                    result = Err(error);
                }
            }
        }
        result
    }
}

/// `threads` listening sockets on `addr` (the first one's port for the others when `addr`
/// asks for any port), with SO_REUSEPORT when there are several.
fn bind_all(addr: SocketAddr, threads: usize) -> io::Result<Vec<TcpListener>> {
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(threads);
    for _ in 0..threads {
        let at = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM.cloexec(),
            None,
        )?;
        // As std's TcpListener::bind: a restarted server can bind at once.
        socket.set_reuse_address(true)?;
        if threads > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.set_tcp_nodelay(true)?;
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}
