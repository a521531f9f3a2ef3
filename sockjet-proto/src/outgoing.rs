//! The bytes a connection has to write: small frames coalesced into one buffer, large
//! payloads kept as shared [`Bytes`] so they are never copied.

use std::{collections::VecDeque, io::IoSlice};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes waiting to be written to the network, in order.
///
/// It implements [`Buf`] with vectored chunks, so a driver writes it with one
/// `writev` (`AsyncWriteExt::write_buf` or `write_vectored`) and then [`Buf::advance`]s by
/// what was written. Small frames are appended to one coalescing buffer, so a burst of
/// small messages goes out in one system call; a payload of [`Outgoing::SHARE_THRESHOLD`]
/// bytes or more is queued by reference, without a copy.
///
/// ```
/// use bytes::{Buf, Bytes};
/// use sockjet_proto::Outgoing;
/// let mut out = Outgoing::default();
/// out.extend_from_slice(b"head");
/// out.push_bytes(Bytes::from(vec![7u8; 4096]));
/// assert_eq!(out.remaining(), 4100);
/// assert_eq!(out.chunk(), b"head");
/// out.advance(4100);
/// assert!(out.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Finished chunks, written before `tail`.
    chunks: VecDeque<Bytes>,
    /// Coalescing buffer for small writes; comes after every chunk in `chunks`.
    tail: BytesMut,
    /// Total bytes in `chunks`.
    chunks_len: usize,
}

impl Outgoing {
    /// Payloads at least this long are queued by reference instead of copied.
    pub const SHARE_THRESHOLD: usize = 1024;

    /// Whether nothing is waiting to be written.
    ///
    /// ```
    /// assert!(sockjet_proto::Outgoing::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.chunks_len == 0 && self.tail.is_empty()
    }

    /// Number of bytes waiting to be written.
    ///
    /// ```
    /// let mut out = sockjet_proto::Outgoing::default();
    /// out.extend_from_slice(b"abc");
    /// assert_eq!(out.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    /// Appends a copy of `data`.
    ///
    /// ```
    /// let mut out = sockjet_proto::Outgoing::default();
    /// out.extend_from_slice(b"abc");
    /// assert!(!out.is_empty());
    /// ```
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
    }

    /// Appends `bytes`, by reference if it is large, by copy if it is small.
    ///
    /// ```
    /// let mut out = sockjet_proto::Outgoing::default();
    /// out.push_bytes(bytes::Bytes::from_static(b"abc"));
    /// assert_eq!(out.len(), 3);
    /// ```
    pub fn push_bytes(&mut self, bytes: Bytes) {
        if bytes.len() < Self::SHARE_THRESHOLD {
            self.tail.extend_from_slice(&bytes);
            return;
        }
        if !self.tail.is_empty() {
            let head = self.tail.split().freeze();
            self.chunks_len += head.len();
            self.chunks.push_back(head);
        }
        self.chunks_len += bytes.len();
        self.chunks.push_back(bytes);
    }

    /// The coalescing buffer, for encoders that write in place (masking).
    pub(crate) fn tail_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Takes everything queued, as one buffer: the coalescing buffer itself, without a
    /// copy, when nothing is queued before it (always for data written with
    /// [`extend_from_slice`](Self::extend_from_slice) alone), else a copy of it all.
    ///
    /// ```
    /// let mut out = sockjet_proto::Outgoing::default();
    /// out.extend_from_slice(b"HTTP/1.1 101 ");
    /// out.extend_from_slice(b"Switching Protocols\r\n\r\n");
    /// assert_eq!(&out.take_all()[..], b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    /// assert!(out.is_empty());
    /// out.extend_from_slice(b"head ");
    /// out.push_bytes(bytes::Bytes::from(vec![b'x'; 2000]));
    /// assert_eq!(out.take_all().len(), 2005);
    /// assert!(out.is_empty());
    /// ```
    pub fn take_all(&mut self) -> BytesMut {
        if self.chunks.is_empty() {
            return std::mem::take(&mut self.tail);
        }
        let mut all = BytesMut::with_capacity(self.len());
        all.put(self);
        all
    }

    /// Copies everything into `dst` and empties this queue.
    ///
    /// ```
    /// let mut out = sockjet_proto::Outgoing::default();
    /// out.extend_from_slice(b"abc");
    /// let mut dst = Vec::new();
    /// out.drain_into(&mut dst);
    /// assert_eq!(dst, b"abc");
    /// assert!(out.is_empty());
    /// ```
    pub fn drain_into(&mut self, dst: &mut Vec<u8>) {
        dst.reserve(self.len());
        dst.put(self);
    }

    /// Takes the first piece queued, for a completion-based driver (io_uring) that hands
    /// the kernel memory which must stay put until the write completes: a shared chunk, or
    /// else the coalescing buffer, exchanged for `spare` (cleared first) so that no
    /// allocation is needed once two buffers circulate. `None` when nothing is queued.
    ///
    /// ```
    /// use sockjet_proto::{BytesMut, Outgoing, Piece};
    /// let mut out = Outgoing::default();
    /// out.extend_from_slice(b"head ");
    /// out.push_bytes(bytes::Bytes::from(vec![b'x'; 2000]));
    /// out.extend_from_slice(b"tail");
    /// let mut spare = BytesMut::with_capacity(64);
    /// let Some(Piece::Shared(first)) = out.take_piece(&mut spare) else { panic!() };
    /// assert_eq!(&first[..], b"head ");
    /// let Some(Piece::Shared(second)) = out.take_piece(&mut spare) else { panic!() };
    /// assert_eq!(second.len(), 2000);
    /// assert_eq!(out.take_piece(&mut spare), Some(Piece::Buffer));
    /// assert_eq!(&spare[..], b"tail");
    /// assert!(out.is_empty() && out.take_piece(&mut spare).is_none());
    /// ```
    pub fn take_piece(&mut self, spare: &mut BytesMut) -> Option<Piece> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.chunks_len -= chunk.len();
            return Some(Piece::Shared(chunk));
        }
        if self.tail.is_empty() {
            return None;
        }
        spare.clear();
        std::mem::swap(spare, &mut self.tail);
        Some(Piece::Buffer)
    }
}

