//! One connection's state in a worker: its protocol, what the ring is doing for it, and
//! its deadline.

use std::{os::fd::RawFd, time::Instant};

use bytes::{Bytes, BytesMut};
use sockjet_proto::{Piece, ServerProtocol};

use crate::batching::ReceiveRecord;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the request head; no handler call yet.
    Handshake,
    /// Open: the handler was told (`open`) and will be told when it ends (`closed`).
    Open,
    /// The socket is being closed: waiting for the ring to finish with it.
    Closing,
}

/// What the ring is sending for a connection: memory the kernel reads until the send
/// completes, so nothing touches it meanwhile.
pub(crate) enum InFlight {
    /// The connection's send buffer, swapped out of the protocol's queue.
    Buffer,
    /// A chunk shared with a large message.
    Shared(Bytes),
    /// Several pieces in one `sendmsg`: a frame header and its payload, say.
    Vectored(Box<Vectored>),
}

/// The pieces of a vectored send, and the kernel's view of them.
pub(crate) struct Vectored {
    /// Shared chunks, in order.
    pub(crate) pieces: Vec<Bytes>,
    /// Whether the connection's send buffer follows them.
    pub(crate) with_buffer: bool,
    /// What `sendmsg` reads: the unsent rest of the pieces.
    pub(crate) iovecs: Vec<libc::iovec>,
    pub(crate) header: libc::msghdr,
}

impl Vectored {
    fn new() -> Self {
        Self {
            pieces: Vec::new(),
            with_buffer: false,
            iovecs: Vec::new(),
            // SAFETY: msghdr is plain data; all-zero is its empty value.
            #[allow(unsafe_code)]
            header: unsafe { std::mem::zeroed() },
        }
    }

    /// Total length of the pieces.
    fn len(&self, buffer: &BytesMut) -> usize {
        let buffered = if self.with_buffer { buffer.len() } else { 0 };
        self.pieces.iter().map(Bytes::len).sum::<usize>() + buffered
    }

    /// Points the message header at the pieces, `sent` bytes in.
    pub(crate) fn aim(&mut self, buffer: &BytesMut, mut sent: usize) -> *const libc::msghdr {
        self.iovecs.clear();
        let buffered: Option<&[u8]> = self.with_buffer.then_some(&buffer[..]);
        for piece in self.pieces.iter().map(|piece| &piece[..]).chain(buffered) {
            if sent >= piece.len() {
                sent -= piece.len();
                continue;
            }
            let rest = &piece[sent..];
            sent = 0;
            self.iovecs.push(libc::iovec {
                iov_base: rest.as_ptr().cast_mut().cast(),
                iov_len: rest.len(),
            });
        }
        // SAFETY: msghdr is plain data; all-zero is its empty value.
        #[allow(unsafe_code)]
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = self.iovecs.as_mut_ptr();
        header.msg_iovlen = self.iovecs.len() as _;
        self.header = header;
        &raw const self.header
    }
}

/// The least a sent chunk must hold to be kept as a spare direct buffer: less is not a
/// message that came in by a direct receive.
const SPARE_DIRECT_MIN: usize = 4 * 1024;

/// The most memory a spare direct buffer may hold (room for a message of the largest
/// size a direct receive reserves ahead, `DIRECT_ROOM_MAX`, and its header): a larger
/// message's allocation is dropped, as its copies cost far more than an allocation, and
/// a connection then holds at most this besides its input buffer.
const SPARE_DIRECT_MAX: usize = 96 * 1024;

