//! One open connection's socket I/O: pre-encoded data frames and control frames out,
//! server frames in, and the closing handshake.
//!
//! Reads and writes never wait on each other: the owner waits for readiness
//! ([`Session::ready`]), then reads what is there and writes what it can. A task that
//! waited in `write_all` instead could deadlock with an echo server that stopped reading
//! because its own writes to us were blocked.

use std::{cell::RefCell, fmt, io, mem, sync::Arc, time::Duration};

use sockjet_proto::frame::OpCode;
use tokio::{
    io::{Interest, Ready},
    net::TcpStream,
};

use super::{
    dial::Opened,
    frames::{EncodedMessage, close_frame, encode_frame, pong_frame},
    reader::{FrameError, FrameReader, ServerFrame},
    stats::{ErrorKind, Recorder},
};

/// Size of the buffer reads go into: large, so that a busy connection drains its socket
/// in few system calls.
const READ_BUFFER_SIZE: usize = 64 * 1024;

thread_local! {
    /// One read buffer per worker thread, not per connection: a read goes through it and
    /// is parsed at once, so tens of thousands of connections need no 64 KiB each.
    static READ_BUFFER: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; READ_BUFFER_SIZE].into_boxed_slice());
}

/// A data message received, as the reader saw it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Echo<'a> {
    /// Payload length on the wire (compressed, if `compressed`).
    pub(crate) wire_len: u64,
    /// Whether it came compressed (RSV1).
    pub(crate) compressed: bool,
    /// Its compressed payload, for the message captured to check its inflated length.
    pub(crate) captured: Option<&'a [u8]>,
    /// The first bytes of its payload, with [`Session::keep_heads`]; empty otherwise.
    pub(crate) head: &'a [u8],
}

/// What a read found.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum ReadOutcome {
    /// The connection is still open (the server may have sent a close frame: see
    /// [`Session::close_received`]).
    Open,
    /// The server closed TCP.
    Eof,
}

/// Why a connection ended badly.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// A read or write failed.
    Io(io::Error),
    /// The server broke the protocol.
    Protocol(FrameError),
    /// The server closed TCP without a close frame.
    Eof,
    /// The server did not answer our close frame in time.
    CloseTimeout,
}

impl SessionError {
    /// The kind under which the error is counted.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Io(_) => ErrorKind::Io,
            Self::Protocol(_) => ErrorKind::Protocol,
            Self::Eof => ErrorKind::Eof,
            Self::CloseTimeout => ErrorKind::CloseTimeout,
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => f.write_str(&crate::io_message(error)),
            Self::Protocol(error) => write!(f, "protocol error: {error}"),
            Self::Eof => f.write_str("the server closed TCP without a close frame"),
            Self::CloseTimeout => f.write_str("no close frame from the server in time"),
        }
    }
}

impl From<io::Error> for SessionError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// An open connection driven by `bench`.
#[derive(Debug)]
pub(crate) struct Session {
    stream: TcpStream,
    reader: FrameReader,
    /// Server bytes that arrived with the handshake response, parsed at the first read.
    leftover: Vec<u8>,
    /// The masking key of every frame we send.
    mask: [u8; 4],
    /// The message sent by [`queue_data`](Self::queue_data), if any.
    message: Option<Arc<EncodedMessage>>,
    /// Data frames queued and not completely written.
    data_frames: u64,
    /// The frame of the message's batch the first of them is.
    data_frame: usize,
    /// Bytes of the first of them already written.
    data_offset: usize,
    /// Control frames to write, only ever between two data frames; and the frames of
    /// [`queue_frame`](Self::queue_frame).
    control: Vec<u8>,
    /// Bytes of `control` already written.
    control_written: usize,
    close_sent: bool,
    /// The server's close frame, once received: its code, `None` if it had none.
    close_received: Option<Option<u16>>,
    /// Pings answered so far.
    pings: u64,
    /// The server is a plain TCP echo of our own frames (`--floor`): they come back
    /// masked, and it answers a close frame with its echo and never closes TCP first.
    floor: bool,
}

