//! permessage-deflate compression with arbitrary settings and messages, C zlib's and
//! zlib-rs's compressors both: every message inflates back whole (see
//! `sockjet_fuzz::fuzz_deflate_round_trip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    sockjet_fuzz::fuzz_deflate_round_trip(bytes);
});