/// A connection of a worker.
pub(crate) struct Conn {
    pub(crate) fd: RawFd,
    pub(crate) protocol: ServerProtocol,
    pub(crate) phase: Phase,
    /// The piece being sent, and how much of it has gone.
    pub(crate) in_flight: Option<InFlight>,
    pub(crate) in_flight_sent: usize,
    /// A send of the piece's rest is in the ring.
    pub(crate) send_posted: bool,
    /// The bytes of [`InFlight::Buffer`], or the spare swapped in for the next one.
    pub(crate) send_buffer: BytesMut,
    /// The last vectored send's vectors, emptied, for the next one: a large message's
    /// echo is a header and a shared payload, and three allocations per message for
    /// them showed in profiles at 10 x 16 KiB.
    spare_vectored: Option<Box<Vectored>>,
    /// While receiving directly: a buffer let go by a sent echo, for the next direct
    /// receive (`make_direct_room`). An echoed message shares its receive buffer until its
    /// send completes, so the next receive cannot reuse that buffer; two of them taking
    /// turns spare an allocation and a free per message. The price: a connection that
    /// falls silent after large messages holds two buffers rather than one (at most
    /// `SPARE_DIRECT_MAX` more), as it did anyway while its last echo was being sent.
    spare_direct: Option<BytesMut>,
    /// A multishot receive is in the ring.
    pub(crate) receiving: bool,
    /// Its cancellation is in the ring.
    pub(crate) cancelling: bool,
    /// Receive straight into the protocol's buffer instead (large data: see
    /// `Worker::on_receive`).
    pub(crate) direct_mode: bool,
    /// A direct receive is in the ring: the protocol's input buffer is the kernel's until
    /// it completes, so nothing may touch it.
    pub(crate) direct_posted: bool,
    /// How many bytes the direct receive in the ring may bring, and where they go.
    pub(crate) direct_len: u32,
    pub(crate) direct_at: usize,
    /// What the last direct receive brought: the room the next one gets when no frame is
    /// under way, so that a peer sending messages of 16 KiB in turn has each come in one
    /// receive rather than a 4-KiB one and the rest.
    pub(crate) direct_last: u32,
    /// The last direct receive left data in the socket (`IORING_CQE_F_SOCK_NONEMPTY`): the
    /// peer streams rather than waits for our answer, so the next receive tries at once.
    pub(crate) direct_left_data: bool,
    /// The socket's receive low-water mark as last set (`low_water.rs`).
    pub(crate) low_water: u32,
    /// What the worker's load judge knows of this connection's receives
    /// (`Batching::saw_receive`).
    pub(crate) receive_record: ReceiveRecord,
    /// Our side of TCP is shut (shutdown(SHUT_WR)).
    pub(crate) write_shut: bool,
    /// The peer ended its side of TCP (a receive returned 0).
    pub(crate) peer_eof: bool,
    /// Reading stopped because too much waits to be sent.
    pub(crate) paused: bool,
    /// The socket failed or must go: close it as soon as the ring lets go of it.
    pub(crate) abort: bool,
    /// A keepalive ping was sent at this time and no pong has come yet.
    pub(crate) ping_sent: Option<Instant>,
    /// When the next keepalive ping is due.
    pub(crate) keepalive_at: Option<Instant>,
    /// When the closing handshake started (or the handshake's error response was sent).
    pub(crate) closing_since: Option<Instant>,
    /// When something must happen (see `Worker::on_deadline`).
    pub(crate) deadline: Option<Instant>,
    /// The handler was told it opened, so it is told when it ends.
    pub(crate) opened: bool,
    /// Counted against `max_connections` (not a 503'd one).
    pub(crate) counted: bool,
    /// Completions of this pass changed it: what it needs next goes into the ring at the
    /// end of the pass (`Worker::flush`).
    pub(crate) dirty: bool,
}

impl Conn {
    pub(crate) fn new(fd: RawFd, protocol: ServerProtocol) -> Self {
        Self {
            fd,
            protocol,
            phase: Phase::Handshake,
            in_flight: None,
            in_flight_sent: 0,
            send_posted: false,
            send_buffer: BytesMut::new(),
            spare_vectored: None,
            spare_direct: None,
            receiving: false,
            cancelling: false,
            direct_mode: false,
            direct_posted: false,
            direct_len: 0,
            direct_at: 0,
            direct_last: 0,
            direct_left_data: false,
            low_water: 0,
            receive_record: ReceiveRecord::default(),
            write_shut: false,
            peer_eof: false,
            paused: false,
            abort: false,
            ping_sent: None,
            keepalive_at: None,
            closing_since: None,
            deadline: None,
            opened: false,
            counted: false,
            dirty: false,
        }
    }