impl Session {
    /// Takes over a connection that `dial` opened; `message` is what
    /// [`queue_data`](Self::queue_data) will send.
    pub(crate) fn new(opened: Opened, message: Option<Arc<EncodedMessage>>, mask: [u8; 4]) -> Self {
        Self {
            stream: opened.stream,
            reader: FrameReader::new(opened.compression.is_some()),
            leftover: opened.leftover,
            mask,
            message,
            data_frames: 0,
            data_frame: 0,
            data_offset: 0,
            control: Vec::new(),
            control_written: 0,
            close_sent: false,
            close_received: None,
            pings: 0,
            floor: false,
        }
    }

    /// Takes the server for a plain TCP echo (`--floor`): accepts our own masked frames
    /// back, and ends the closing handshake as soon as our close frame comes back
    /// (echoed), without waiting for the server to close TCP, which it never does.
    pub(crate) fn expect_raw_echo(&mut self) {
        self.floor = true;
        self.reader.accept_masked();
    }

    /// Keeps the payload of the next compressed message for [`Echo::captured`].
    pub(crate) fn capture_next_compressed(&mut self) {
        self.reader.capture_next_compressed();
    }

    /// Keeps the first bytes of every message received, for [`Echo::head`].
    pub(crate) fn keep_heads(&mut self) {
        self.reader.keep_heads();
    }

    /// Queues `frame`, a complete client frame encoded by the caller (a message that
    /// differs each time, unlike the one [`queue_data`](Self::queue_data) repeats), to be
    /// written in order with the control frames; nothing once closing. Only for a session
    /// without a pre-encoded message, whose data frames it would otherwise cut into.
    pub(crate) fn queue_frame(&mut self, frame: &[u8]) {
        debug_assert!(
            self.message.is_none(),
            "queue_frame with a pre-encoded message"
        );
        if !self.close_sent {
            self.control.extend_from_slice(frame);
        }
    }

    /// The server's close code, once its close frame arrived (`Some(None)`: no code).
    /// The modes use [`stop_after`](Self::stop_after), which counts it too.
    #[cfg(test)]
    pub(crate) fn close_received(&self) -> Option<Option<u16>> {
        self.close_received
    }

    /// Pings answered so far.
    pub(crate) fn pings(&self) -> u64 {
        self.pings
    }

    /// Starts the message's frames at frame `frame` of its batch (before any is queued).
    pub(crate) fn start_at_frame(&mut self, frame: usize) {
        debug_assert_eq!(self.data_frames, 0, "frames already queued");
        self.data_frame = frame;
    }

    /// Queues `count` more copies of the message; nothing once closing.
    pub(crate) fn queue_data(&mut self, count: u64) {
        if self.message.is_some() && !self.close_sent {
            self.data_frames += count;
        }
    }

