//! `Utf8Validator` against `std::str::from_utf8`, on arbitrary bytes fed in pieces the
//! fuzzer chooses: the same verdict, and an error exactly at the first piece after which
//! the bytes can no longer start valid UTF-8 (fail fast).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_fuzz::Input;
use sockjet_proto::utf8::Utf8Validator;

fn is_valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::parse(bytes) else {
        return;
    };
    let valid = std::str::from_utf8(input.data).is_ok();
    assert_eq!(Utf8Validator::validate_complete(input.data).is_ok(), valid);
    let mut validator = Utf8Validator::default();
    let mut fed = 0;
    for piece in &input.pieces {
        fed += piece.len();
        let result = validator.feed(piece);
        assert_eq!(
            result.is_ok(),
            is_valid_prefix(&input.data[..fed]),
            "after {fed} bytes"
        );
        if result.is_err() {
            assert!(!valid);
            return;
        }
    }
    assert_eq!(validator.is_complete(), valid);
});
