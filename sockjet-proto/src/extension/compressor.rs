//! The sending side of permessage-deflate: raw DEFLATE with a sync flush after each
//! message, on one of two zlib implementations, chosen by `mem_level`.
//!
//! - `mem_level` 1 to 7 (the default is 5): C zlib (`zlib_compressor.rs`), whose hash
//!   table and symbol buffer shrink with it: 38 KiB in all at 12 window bits and memLevel
//!   5, as Python `websockets` documents. A server compressing for many connections finds
//!   the tables of each cold for every message, so small tables are cheaper there too:
//!   echoing 4 KiB JSON-like text to 100 connections cost 10% less CPU per message than
//!   with zlib-rs (`bench/README.md`).
//! - `mem_level` 8 and 9: zlib-rs, whose hash table is 128 KiB at any setting (161 KiB in
//!   all at 12 bits) but which compresses 1.5x faster than C zlib when its tables stay in
//!   the CPU's cache: one connection sending large messages in a row.

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

use super::zlib_compressor::ZlibCompressor;

/// From this `mem_level` on, zlib-rs compresses.
const ZLIB_RS_FROM_MEM_LEVEL: i32 = 8;

/// A raw DEFLATE compressor.
pub(crate) enum Compressor {
    /// C zlib: memory that follows `mem_level`.
    Zlib(ZlibCompressor),
    /// zlib-rs: speed on hot tables.
    ZlibRs(Deflate),
}

impl Compressor {
    /// A compressor with `level` (0-9), a `window_bits` window (9-15) and `mem_level`
    /// (1-9), on the implementation `mem_level` picks.
    pub(crate) fn new(level: i32, window_bits: u8, mem_level: i32) -> Self {
        if mem_level < ZLIB_RS_FROM_MEM_LEVEL {
            return Self::Zlib(ZlibCompressor::new(level, window_bits, mem_level));
        }
        Self::ZlibRs(Deflate::new_with_config(DeflateConfig {
            level,
            method: Method::Deflated,
            // Negative: a raw DEFLATE stream, without zlib header or checksum.
            window_bits: -i32::from(window_bits),
            mem_level,
            strategy: Strategy::Default,
        }))
    }

    /// Compresses `input` into `out` with a sync flush, and returns how many bytes of
    /// `input` it consumed and of `out` it wrote. All the input is consumed and the flush
    /// is complete when `out` was not filled.
    pub(crate) fn compress_sync(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize) {
        match self {
            Self::Zlib(zlib) => zlib.compress_sync(input, out),
            Self::ZlibRs(deflate) => {
                let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
                let status = deflate.compress(input, out, DeflateFlush::SyncFlush);
                // Errors only come from an invalid state or flush argument, which this
                // type never creates.
                assert!(status.is_ok(), "deflate failed: {status:?}");
                (
                    (deflate.total_in() - in_before) as usize,
                    (deflate.total_out() - out_before) as usize,
                )
            }
        }
    }

    /// Starts a new stream (no context takeover), keeping the allocation.
    pub(crate) fn reset(&mut self) {
        match self {
            Self::Zlib(zlib) => zlib.reset(),
            Self::ZlibRs(deflate) => {
                deflate.reset();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zlib_rs::{Inflate, InflateFlush};

    #[test]
    fn mem_level_picks_the_implementation_and_both_inflate_alike() {
        let text: Vec<u8> = (0..5_000u32)
            .flat_map(|i| format!("{{\"price\":{}}},", i * 7 % 113).into_bytes())
            .collect();
        for (mem_level, c_zlib) in [(1, true), (5, true), (7, true), (8, false), (9, false)] {
            let mut compressor = Compressor::new(6, 12, mem_level);
            assert_eq!(
                matches!(compressor, Compressor::Zlib(_)),
                c_zlib,
                "mem_level {mem_level}"
            );
            let mut inflater = Inflate::new(false, 12);
            for round in 0..3 {
                let mut wire = vec![0; text.len() + 64];
                let (consumed, written) = compressor.compress_sync(&text, &mut wire);
                assert_eq!(consumed, text.len());
                assert!(wire[..written].ends_with(&[0, 0, 0xff, 0xff]));
                let mut out = vec![0; text.len() + 1];
                let before = inflater.total_out();
                inflater
                    .decompress(&wire[..written], &mut out, InflateFlush::SyncFlush)
                    .unwrap();
                let inflated = (inflater.total_out() - before) as usize;
                assert_eq!(
                    &out[..inflated],
                    &text[..],
                    "mem_level {mem_level}, {round}"
                );
                if round == 1 {
                    compressor.reset();
                    inflater.reset(false);
                }
            }
        }
    }
}
