//! `apply_mask` and `apply_mask_at` against a byte-by-byte XOR, at every alignment and key
//! phase, whole and in pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjet_fuzz::Input;
use sockjet_proto::frame::mask::{apply_mask, apply_mask_at};

fn naive(bytes: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::parse(bytes) else {
        return;
    };
    let [a, b, c, d, offset, data @ ..] = input.data else {
        return;
    };
    let key = [*a, *b, *c, *d];
    // Buffer alignment varies with the slice start; the key phase with the offset.
    let start = usize::from(*offset % 16).min(data.len());
    let offset = usize::from(*offset);
    let mut fast = data.to_vec();
    let mut slow = data.to_vec();
    apply_mask_at(&mut fast[start..], key, offset);
    naive(&mut slow[start..], key, offset);
    assert_eq!(fast, slow);

    let mut whole = data.to_vec();
    apply_mask(&mut whole, key);
    let mut expected = data.to_vec();
    naive(&mut expected, key, 0);
    assert_eq!(whole, expected);

    // The pieces of `Input` are cut from the whole input, so cut `data` at the same sizes.
    let mut pieces = Vec::with_capacity(data.len());
    let mut rest = data;
    for piece in &input.pieces {
        let len = piece.len().min(rest.len());
        let mut chunk = rest[..len].to_vec();
        apply_mask_at(&mut chunk, key, pieces.len());
        pieces.extend(chunk);
        rest = &rest[len..];
    }
    let mut chunk = rest.to_vec();
    apply_mask_at(&mut chunk, key, pieces.len());
    pieces.extend(chunk);
    assert_eq!(pieces, expected);
});
