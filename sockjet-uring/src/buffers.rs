//! The ring's provided buffers (`IORING_REGISTER_PBUF_RING`): one pool per worker, from
//! which the kernel picks a buffer only when data arrives. A connection waiting for data
//! holds none, so idle connections cost no read buffer, yet every receive is posted once
//! (multishot) and completes without a system call of its own.

use std::{
    alloc::{Layout, alloc_zeroed, dealloc},
    io,
    sync::atomic::{AtomicU16, Ordering},
};

use io_uring::{IoUring, types::BufRingEntry};

/// The buffer group the multishot receives select from.
pub(crate) const GROUP: u16 = 0;

/// A registered ring of equal-sized receive buffers.
pub(crate) struct ProvidedBuffers {
    /// The ring of entries the kernel reads (page-aligned, `entries` of them).
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    /// The buffers themselves, `entries * size` bytes.
    memory: Box<[u8]>,
    entries: u16,
    size: usize,
    /// Our copy of the ring's tail: entries published so far.
    tail: u16,
}

impl ProvidedBuffers {
    /// Allocates `entries` buffers of `size` bytes (`entries` a power of two) and
    /// registers them with `ring`.
    pub(crate) fn register(ring: &IoUring, entries: u16, size: usize) -> io::Result<Self> {
        assert!(
            entries.is_power_of_two(),
            "a buffer ring's size is a power of two"
        );
        let ring_layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        #[allow(unsafe_code)]
        let ring_memory = unsafe { alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        if ring_memory.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut buffers = Self {
            ring: ring_memory,
            ring_layout,
            memory: vec![0; usize::from(entries) * size].into_boxed_slice(),
            entries,
            size,
            tail: 0,
        };
        // SAFETY: the ring memory is page-aligned, zeroed, `entries` long, and lives (in
        // `buffers`) until it is unregistered in `unregister` or the ring is dropped.
        #[allow(unsafe_code)]
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ring_memory as u64, entries, GROUP, 0)?;
        }
        for id in 0..entries {
            buffers.stage(id);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// The bytes the kernel put into buffer `id`.
    pub(crate) fn filled(&self, id: u16, len: usize) -> &[u8] {
        let start = usize::from(id) * self.size;
        &self.memory[start..start + len.min(self.size)]
    }

    /// Gives buffer `id` back to the kernel; [`publish`](Self::publish) makes it visible.
    pub(crate) fn stage(&mut self, id: u16) {
        debug_assert!(id < self.entries);
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `index` < `entries`, the ring's length; the kernel only reads entries
        // before the published tail, and this one is past it until `publish`.
        #[allow(unsafe_code)]
        let entry = unsafe { &mut *self.ring.add(index) };
        let start = usize::from(id) * self.size;
        entry.set_addr(self.memory[start..].as_ptr() as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the buffers staged since the last call.
    pub(crate) fn publish(&mut self) {
        // SAFETY: the tail field lies in the first entry of the ring, which lives as long
        // as `self`; the kernel reads it with acquire ordering (io_uring's buf_ring ABI).
        #[allow(unsafe_code)]
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut().cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Unregisters the pool from `ring`, before the memory goes.
    pub(crate) fn unregister(&self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(GROUP);
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout; the worker unregisters the
        // pool (or drops the ring, which does) before dropping it.
        #[allow(unsafe_code)]
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout)
        };
    }
}