    /// Operations of this connection still in the ring.
    pub(crate) fn in_ring(&self) -> bool {
        self.receiving || self.cancelling || self.direct_posted || self.send_posted
    }

    /// Bytes of the piece in flight not yet sent.
    pub(crate) fn in_flight_len(&self) -> usize {
        match &self.in_flight {
            None => 0,
            Some(InFlight::Buffer) => self.send_buffer.len() - self.in_flight_sent,
            Some(InFlight::Shared(bytes)) => bytes.len() - self.in_flight_sent,
            Some(InFlight::Vectored(vectored)) => {
                vectored.len(&self.send_buffer) - self.in_flight_sent
            }
        }
    }

    /// The unsent rest of a single piece in flight.
    pub(crate) fn in_flight_rest(&self) -> &[u8] {
        match &self.in_flight {
            None | Some(InFlight::Vectored(_)) => &[],
            Some(InFlight::Buffer) => &self.send_buffer[self.in_flight_sent..],
            Some(InFlight::Shared(bytes)) => &bytes[self.in_flight_sent..],
        }
    }

    /// Takes what the protocol queued as the next send: one piece, or all of them.
    pub(crate) fn take_send(&mut self) {
        let outgoing = self.protocol.outgoing();
        self.in_flight = match outgoing.take_piece(&mut self.send_buffer) {
            None => None,
            Some(Piece::Buffer) => Some(InFlight::Buffer),
            Some(Piece::Shared(first)) if outgoing.is_empty() => Some(InFlight::Shared(first)),
            Some(Piece::Shared(first)) => {
                let mut vectored = self
                    .spare_vectored
                    .take()
                    .unwrap_or_else(|| Box::new(Vectored::new()));
                vectored.pieces.push(first);
                vectored.with_buffer = false;
                while let Some(piece) = outgoing.take_piece(&mut self.send_buffer) {
                    match piece {
                        Piece::Shared(bytes) => vectored.pieces.push(bytes),
                        Piece::Buffer => {
                            vectored.with_buffer = true;
                            break;
                        }
                    }
                }
                Some(InFlight::Vectored(vectored))
            }
        };
        self.in_flight_sent = 0;
    }

    /// Ends the send in flight, all of it sent: its shared chunks are let go (one may be
    /// kept as the next direct receive's buffer), and a vectored send's vectors are kept
    /// for the next one.
    pub(crate) fn sent_all(&mut self) {
        match self.in_flight.take() {
            Some(InFlight::Vectored(mut vectored)) => {
                for piece in vectored.pieces.drain(..) {
                    self.keep_for_direct(piece);
                }
                vectored.iovecs.clear();
                self.spare_vectored = Some(vectored);
            }
            Some(InFlight::Shared(bytes)) => self.keep_for_direct(bytes),
            Some(InFlight::Buffer) | None => {}
        }
        self.in_flight_sent = 0;
    }

    /// Keeps a chunk's memory as the spare direct buffer if the connection receives
    /// directly, has no spare, and nothing else refers to it.
    fn keep_for_direct(&mut self, chunk: Bytes) {
        if !self.direct_mode || self.spare_direct.is_some() || chunk.len() < SPARE_DIRECT_MIN {
            return;
        }
        if let Ok(mut buffer) = chunk.try_into_mut() {
            buffer.clear();
            if buffer.capacity() <= SPARE_DIRECT_MAX {
                self.spare_direct = Some(buffer);
            }
        }
    }

    /// Stops receiving directly: the spare buffer goes.
    pub(crate) fn leave_direct_mode(&mut self) {
        self.direct_mode = false;
        self.spare_direct = None;
    }

