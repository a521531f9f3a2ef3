//! A server `Protocol` with permessage-deflate negotiated, on arbitrary bytes cut into
//! reads where the fuzzer chooses: compressed frames, decompression bombs, corrupt DEFLATE
//! streams and RSV1 misuse must close the connection cleanly (1002, 1007 or 1009), never
//! panic, never depend on read boundaries, and never deliver a message over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_proto::Side;

fuzz_target!(|bytes: &[u8]| {
    sockjet_fuzz::fuzz_protocol_deflate(Side::Server, bytes);
});
