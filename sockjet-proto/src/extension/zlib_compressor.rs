//! A raw-DEFLATE compressor on C zlib (the `libz-sys` crate, built from its bundled
//! source), for `mem_level` below 8 (`compressor.rs` says why).
//!
//! The `unsafe` here is the FFI and the allocator zlib is given (Rust's global one, so that
//! its memory is counted with the rest). The `z_stream` is boxed, so it never moves after
//! `deflateInit2_` (zlib's state points back to it and checks that), and
//! `next_in`/`next_out` point into slices that outlive each `deflate` call.

#![allow(unsafe_code)]

use std::{
    alloc::{Layout, alloc_zeroed, dealloc},
    os::raw::{c_int, c_uint, c_void},
    ptr,
};

use libz_sys as zlib;

/// One C zlib deflate stream: raw DEFLATE (no header, no checksum).
pub(crate) struct ZlibCompressor {
    stream: Box<zlib::z_stream>,
}

// SAFETY: the stream is owned and only touched through `&mut self`; zlib keeps no
// thread-local or global state for it.
unsafe impl Send for ZlibCompressor {}
// SAFETY: no method takes `&self` and reaches the stream.
unsafe impl Sync for ZlibCompressor {}

impl ZlibCompressor {
    /// A compressor with `level` (0-9), a `window_bits` window (9-15) and `mem_level`
    /// (1-9).
    ///
    /// # Panics
    ///
    /// If zlib refuses the parameters (they are clamped by the caller) or has no memory.
    pub(crate) fn new(level: i32, window_bits: u8, mem_level: i32) -> Self {
        let mut stream = Box::new(zlib::z_stream {
            next_in: ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: ptr::null_mut(),
            state: ptr::null_mut(),
            zalloc: allocate,
            zfree: free,
            opaque: ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        // SAFETY: the stream is set up as deflateInit2_ expects, and the box keeps it in
        // place; the version string is zlib's own, static.
        let status = unsafe {
            zlib::deflateInit2_(
                &mut *stream,
                level,
                zlib::Z_DEFLATED,
                // Negative: raw DEFLATE.
                -c_int::from(window_bits),
                mem_level,
                zlib::Z_DEFAULT_STRATEGY,
                zlib::zlibVersion(),
                size_of::<zlib::z_stream>() as c_int,
            )
        };
        assert_eq!(status, zlib::Z_OK, "deflateInit2 failed");
        Self { stream }
    }

    /// Compresses `input` into `out` with a sync flush, and returns how many bytes of
    /// `input` it consumed and of `out` it wrote. All the input is consumed and the flush
    /// is complete when `out` was not filled.
    pub(crate) fn compress_sync(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize) {
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = out.len().min(u32::MAX as usize);
        let stream = &mut *self.stream;
        // zlib reads through `next_in` (declared mutable, never written) and writes
        // through `next_out`, within the lengths given.
        stream.next_in = input.as_ptr().cast_mut();
        stream.avail_in = in_len as u32;
        stream.next_out = out.as_mut_ptr();
        stream.avail_out = out_len as u32;
        // SAFETY: an initialised stream; the pointers are valid for the lengths set above
        // for the whole call.
        let status = unsafe { zlib::deflate(stream, zlib::Z_SYNC_FLUSH) };
        let consumed = in_len - stream.avail_in as usize;
        let written = out_len - stream.avail_out as usize;
        // Leave no dangling pointers behind.
        stream.next_in = std::ptr::null_mut();
        stream.avail_in = 0;
        stream.next_out = std::ptr::null_mut();
        stream.avail_out = 0;
        // Z_BUF_ERROR only says no progress was possible (no room): the caller gives more.
        assert!(
            status == zlib::Z_OK || status == zlib::Z_BUF_ERROR,
            "deflate failed: {status}"
        );
        (consumed, written)
    }

    /// Starts a new stream (no context takeover), keeping the allocation.
    pub(crate) fn reset(&mut self) {
        // SAFETY: an initialised stream.
        let status = unsafe { zlib::deflateReset(&mut *self.stream) };
        assert_eq!(status, zlib::Z_OK, "deflateReset failed");
    }
}

impl Drop for ZlibCompressor {
    fn drop(&mut self) {
        // SAFETY: an initialised stream, ended once.
        unsafe { zlib::deflateEnd(&mut *self.stream) };
    }
}

/// Room before each block zlib gets, for its size: `free` is not told it.
const HEADER: usize = 16;

/// zlib's allocator: Rust's global one, so that zlib's memory is counted and limited
/// like the rest of the program's. Zeroed, as zlib's own is on 16-bit systems only: zlib
/// slides its whole chain table (`prev`) by the window now and then, entries it never wrote
/// included. It never reads those as positions, so the output is the same, but a memory
/// checker (valgrind) would report every slide.
unsafe extern "C" fn allocate(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let Some(layout) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|len| len.checked_add(HEADER))
        .and_then(|len| Layout::from_size_align(len, HEADER).ok())
    else {
        return ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size (HEADER at least).
    let block = unsafe { alloc_zeroed(layout) };
    if block.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the block has HEADER bytes, aligned to 16, before what zlib gets.
    unsafe {
        block.cast::<usize>().write(layout.size());
        block.add(HEADER).cast()
    }
}

/// zlib's deallocator, for blocks from `allocate`.
unsafe extern "C" fn free(_opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: `address` came from `allocate`, HEADER bytes into a block whose size is
    // written at its start, with the alignment `allocate` used.
    unsafe {
        let block = address.cast::<u8>().sub(HEADER);
        let size = block.cast::<usize>().read();
        dealloc(block, Layout::from_size_align_unchecked(size, HEADER));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zlib_rs::{Inflate, InflateFlush};

    /// What zlib-rs inflates from `wire` (a raw stream ending with a sync flush).
    fn inflate(inflater: &mut Inflate, wire: &[u8]) -> Vec<u8> {
        let mut out = vec![0; 1 << 20];
        let before = inflater.total_out();
        inflater
            .decompress(wire, &mut out, InflateFlush::SyncFlush)
            .unwrap();
        out.truncate((inflater.total_out() - before) as usize);
        out
    }

    #[test]
    fn round_trips_through_zlib_rs_with_and_without_context_takeover() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"id\":{}}},", i % 97).into_bytes())
            .collect();
        let mut compressor = ZlibCompressor::new(6, 12, 5);
        let mut inflater = Inflate::new(false, 12);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let mut wire = vec![0; text.len() + 64];
            let (consumed, written) = compressor.compress_sync(&text, &mut wire);
            assert_eq!(consumed, text.len());
            assert!(written < wire.len());
            wire.truncate(written);
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush ends it");
            assert_eq!(inflate(&mut inflater, &wire), text);
            sizes.push(written);
        }
        // The same message again refers to the window: smaller.
        assert!(sizes[1] < sizes[0], "{sizes:?}");

        compressor.reset();
        let mut fresh = Inflate::new(false, 12);
        let mut wire = vec![0; text.len() + 64];
        let (_, written) = compressor.compress_sync(&text, &mut wire);
        assert_eq!(written, sizes[0], "after a reset, as the first time");
        assert_eq!(inflate(&mut fresh, &wire[..written]), text);
    }

    #[test]
    fn a_small_output_buffer_takes_several_calls() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut compressor = ZlibCompressor::new(6, 15, 8);
        let mut wire = Vec::new();
        let mut input = &data[..];
        loop {
            let mut chunk = [0u8; 100];
            let (consumed, written) = compressor.compress_sync(input, &mut chunk);
            input = &input[consumed..];
            wire.extend_from_slice(&chunk[..written]);
            if input.is_empty() && written < chunk.len() {
                break;
            }
        }
        assert_eq!(inflate(&mut Inflate::new(false, 15), &wire), data);
    }
}