    /// Queues a close frame with `code` (none if `None`), after the data frame being
    /// written if any; the data frames not started yet are dropped.
    pub(crate) fn queue_close(&mut self, code: Option<u16>) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        self.data_frames = u64::from(self.data_offset > 0);
        let frame = match code {
            Some(code) => close_frame(code, self.mask),
            None => encode_frame(OpCode::Close, false, &[], self.mask),
        };
        self.control.extend_from_slice(&frame);
    }

    /// Whether there is something to write.
    pub(crate) fn wants_write(&self) -> bool {
        self.control_written < self.control.len() || self.data_frames > 0
    }

    /// Waits until the socket can be read, or written if there is something to write.
    pub(crate) async fn ready(&self) -> io::Result<Ready> {
        let interest = if self.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.stream.ready(interest).await
    }

    /// Writes what can be written without waiting.
    ///
    /// # Errors
    ///
    /// If the socket fails (the server reset the connection, for instance).
    pub(crate) fn write_pending(&mut self) -> io::Result<()> {
        loop {
            let written = if self.control_written < self.control.len() && self.data_offset == 0 {
                let chunk = &self.control[self.control_written..];
                match try_io(self.stream.try_write(chunk))? {
                    Some(written) => {
                        self.control_written += written;
                        if self.control_written == self.control.len() {
                            self.control.clear();
                            self.control_written = 0;
                        }
                        written
                    }
                    None => return Ok(()),
                }
            } else if let (Some(message), true) = (&self.message, self.data_frames > 0) {
                let queued = usize::try_from(self.data_frames).unwrap_or(usize::MAX);
                let chunk = message.frames_from(self.data_frame, self.data_offset, queued);
                match try_io(self.stream.try_write(chunk))? {
                    Some(written) => {
                        let (completed, frame, offset) =
                            message.advance(self.data_frame, self.data_offset, written);
                        self.data_frames -= completed as u64;
                        self.data_frame = frame;
                        self.data_offset = offset;
                        written
                    }
                    None => return Ok(()),
                }
            } else {
                return Ok(());
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
    }

    /// Reads what has arrived (one read, of up to 64 KiB) and handles it: answers pings,
    /// notes a close frame (and answers it), and hands each data message to `on_echo`.
    ///
    /// # Errors
    ///
    /// If the socket fails or the server broke the protocol.
    pub(crate) fn read_available(
        &mut self,
        on_echo: &mut impl FnMut(Echo<'_>),
    ) -> Result<ReadOutcome, SessionError> {
        if !self.leftover.is_empty() {
            let leftover = mem::take(&mut self.leftover);
            self.handle(&leftover, on_echo)?;
        }
        READ_BUFFER.with_borrow_mut(|buffer| {
            let mut read = 0;
            let result = self.stream.try_io(Interest::READABLE, || {
                read = self.stream.try_read(buffer)?;
                if read > 0 && read < buffer.len() {
                    // A short read drained the socket. Saying "would block" makes tokio
                    // clear the readiness, as its own `poll_read` does after a short read,
                    // which spares the next read a system call that would only return
                    // EAGAIN: a third of the calls at depth 1. No wake-up is lost: tokio
                    // clears only if no readiness event came since before this read.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            match (try_io(result)?, read) {
                (Some(0), _) => Ok(ReadOutcome::Eof),
                (_, 0) => Ok(ReadOutcome::Open),
                (_, read) => {
                    self.handle(&buffer[..read], on_echo)?;
                    Ok(ReadOutcome::Open)
                }
            }
        })
    }

    /// Parses server bytes.
    fn handle(
        &mut self,
        data: &[u8],
        on_echo: &mut impl FnMut(Echo<'_>),
    ) -> Result<(), SessionError> {
        let Self {
            reader,
            control,
            mask,
            close_sent,
            close_received,
            pings,
            ..
        } = self;
        let result = reader.feed(data, &mut |frame| match frame {
            ServerFrame::Message {
                wire_len,
                compressed,
                captured,
                head,
            } => on_echo(Echo {
                wire_len,
                compressed,
                captured,
                head,
            }),
            ServerFrame::Ping(payload) => {
                // RFC 6455 §5.5.2: answer with a pong with the same payload, unless
                // closing: nothing may follow our close frame.
                if !*close_sent && close_received.is_none() {
                    control.extend_from_slice(&pong_frame(payload, *mask));
                    *pings += 1;
                }
            }
            ServerFrame::Pong => {}
            ServerFrame::Close(code) => {
                close_received.get_or_insert(code);
            }
        });
        // RFC 6455 §5.5.1: answer a close frame with one, echoing its code.
        if let Some(code) = self.close_received {
            self.queue_close(code);
        }
        result.map_err(SessionError::Protocol)
    }

    /// Runs the closing handshake: sends a close frame with `code` (unless one was sent),
    /// waits for the server's, then for the server to close TCP, within `timeout`.
    /// Returns the server's close code.
    ///
    /// Waiting for the server to close TCP first (RFC 6455 §7.1.1) leaves the TIME_WAIT
    /// state on its side: a client in TIME_WAIT holds its port for a minute, and would run
    /// out of ports under `--connect-rate`. A plain TCP echo
    /// ([`expect_raw_echo`](Self::expect_raw_echo)) sends our close frame back and keeps
    /// the connection open: the handshake ends with that echo, everything the server had
    /// to send read by then, and dropping the session closes TCP.
    ///
    /// # Errors
    ///
    /// If no close frame arrives in time, or the connection fails before it does.
    pub(crate) async fn close(
        &mut self,
        code: u16,
        timeout: Duration,
    ) -> Result<Option<u16>, SessionError> {
        self.queue_close(Some(code));
        let handshake = async {
            loop {
                if let (true, Some(code)) = (self.floor, self.close_received) {
                    return Ok(code);
                }
                self.write_pending()?;
                let ready = self.ready().await?;
                if ready.is_readable() && self.read_available(&mut |_| {})? == ReadOutcome::Eof {
                    return match self.close_received {
                        Some(code) => Ok(code),
                        None => Err(SessionError::Eof),
                    };
                }
            }
        };
        let result = tokio::time::timeout(timeout, handshake)
            .await
            .unwrap_or(Err(SessionError::CloseTimeout));
        match (result, self.close_received) {
            (Ok(code), _) => Ok(code),
            // The close frames were exchanged; the end of TCP is the server's business.
            (Err(_), Some(code)) => Ok(code),
            (Err(error), None) => Err(error),
        }
    }
}

/// Why a connection's run ended early: the kind of error and its description.
pub(crate) type Failed = (ErrorKind, String);

impl Session {
    /// Ends a connection's run: counts its pings, and how it failed if it did (after
    /// answering the server's close frame, if that is what ended it); else runs the
    /// closing handshake with 1000 and counts the server's close code.
    pub(crate) async fn end(
        mut self,
        failed: Option<Failed>,
        close_timeout: Duration,
        recorder: &mut Recorder,
    ) {
        recorder.pings_answered(self.pings);
        match failed {
            Some((kind, detail)) => {
                recorder.shared().error(kind, || detail);
                // After a failed socket or a protocol error there is nobody worth
                // waiting for.
                if kind == ErrorKind::ClosedByServer {
                    let _ = self.close(1000, close_timeout).await;
                }
            }
            None => match self.close(1000, close_timeout).await {
                Ok(code) => recorder.shared().close_code(code),
                Err(error) => recorder.shared().error(error.kind(), || error.to_string()),
            },
        }
    }

    /// Whether a read loop must stop after a read that ended with `outcome`, and the
    /// failure to report: a socket or protocol error, the end of TCP without a close frame,
    /// or the server's close frame (its code counted). `None`: read on.
    pub(crate) fn stop_after(
        &self,
        outcome: Result<ReadOutcome, SessionError>,
        recorder: &Recorder,
    ) -> Option<Failed> {
        match outcome {
            Err(error) => Some((error.kind(), error.to_string())),
            Ok(ReadOutcome::Eof) => Some((ErrorKind::Eof, SessionError::Eof.to_string())),
            Ok(ReadOutcome::Open) => self.closed_by_server(recorder),
        }
    }

    /// The failure to report after the server's close frame ended a run, counting its
    /// code; `None` if no close frame came.
    fn closed_by_server(&self, recorder: &Recorder) -> Option<Failed> {
        let code = self.close_received?;
        recorder.shared().close_code(code);
        let code = code.map_or_else(|| "no code".to_owned(), |code| code.to_string());
        Some((
            ErrorKind::ClosedByServer,
            format!("the server closed the connection ({code}) during the run"),
        ))
    }
}

/// `Some(n)` for `n` bytes read or written, `None` for "would block".
fn try_io(result: io::Result<usize>) -> io::Result<Option<usize>> {
    match result {
        Ok(n) => Ok(Some(n)),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use sockjet_proto::{Config, Event, Message, Protocol, Side};
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
    };

    use super::*;
    use crate::bench::frames::PayloadKind;

    /// A session on one end of a loopback connection, and the other end.
    async fn pair(message: Option<Arc<EncodedMessage>>, leftover: &[u8]) -> (Session, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let opened = Opened {
            stream: client,
            leftover: leftover.to_vec(),
            compression: None,
            extensions: None,
            connect_time: Duration::ZERO,
        };
        (Session::new(opened, message, [1, 2, 3, 4]), server)
    }

    /// Reads from `server` until `count` events, through a server-side core.
    async fn server_events(server: &mut TcpStream, count: usize) -> Vec<Event> {
        let mut core = Protocol::new(Side::Server, Config::default());
        let mut events = Vec::new();
        let mut buffer = vec![0; 4096];
        while events.len() < count {
            let read = server.read(&mut buffer).await.unwrap();
            assert_ne!(read, 0, "EOF after {events:?}");
            core.receive_data(&buffer[..read]);
            while let Some(event) = core.next_event() {
                events.push(event);
            }
        }
        events
    }

    #[tokio::test]
    async fn data_pongs_and_close_go_out_as_valid_frames() {
        let message = Arc::new(EncodedMessage::new(
            PayloadKind::Text,
            &[b"hello".to_vec()],
            None,
            [1, 2, 3, 4],
            2,
        ));
        // The server's ping arrived with the handshake response.
        let (mut session, mut server) = pair(Some(message), b"\x89\x02hi").await;
        session
            .read_available(&mut |_| panic!("no data yet"))
            .unwrap();
        session.queue_data(3);
        session.write_pending().unwrap();
        session.queue_close(Some(1000));
        session.write_pending().unwrap();
        assert!(!session.wants_write());
        let events = server_events(&mut server, 5).await;
        assert!(
            matches!(&events[0], Event::Pong(payload) if payload == "hi"),
            "{events:?}"
        );
        for event in &events[1..4] {
            assert_eq!(event, &Event::Message(Message::text("hello")));
        }
        assert!(matches!(&events[4], Event::Close(Some(frame)) if frame.code == 1000.into()));
        assert_eq!(session.pings(), 1);
    }

    #[tokio::test]
    async fn echoes_are_counted_and_the_close_handshake_completes() {
        let (mut session, mut server) = pair(None, b"").await;
        server
            .write_all(b"\x81\x03abc\x02\x01x\x80\x02yz\x88\x02\x03\xe8")
            .await
            .unwrap();
        let mut lengths = Vec::new();
        while session.close_received().is_none() {
            session.ready().await.unwrap();
            session
                .read_available(&mut |echo| lengths.push(echo.wire_len))
                .unwrap();
        }
        assert_eq!(lengths, [3, 3]);
        // The server closes TCP once it has our answer.
        let closing = tokio::spawn(async move {
            let events = server_events(&mut server, 1).await;
            drop(server);
            events
        });
        let code = session.close(1001, Duration::from_secs(5)).await.unwrap();
        assert_eq!(code, Some(1000));
        let events = closing.await.unwrap();
        // Our answer echoes the server's code, not the one we would have sent.
        assert!(matches!(&events[0], Event::Close(Some(frame)) if frame.code == 1000.into()));
    }

    #[tokio::test]
    async fn a_raw_tcp_echo_ends_the_close_with_the_echo_of_ours() {
        let message = Arc::new(EncodedMessage::new(
            PayloadKind::Binary,
            &[vec![9; 1000]],
            None,
            [1, 2, 3, 4],
            4,
        ));
        let (mut session, mut server) = pair(Some(message), b"").await;
        session.expect_raw_echo();
        // The server returns every byte as it came, and never closes TCP first.
        let echo = tokio::spawn(async move {
            let mut buffer = vec![0; 64 * 1024];
            let mut echoed = 0;
            loop {
                match server.read(&mut buffer).await {
                    Ok(0) | Err(_) => return echoed,
                    Ok(read) => {
                        if server.write_all(&buffer[..read]).await.is_err() {
                            return echoed;
                        }
                        echoed += read;
                    }
                }
            }
        });
        session.queue_data(4);
        let mut lengths = Vec::new();
        while lengths.len() < 4 {
            session.write_pending().unwrap();
            session.ready().await.unwrap();
            session
                .read_available(&mut |echo| lengths.push(echo.wire_len))
                .unwrap();
        }
        assert_eq!(lengths, [1000; 4]);
        // Two more in flight when the run ends: their echoes are read through.
        session.queue_data(2);
        session.write_pending().unwrap();
        let started = std::time::Instant::now();
        let code = session.close(1000, Duration::from_secs(5)).await.unwrap();
        assert_eq!(code, Some(1000), "the echo of our own close frame");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no wait for TCP's end"
        );
        assert_eq!(session.close_received(), Some(Some(1000)));
        drop(session);
        // 6 frames of 1008 bytes and a close frame of 8, all echoed; then TCP's end.
        assert_eq!(echo.await.unwrap(), 6 * 1008 + 8);
    }

    #[tokio::test]
    async fn a_silent_server_times_the_close_out() {
        let (mut session, _server) = pair(None, b"").await;
        let result = session.close(1000, Duration::from_millis(50)).await;
        assert!(
            matches!(result, Err(SessionError::CloseTimeout)),
            "{result:?}"
        );
    }
}