/// What [`Outgoing::take_piece`] took.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A queued chunk, shared with the message it came from.
    Shared(Bytes),
    /// The coalescing buffer's bytes, now in the `spare` buffer passed in.
    Buffer,
}

impl Buf for Outgoing {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        match self.chunks.front() {
            Some(chunk) => chunk,
            None => &self.tail,
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                self.chunks_len -= cnt;
                return;
            }
            cnt -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
        assert!(cnt <= self.tail.len(), "advanced past the end of Outgoing");
        if cnt == self.tail.len() {
            // All written (the common case): emptied in place, so the next frames are
            // written from the start of the buffer. Advancing would move its start to
            // the end, and the next write would first have to reclaim the room before it.
            self.tail.clear();
        } else {
            self.tail.advance(cnt);
        }
        if self.tail.is_empty() && self.tail.capacity() > MAX_IDLE_CAPACITY {
            // A large client message grew the buffer; give the memory back when idle.
            self.tail = BytesMut::new();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in &self.chunks {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(chunk);
            n += 1;
        }
        if n < dst.len() && !self.tail.is_empty() {
            dst[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }
}

/// Capacity above which an empty coalescing buffer is released.
const MAX_IDLE_CAPACITY: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_across_shared_and_copied_parts() {
        let mut out = Outgoing::default();
        out.extend_from_slice(b"a");
        out.push_bytes(Bytes::from(vec![b'b'; 2000]));
        out.extend_from_slice(b"c");
        out.push_bytes(Bytes::from_static(b"d"));
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(out.chunks_vectored(&mut slices), 3);
        let mut all = Vec::new();
        out.drain_into(&mut all);
        assert_eq!(all.len(), 2003);
        assert_eq!(all[0], b'a');
        assert_eq!(&all[2001..], b"cd");
    }

    #[test]
    fn a_buffer_written_out_is_reused_from_its_start() {
        let mut out = Outgoing::default();
        out.extend_from_slice(&[7u8; 100]);
        let start = out.chunk().as_ptr();
        let capacity = out.tail.capacity();
        out.advance(100);
        assert!(out.is_empty());
        // The whole capacity is free again, and the next bytes go where the first went.
        assert_eq!(out.tail.capacity(), capacity);
        out.extend_from_slice(b"next");
        assert_eq!(out.chunk().as_ptr(), start);
        // A partial write still leaves the rest to send.
        out.advance(1);
        assert_eq!(out.chunk(), b"ext");
    }

    #[test]
    fn partial_advance_within_a_chunk() {
        let mut out = Outgoing::default();
        out.push_bytes(Bytes::from(vec![1u8; 3000]));
        out.extend_from_slice(b"xy");
        out.advance(2999);
        assert_eq!(out.remaining(), 3);
        assert_eq!(out.chunk(), &[1]);
        out.advance(2);
        assert_eq!(out.chunk(), b"y");
    }
}
