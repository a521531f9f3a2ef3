//! Incremental UTF-8 validation that fails at the first invalid byte, across fragments.

/// Validates a byte stream as UTF-8, fed in arbitrary pieces.
///
/// A code point may be split between pieces; the validator keeps its first bytes (at most
/// 3). An invalid sequence is reported as soon as the piece that makes it invalid is fed,
/// not at the end of the message (Autobahn 6.4.*: "fail fast on UTF-8").
///
/// ```
/// use sockjet_proto::utf8::Utf8Validator;
/// let mut validator = Utf8Validator::default();
/// let euro = "€".as_bytes(); // E2 82 AC
/// assert!(validator.feed(&euro[..1]).is_ok());
/// assert!(validator.feed(&euro[1..]).is_ok());
/// assert!(validator.is_complete());
/// assert!(validator.feed(&[0xE2, 0x28]).is_err()); // 0x28 cannot continue E2
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not valid UTF-8.
///
/// ```
/// let mut v = sockjet_proto::utf8::Utf8Validator::default();
/// let error: sockjet_proto::utf8::InvalidUtf8 = v.feed(b"\xFF").unwrap_err();
/// assert_eq!(error.to_string(), "invalid UTF-8");
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct InvalidUtf8;

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Whether `data` is valid UTF-8, as a whole.
///
/// Short ASCII text, what most small messages are (JSON, chat lines, tickers), is
/// checked with `is_ascii`, which reads a word at a time: below 64 bytes simdutf8 hands
/// over to std's validator, which goes a byte at a time until its reads are aligned and
/// costs about 100 instructions for a 16-byte message.
pub(crate) fn is_valid(data: &[u8]) -> bool {
    (data.len() < SHORT && data.is_ascii()) || simdutf8::basic::from_utf8(data).is_ok()
}

/// Inputs shorter than this go to std's validator inside simdutf8.
const SHORT: usize = 64;

impl Utf8Validator {
    /// Feeds the next piece of the stream.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] as soon as the bytes seen so far cannot be the start of valid UTF-8.
    /// The validator should not be used after an error.
    ///
    /// ```
    /// let mut v = sockjet_proto::utf8::Utf8Validator::default();
    /// assert!(v.feed(b"\xF0\x9F").is_ok()); // a valid prefix of an emoji
    /// assert!(!v.is_complete());
    /// ```
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            data = self.complete_pending(data)?;
            if self.pending_len > 0 {
                return Ok(());
            }
        }
        // Fast path: a whole valid piece.
        if is_valid(data) {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            // Truncated at the end of the piece: keep the prefix for the next one.
            Err(error) if error.error_len().is_none() => {
                let tail = &data[error.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Starts a new stream (the bytes kept of a split code point are ignored once their
    /// count is 0).
    pub(crate) fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Whether the stream fed so far ends on a code point boundary. A message must be
    /// complete when its last fragment has been fed.
    ///
    /// ```
    /// assert!(sockjet_proto::utf8::Utf8Validator::default().is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Validates a whole buffer in one call; the fast path for unfragmented text.
    ///
    /// ```
    /// use sockjet_proto::utf8::Utf8Validator;
    /// assert!(Utf8Validator::validate_complete("ok".as_bytes()).is_ok());
    /// assert!(Utf8Validator::validate_complete(b"\xC3").is_err());
    /// ```
    pub fn validate_complete(data: &[u8]) -> Result<(), InvalidUtf8> {
        match is_valid(data) {
            true => Ok(()),
            false => Err(InvalidUtf8),
        }
    }

    /// Adds bytes to the pending code point; returns what is left of `data`.
    fn complete_pending<'a>(&mut self, data: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let start = usize::from(self.pending_len);
        let needed = sequence_len(self.pending[0]);
        let take = (needed - start).min(data.len());
        self.pending[start..start + take].copy_from_slice(&data[..take]);
        let have = start + take;
        match std::str::from_utf8(&self.pending[..have]) {
            Ok(_) => self.pending_len = 0,
            Err(error) if error.error_len().is_none() && have < needed => {
                self.pending_len = have as u8;
            }
            Err(_) => return Err(InvalidUtf8),
        }
        Ok(&data[take..])
    }
}

/// Length of the sequence a lead byte announces. Only called on bytes that a validator
/// accepted as a truncated prefix, so they are valid lead bytes.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], splits: &[usize]) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &end in splits.iter().chain(std::iter::once(&data.len())) {
            v.feed(&data[start..end])?;
            start = end;
        }
        Ok(v.is_complete())
    }

    #[test]
    fn agrees_with_std_at_every_split() {
        let samples: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "€𝄞 mixed ascii".as_bytes(),
            b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited",
            b"\xF4\x90\x80\x80",
            b"\xF0\x9F\x98",
            b"\xC0\xAF",
            b"\xED\x9F\xBF",
            b"\xEF\xBF\xBF",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample).is_ok();
            for a in 0..=sample.len() {
                for b in a..=sample.len() {
                    let ok = matches!(feed_split(sample, &[a, b]), Ok(true));
                    assert_eq!(ok, expected, "{sample:?} split {a},{b}");
                }
            }
        }
    }

    proptest::proptest! {
        /// The ASCII shortcut agrees with std on short inputs, mostly ASCII ones with a
        /// stray high byte or multi-byte sequence, at every length around the threshold.
        #[test]
        fn is_valid_agrees_with_std(
            data in proptest::collection::vec(
                proptest::prop_oneof![8 => 0u8..0x80, 1 => 0x80u8..=0xFF],
                0..80,
            ),
        ) {
            proptest::prop_assert_eq!(is_valid(&data), std::str::from_utf8(&data).is_ok());
        }
    }

    #[test]
    fn fails_fast_on_the_piece_that_breaks() {
        let mut v = Utf8Validator::default();
        v.feed(b"hello \xF4").unwrap();
        // F4 90 is above U+10FFFF: invalid as soon as 0x90 arrives.
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
    }
}