    /// Gives the protocol's input buffer room for `room` more bytes, for a direct receive
    /// with no frame under way: by rewinding it if nothing else refers to it, else by
    /// taking the spare (the buffer of an echo sent since), else by allocating.
    pub(crate) fn make_direct_room(&mut self, room: usize) {
        let input = self.protocol.protocol_mut().input_buffer();
        if input.try_reclaim(room) {
            return;
        }
        if input.is_empty() {
            if let Some(spare) = self.spare_direct.take() {
                *input = spare;
                if input.try_reclaim(room) {
                    return;
                }
            }
        }
        input.reserve(room);
    }

    /// Bytes waiting to be sent, queued and in flight.
    pub(crate) fn unsent(&mut self) -> usize {
        self.protocol.outgoing().len() + self.in_flight_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes a message header points to, in order.
    fn aimed(vectored: &mut Vectored, buffer: &BytesMut, sent: usize) -> Vec<u8> {
        let header = vectored.aim(buffer, sent);
        // SAFETY: `aim` points the header at `vectored.iovecs`, which point into the
        // pieces and `buffer`, all alive here.
        #[allow(unsafe_code)]
        unsafe {
            let header = &*header;
            (0..header.msg_iovlen)
                .flat_map(|index| {
                    let iovec = *header.msg_iov.add(index);
                    std::slice::from_raw_parts(iovec.iov_base.cast::<u8>(), iovec.iov_len)
                })
                .copied()
                .collect()
        }
    }

    #[test]
    fn a_short_sendmsg_resumes_inside_the_right_piece() {
        let mut vectored = Vectored {
            pieces: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cdef")],
            with_buffer: true,
            ..Vectored::new()
        };
        let buffer = BytesMut::from(&b"gh"[..]);
        assert_eq!(vectored.len(&buffer), 8);
        assert_eq!(aimed(&mut vectored, &buffer, 0), b"abcdefgh");
        assert_eq!(aimed(&mut vectored, &buffer, 1), b"bcdefgh");
        assert_eq!(aimed(&mut vectored, &buffer, 2), b"cdefgh");
        assert_eq!(aimed(&mut vectored, &buffer, 5), b"fgh");
        assert_eq!(aimed(&mut vectored, &buffer, 7), b"h");
        assert_eq!(vectored.iovecs.len(), 1);
    }

    /// Queues `head`, a shared `payload` and `tail` (if any), and takes the next send.
    fn queue_and_take(conn: &mut Conn, head: &[u8], payload: Vec<u8>, tail: &[u8]) {
        let outgoing = conn.protocol.outgoing();
        outgoing.extend_from_slice(head);
        outgoing.push_bytes(Bytes::from(payload));
        outgoing.extend_from_slice(tail);
        conn.take_send();
    }

    #[test]
    fn queued_pieces_go_out_as_one_vectored_send_in_order() {
        let mut conn = Conn::new(-1, ServerProtocol::new(Default::default()));
        queue_and_take(&mut conn, b"head", vec![b'x'; 2000], b"tail");
        let Some(InFlight::Vectored(mut vectored)) = conn.in_flight.take() else {
            panic!("not vectored");
        };
        assert!(vectored.with_buffer);
        let all = aimed(&mut vectored, &conn.send_buffer, 0);
        assert_eq!(all.len(), 2008);
        assert!(all.starts_with(b"head") && all.ends_with(b"xtail"));
        assert!(conn.protocol.outgoing().is_empty());
        // A lone buffer needs no vector.
        conn.protocol.outgoing().extend_from_slice(b"small");
        conn.take_send();
        assert!(matches!(conn.in_flight, Some(InFlight::Buffer)));
        assert_eq!(conn.in_flight_rest(), b"small");
    }

    /// Receives a message of `size` bytes into the input buffer as a direct receive
    /// would, and splits it out as the protocol does when it parses one.
    fn receive_and_split(conn: &mut Conn, size: usize) -> (*const u8, Bytes) {
        conn.make_direct_room(size);
        let input = conn.protocol.protocol_mut().input_buffer();
        assert!(input.capacity() - input.len() >= size);
        let at = input.as_ptr();
        input.extend_from_slice(&vec![7u8; size]);
        (at, input.split_to(size).freeze())
    }

    #[test]
    fn two_buffers_take_turns_for_direct_receives_of_echoed_messages() {
        let mut conn = Conn::new(-1, ServerProtocol::new(Default::default()));
        conn.direct_mode = true;
        let (first, message) = receive_and_split(&mut conn, 16_384);
        // The echo of the first holds its buffer: the next receive goes elsewhere.
        let (second, next) = receive_and_split(&mut conn, 16_384);
        assert_ne!(first, second);
        echo_sent(&mut conn, message);
        // Sent: the first buffer is the spare, and the third message goes into it while
        // the second's echo is in flight; then the second's buffer comes back.
        assert!(conn.spare_direct.is_some());
        let (third, message) = receive_and_split(&mut conn, 16_384);
        assert_eq!(third, first);
        assert!(conn.spare_direct.is_none());
        echo_sent(&mut conn, next);
        let (fourth, next) = receive_and_split(&mut conn, 16_384);
        assert_eq!(fourth, second);
        // A message nobody holds any more leaves its buffer to be rewound in place.
        drop(next);
        let (fifth, _) = receive_and_split(&mut conn, 16_384);
        assert_eq!(fifth, second);
        // Leaving direct mode lets the spare go, and none is kept outside it.
        echo_sent(&mut conn, message);
        assert!(conn.spare_direct.is_some());
        conn.leave_direct_mode();
        assert!(conn.spare_direct.is_none());
        assert!(!echo_of_one_then_another_keeps_a_spare(&mut conn, 16_384));
    }

    /// The send of an echo of `message` completes.
    fn echo_sent(conn: &mut Conn, message: Bytes) {
        conn.in_flight = Some(InFlight::Shared(message));
        conn.sent_all();
    }

    /// Receives a message of `size`, then another while the first one's echo is sent:
    /// whether the first one's buffer is then kept as the spare.
    fn echo_of_one_then_another_keeps_a_spare(conn: &mut Conn, size: usize) -> bool {
        let (_, message) = receive_and_split(conn, size);
        receive_and_split(conn, 16_384);
        echo_sent(conn, message);
        conn.spare_direct.is_some()
    }

    #[test]
    fn a_huge_message_buffer_is_not_kept_as_the_spare() {
        let mut conn = Conn::new(-1, ServerProtocol::new(Default::default()));
        conn.direct_mode = true;
        assert!(!echo_of_one_then_another_keeps_a_spare(
            &mut conn,
            SPARE_DIRECT_MAX + 1
        ));
        assert!(echo_of_one_then_another_keeps_a_spare(&mut conn, 16_384));
    }

    #[test]
    fn a_finished_vectored_send_lends_its_vectors_to_the_next_without_its_pieces() {
        let mut conn = Conn::new(-1, ServerProtocol::new(Default::default()));
        queue_and_take(&mut conn, b"h1", vec![b'x'; 2000], b"t1");
        let Some(InFlight::Vectored(first)) = &mut conn.in_flight else {
            panic!("not vectored");
        };
        first.aim(&conn.send_buffer, 0);
        let first_at: *const Vectored = &**first;
        let payload = first.pieces[1].clone();
        conn.sent_all();
        assert!(conn.in_flight.is_none() && conn.in_flight_sent == 0);
        // The sent payload is let go: only our clone holds it now.
        assert!(payload.is_unique());
        // The next vectored send, without a buffer after its pieces, reuses the vectors.
        queue_and_take(&mut conn, b"h2", vec![b'y'; 3000], b"");
        let Some(InFlight::Vectored(mut second)) = conn.in_flight.take() else {
            panic!("not vectored");
        };
        assert_eq!(&*second as *const Vectored, first_at);
        assert!(!second.with_buffer);
        let all = aimed(&mut second, &conn.send_buffer, 0);
        assert_eq!(all.len(), 3002);
        assert!(all.starts_with(b"h2y") && all.ends_with(b"y"));
    }
}
