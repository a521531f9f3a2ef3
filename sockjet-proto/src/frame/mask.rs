//! Masking (RFC 6455 §5.3): XOR of the payload with a 4-byte key, and where keys come from.

/// XORs `buf` with `key`, as if `buf` started at payload offset 0.
///
/// Masking and unmasking are the same operation. The loop works on 8-byte words, which
/// LLVM turns into SIMD; on x86-64 CPUs with AVX2 (detected at run time), payloads of
/// 256 bytes or more are XORed 32 bytes at a time, which
/// matters once they stop fitting in the cache (a 1 MiB message is unmasked as it arrives
/// from the socket).
///
/// ```
/// use sockjet_proto::frame::mask::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [1, 2, 3, 4]);
/// apply_mask(&mut data, [1, 2, 3, 4]);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= WIDE_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            wide::apply_mask_avx2(buf, key);
        }
        return;
    }
    apply_mask_words(buf, key);
}

/// Payloads shorter than this are masked by the plain loop: for them the wide one gains
/// nothing.
#[cfg(target_arch = "x86_64")]
const WIDE_MIN: usize = 256;

/// The masking loop on 8-byte words (LLVM vectorises it for the baseline target).
fn apply_mask_words(buf: &mut [u8], key: [u8; 4]) {
    // The key twice over, as `from_ne_bytes` of its bytes repeated would give, in three
    // instructions instead of a byte-by-byte shuffle (a third of a 16-byte unmask).
    let key_half = u64::from(u32::from_ne_bytes(key));
    let key_word = key_half | (key_half << 32);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            let masked = u64::from_ne_bytes(word.try_into().expect("8-byte chunk")) ^ key_word;
            word.copy_from_slice(&masked.to_ne_bytes());
        }
    }
    // The remainder starts at a multiple of 32, so the key phase is unchanged.
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        let masked = u64::from_ne_bytes(word.try_into().expect("8-byte chunk")) ^ key_word;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// The wide loop: the only `unsafe` here is the unaligned load and store of each whole
/// block, which `chunks_exact_mut` guarantees is in bounds.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod wide {
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
    };

    use super::apply_mask_words;

    /// 32 bytes at a time; each 32-bit lane holds the key in byte order, so byte `i` of
    /// a block meets `key[i & 3]`. (AVX-512 gains nothing more here: the loop is bound by
    /// memory, not by the XOR.)
    #[target_feature(enable = "avx2")]
    pub(super) fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4]) {
        let wide_key = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let mut blocks = buf.chunks_exact_mut(32);
        for block in &mut blocks {
            let at = block.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `block` is 32 writable bytes; loadu/storeu need no alignment.
            unsafe {
                _mm256_storeu_si256(at, _mm256_xor_si256(_mm256_loadu_si256(at), wide_key));
            }
        }
        apply_mask_words(blocks.into_remainder(), key);
    }
}

/// XORs `buf` with `key`, where `buf` starts at byte `offset` of the masked payload.
///
/// Used to unmask a frame's payload piece by piece as it arrives.
///
/// ```
/// use sockjet_proto::frame::mask::{apply_mask, apply_mask_at};
/// let key = [9, 8, 7, 6];
/// let mut whole = *b"abcdefghij";
/// let mut pieces = whole;
/// apply_mask(&mut whole, key);
/// apply_mask_at(&mut pieces[..3], key, 0);
/// apply_mask_at(&mut pieces[3..], key, 3);
/// assert_eq!(whole, pieces);
/// ```
pub fn apply_mask_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    apply_mask(buf, rotated);
}

/// A source of masking keys for frames sent by a client.
///
/// RFC 6455 §5.3: "The masking key is a 32-bit value chosen at random by the client ...
/// MUST pick a fresh masking key from the set of allowed 32-bit values. The masking key
/// needs to be unpredictable." Tests inject a fixed source to get deterministic bytes.
///
/// ```
/// use sockjet_proto::MaskKeys;
/// struct Fixed;
/// impl MaskKeys for Fixed {
///     fn next_key(&mut self) -> [u8; 4] { [1, 2, 3, 4] }
/// }
/// assert_eq!(Fixed.next_key(), [1, 2, 3, 4]);
/// ```
pub trait MaskKeys: Send + Sync {
    /// Returns the key for the next frame.
    fn next_key(&mut self) -> [u8; 4];
}

/// Keys from the operating system's random source, fetched 64 keys at a time so that a
/// frame does not cost a system call.
///
/// ```
/// use sockjet_proto::{MaskKeys, OsRandomMaskKeys};
/// let mut keys = OsRandomMaskKeys::default();
/// let _key: [u8; 4] = keys.next_key();
/// ```
#[derive(Debug)]
pub struct OsRandomMaskKeys {
    batch: [u8; KEY_BATCH],
    next: usize,
}

impl Default for OsRandomMaskKeys {
    fn default() -> Self {
        Self {
            batch: [0; KEY_BATCH],
            next: KEY_BATCH,
        }
    }
}

impl MaskKeys for OsRandomMaskKeys {
    fn next_key(&mut self) -> [u8; 4] {
        if self.next == KEY_BATCH {
            // A platform without a random source cannot make a compliant client; failing
            // loudly beats sending predictable masks.
            getrandom::fill(&mut self.batch).expect("the OS random source failed");
            self.next = 0;
        }
        let key = self.batch[self.next..self.next + 4]
            .try_into()
            .expect("4-byte slice");
        self.next += 4;
        key
    }
}

const KEY_BATCH: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte ^= key[(i + offset) & 3];
        }
    }

    #[test]
    fn mask_matches_naive_at_all_alignments_and_lengths() {
        let key = [0x6d, 0xb6, 0xb2, 0x80];
        // Past WIDE_MIN, so that the wide loops (where the CPU has them) are covered too.
        let source: Vec<u8> = (0..600u16).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..16 {
            for len in 0..(source.len() - start) {
                for offset in 0..4 {
                    let mut fast = source[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask_at(&mut fast, key, offset);
                    naive(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    /// Each loop this CPU can run agrees with the byte-by-byte XOR, whatever the length.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[allow(unsafe_code)]
    fn every_wide_loop_the_cpu_has_matches_naive() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let source: Vec<u8> = (0..2_000u32).map(|i| (i * 13 + 1) as u8).collect();
        for len in [0, 1, 7, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1_000, 2_000] {
            let mut expected = source[..len].to_vec();
            naive(&mut expected, key, 0);
            let mut plain = source[..len].to_vec();
            apply_mask_words(&mut plain, key);
            assert_eq!(plain, expected, "plain, len {len}");
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut wide = source[..len].to_vec();
                // SAFETY: AVX2 is present, checked above.
                unsafe { wide::apply_mask_avx2(&mut wide, key) };
                assert_eq!(wide, expected, "avx2, len {len}");
            }
        }
    }

    #[test]
    fn os_keys_change() {
        let mut keys = OsRandomMaskKeys::default();
        let all: Vec<[u8; 4]> = (0..200).map(|_| keys.next_key()).collect();
        assert!(all.windows(2).any(|w| w[0] != w[1]));
    }
}
