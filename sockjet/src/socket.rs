//! The byte stream under a connection, and how it reads into the protocol.
//!
//! Plain TCP is kept unboxed so that a read can wait for readiness before it takes a
//! buffer: a connection that waits for data holds no read buffer of its own. Its buffer
//! goes to a small per-thread pool and the next connection with data to read takes it.
//! Ten thousand idle connections then cost no read buffers, while busy ones reuse a
//! handful of warm buffers without allocating.

use std::{
    cell::RefCell,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use sockjet_proto::Protocol;
use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::TcpStream,
};
use tokio_util::io::poll_read_buf;

use crate::connection::Transport;

/// Spare read buffers kept per thread; beyond this, an idle connection's buffer is freed.
const SPARE_BUFFERS_PER_THREAD: usize = 32;

/// Size of the per-thread buffer that reads land in when nothing is buffered.
const SCRATCH_SIZE: usize = 64 * 1024;

/// A connection whose last read with nothing buffered brought at least this much reads
/// the next one straight into its own buffer, reserved to that size: for large messages
/// the copy out of the scratch buffer would cost as much as the unmasking.
const DIRECT_READ_MIN: usize = 8 * 1024;

/// Extra room offered to such a read beyond the size of the last one.
const DIRECT_READ_SLACK: usize = 1024;

thread_local! {
    static SPARE_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// The transport of one connection.
pub(crate) enum Socket {
    /// Plain TCP, read readiness-first.
    Tcp(TcpStream, TcpReads),
    /// Any other transport (TLS, a stream another server upgraded, an in-memory pipe):
    /// reads go straight into the protocol's buffer.
    Other(Box<dyn Transport>),
}

impl Socket {
    /// Wraps any transport.
    pub(crate) fn other(transport: impl Transport) -> Self {
        Self::Other(Box::new(transport))
    }

    /// Reads once from the socket into `proto`'s receive buffer; `Ok(0)` is EOF.
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        proto: &mut Protocol,
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Tcp(
                tcp,
                TcpReads {
                    last_read,
                    low_water,
                },
            ) => loop {
                #[cfg(target_os = "linux")]
                wake_for_rest_of_frame(tcp, low_water, proto.frame_bytes_missing());
                #[cfg(not(target_os = "linux"))]
                let _ = low_water;
                if tcp.poll_read_ready(cx)?.is_pending() {
                    // Until data comes, the buffer serves other connections.
                    park_idle_buffer(proto);
                    return Poll::Pending;
                }
                lend_spare_buffer(proto);
                let mut read = 0;
                // A short read means the socket is drained: report "would block" to
                // `try_io` so that it clears readiness now, as tokio's own `poll_read` does,
                // and the next read waits for the next event instead of costing a system
                // call that fails with EAGAIN. `try_io` takes its readiness snapshot before
                // the read, so data arriving after the read still wakes us.
                let fresh = proto.buffered_len() == 0;
                let result = if fresh && (*last_read as usize) < DIRECT_READ_MIN {
                    // Nothing buffered, so how much is coming is unknown: read up to 64 KiB
                    // into this thread's scratch buffer and copy what came. A message of up
                    // to 64 KiB then takes one system call, while the connection's own
                    // buffer grows only to what arrived.
                    SCRATCH.with(|scratch| {
                        let mut scratch = scratch.borrow_mut();
                        let offered = scratch.len();
                        let result = tcp.try_io(Interest::READABLE, || {
                            read = tcp.try_read(&mut scratch[..])?;
                            drained_if_short(read, offered)
                        });
                        if read > 0 {
                            proto.receive_data(&scratch[..read]);
                        }
                        result
                    })
                } else {
                    // Straight into the connection's own buffer: the rest of a frame, into
                    // the space reserved for it; or, with nothing buffered on a connection
                    // whose messages came in large reads, as much as last time.
                    let buffer = proto.receive_buffer();
                    // Room for a little more than last time: a read that fills exactly
                    // what was offered cannot tell a drained socket from a full one, and
                    // would cost a second read that fails with EAGAIN.
                    let expected = if fresh {
                        *last_read as usize + DIRECT_READ_SLACK
                    } else {
                        0
                    };
                    if buffer.capacity() - buffer.len() < expected {
                        buffer.reserve(expected);
                    }
                    let offered = buffer.capacity() - buffer.len();
                    tcp.try_io(Interest::READABLE, || {
                        read = tcp.try_read_buf(buffer)?;
                        drained_if_short(read, offered)
                    })
                };
                if fresh && read > 0 {
                    *last_read = read.min(SCRATCH_SIZE) as u32;
                }
                match result {
                    Ok(()) => return Poll::Ready(Ok(read)),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock && read > 0 => {
                        return Poll::Ready(Ok(read));
                    }
                    // Readiness is cleared: the next poll registers `cx`.
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Poll::Ready(Err(error)),
                }
            },
            Self::Other(transport) => {
                poll_read_buf(Pin::new(transport), cx, proto.receive_buffer())
            }
        }
    }
}

