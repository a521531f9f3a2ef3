//! A client `Protocol` on arbitrary bytes, cut into reads where the fuzzer chooses: never
//! panics, the outcome does not depend on the read boundaries, and memory stays bounded by
//! the input. See `sockjet_fuzz::Input` for the input layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_proto::Side;

fuzz_target!(|bytes: &[u8]| {
    sockjet_fuzz::fuzz_protocol(Side::Client, bytes);
});