/// What reading a plain TCP connection remembers between reads.
#[derive(Default)]
pub(crate) struct TcpReads {
    /// Size of the last read that started with nothing buffered: how much to expect next
    /// time.
    last_read: u32,
    /// The socket's receive low-water mark as last set; 0 or 1 is the OS default (wake on
    /// any byte).
    low_water: u32,
}

/// Has the kernel wake this connection only once the rest of a large frame has arrived
/// (`sockjet_proto::receive_low_water` says when and how far).
#[cfg(target_os = "linux")]
fn wake_for_rest_of_frame(tcp: &TcpStream, low_water: &mut u32, missing: usize) {
    if let Some(wanted) = sockjet_proto::receive_low_water(*low_water, missing) {
        if set_receive_low_water(tcp, wanted).is_ok() {
            *low_water = wanted;
        }
    }
}

/// `setsockopt(SO_RCVLOWAT)`; neither tokio nor socket2 offers it.
#[cfg(target_os = "linux")]
fn set_receive_low_water(tcp: &TcpStream, bytes: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor is the open socket `tcp` owns for the whole call, and the
    // option's pointer and length describe the `c_int` on this stack frame.
    #[allow(unsafe_code)]
    let result = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match result {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `Err(WouldBlock)` for a short read (the socket is drained), for `try_io`.
fn drained_if_short(read: usize, offered: usize) -> io::Result<()> {
    match 0 < read && read < offered {
        true => Err(io::ErrorKind::WouldBlock.into()),
        false => Ok(()),
    }
}

/// Gives `proto` one of this thread's spare buffers if it has none; the spare stays in
/// the pool otherwise.
fn lend_spare_buffer(proto: &mut Protocol) {
    SPARE_BUFFERS.with(|spares| {
        let mut spares = spares.borrow_mut();
        if let Some(spare) = spares.pop() {
            if let Some(unused) = proto.provide_receive_buffer(spare) {
                spares.push(unused);
            }
        }
    });
}

/// Moves `proto`'s receive buffer to this thread's spares if nothing is buffered in it.
fn park_idle_buffer(proto: &mut Protocol) {
    if let Some(buffer) = proto.take_idle_receive_buffer() {
        SPARE_BUFFERS.with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARE_BUFFERS_PER_THREAD {
                spares.push(buffer);
            }
        });
    }
}

impl From<TcpStream> for Socket {
    fn from(tcp: TcpStream) -> Self {
        Self::Tcp(tcp, TcpReads::default())
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp, _) => Pin::new(tcp).poll_read(cx, buf),
            Self::Other(transport) => Pin::new(transport).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp, _) => Pin::new(tcp).poll_write(cx, buf),
            Self::Other(transport) => Pin::new(transport).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp, _) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Other(transport) => Pin::new(transport).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(tcp, _) => tcp.is_write_vectored(),
            Self::Other(transport) => transport.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp, _) => Pin::new(tcp).poll_flush(cx),
            Self::Other(transport) => Pin::new(transport).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp, _) => Pin::new(tcp).poll_shutdown(cx),
            Self::Other(transport) => Pin::new(transport).poll_shutdown(cx),
        }
    }
}
