//! Header grammar used by the handshake: comma-separated lists and tokens (RFC 9110 §5.6),
//! and the checks of the WebSocket-specific headers (RFC 6455 §4.1, §4.2.1).

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::error::HandshakeError;

/// The elements of a comma-separated list (RFC 9110 §5.6.1 `#element`), with the optional
/// whitespace around each trimmed.
///
/// RFC 9110 §5.6.1: "a recipient MUST parse and ignore a reasonable number of empty list
/// elements", so `", a,,b ,"` yields `a` and `b`.
pub(crate) fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// A header the handshake looks up: its name parsed once (a lookup by `&str` parses and
/// hashes the string every time) and its usual spelling, for error messages.
pub(crate) struct Header {
    pub(crate) name: HeaderName,
    pub(crate) display: &'static str,
}

impl Header {
    const fn new(name: HeaderName, display: &'static str) -> Self {
        Self { name, display }
    }
}

pub(crate) static HOST: Header = Header::new(header::HOST, "Host");
pub(crate) static UPGRADE: Header = Header::new(header::UPGRADE, "Upgrade");
pub(crate) static CONNECTION: Header = Header::new(header::CONNECTION, "Connection");
pub(crate) static CONTENT_LENGTH: Header = Header::new(header::CONTENT_LENGTH, "Content-Length");
pub(crate) static SEC_WEBSOCKET_ACCEPT: Header =
    Header::new(header::SEC_WEBSOCKET_ACCEPT, "Sec-WebSocket-Accept");
pub(crate) static SEC_WEBSOCKET_PROTOCOL: Header =
    Header::new(header::SEC_WEBSOCKET_PROTOCOL, "Sec-WebSocket-Protocol");
pub(crate) static KEY: Header = Header::new(header::SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key");
static VERSION: Header = Header::new(header::SEC_WEBSOCKET_VERSION, "Sec-WebSocket-Version");

/// Requires `name` to list `token`, compared ASCII case-insensitively:
/// [`HandshakeError::MissingHeader`] if `name` is absent, [`HandshakeError::InvalidHeader`]
/// if it does not list it.
pub(crate) fn require_token(
    headers: &HeaderMap,
    name: &Header,
    token: &str,
) -> Result<(), HandshakeError> {
    // One lookup for both questions: is it there, and does it list the token.
    let mut values = headers.get_all(&name.name).iter().peekable();
    if values.peek().is_none() {
        return Err(HandshakeError::MissingHeader(name.display));
    }
    // Several header lines with the same name are one list (RFC 9110 §5.3), so
    // `Connection: keep-alive` followed by `Connection: Upgrade` lists `upgrade`.
    if !values.any(|value| lists_token(value.as_bytes(), token)) {
        return Err(token_not_listed(name, token));
    }
    Ok(())
}

/// Whether the list `value` has `token` as one of its elements, ASCII case-insensitively.
pub(crate) fn lists_token(value: &[u8], token: &str) -> bool {
    // A value that is the token alone (`Upgrade: websocket`) is what clients send: one
    // comparison instead of splitting.
    value.eq_ignore_ascii_case(token.as_bytes())
        || split_list(value).any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

/// The error for a header `name` that is present but does not list `token`.
pub(crate) fn token_not_listed(name: &Header, token: &str) -> HandshakeError {
    HandshakeError::InvalidHeader {
        name: name.display,
        reason: format!("{token} not listed"),
    }
}

/// The error for a header `name` that may appear once but came more than once.
pub(crate) fn repeated(name: &Header) -> HandshakeError {
    HandshakeError::InvalidHeader {
        name: name.display,
        reason: "more than one".to_owned(),
    }
}

/// The value of a header that may appear at most once: `Ok(None)` if absent, an
/// [`HandshakeError::InvalidHeader`] if repeated.
pub(crate) fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &Header,
) -> Result<Option<&'a HeaderValue>, HandshakeError> {
    let mut values = headers.get_all(&name.name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        (Some(_), Some(_)) => Err(repeated(name)),
        (None, Some(_)) => unreachable!("an iterator yielded after None"),
    }
}

/// Whether `text` is an HTTP token (RFC 9110 §5.6.2: `1*tchar`). Subprotocol names must be
/// tokens (RFC 6455 §4.1).
pub(crate) fn is_token(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&byte| is_tchar(byte))
}

/// Checks `Sec-WebSocket-Key`.
///
/// RFC 6455 §4.2.1: the request must contain "A |Sec-WebSocket-Key| header field with a
/// base64-encoded (see Section 4 of [RFC4648]) value that, when decoded, is 16 bytes in
/// length."
///
/// Returns the key as sent, which is what `Sec-WebSocket-Accept` hashes.
pub(crate) fn validate_key(headers: &HeaderMap) -> Result<&[u8], HandshakeError> {
    let key = single_value(headers, &KEY)?.ok_or(HandshakeError::MissingHeader(KEY.display))?;
    check_key(key)
}

/// Checks the value of a `Sec-WebSocket-Key` that came once, as [`validate_key`] does.
pub(crate) fn check_key(key: &HeaderValue) -> Result<&[u8], HandshakeError> {
    let key = trim_ows(key.as_bytes());
    let invalid = |reason: String| HandshakeError::InvalidHeader {
        name: KEY.display,
        reason,
    };
    // Every client sends a canonical key: checked without decoding. Anything else is
    // decoded for the reason it is refused (or accepted: the decoder has the last word).
    if is_canonical_16_byte_base64(key) {
        return Ok(key);
    }
    // Decoded on the stack: 24 base64 characters (the length of 16 bytes) decode to at
    // most 18 bytes, and anything longer is refused unread.
    let mut decoded = [0u8; 18];
    let decoded_len = if key.len() > 24 {
        None
    } else {
        Some(
            STANDARD
                .decode_slice(key, &mut decoded)
                .map_err(|error| invalid(format!("not base64 ({error})")))?,
        )
    };
    if decoded_len != Some(16) {
        let why = match decoded_len {
            Some(len) => format!("{len} bytes long, not 16"),
            None => format!("{} characters long, not 24", key.len()),
        };
        return Err(invalid(why));
    }
    Ok(key)
}

/// Whether `key` is the standard base64 of 16 bytes as an encoder writes it: 22
/// characters of the alphabet, the last of which carries 2 bits and 4 zero bits, then
/// `==` (what the decoder accepts as decoding to 16 bytes, without decoding).
fn is_canonical_16_byte_base64(key: &[u8]) -> bool {
    let [body @ .., last, b'=', b'='] = key else {
        return false;
    };
    // Folded without a branch per character: the characters of a random key are
    // unpredictable, and a `match` on their ranges mispredicts about once each.
    let mut all_digits = true;
    for &byte in body {
        all_digits &= BASE64_DIGITS[usize::from(byte)] != NOT_BASE64;
    }
    key.len() == 24 && all_digits && BASE64_DIGITS[usize::from(*last)] & 0x0f == 0
}

/// Marks a byte that is not a character of the standard base64 alphabet.
const NOT_BASE64: u8 = 0xff;

/// The value of each character of the standard base64 alphabet (RFC 4648 §4), and
/// [`NOT_BASE64`] for every other byte.
static BASE64_DIGITS: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [NOT_BASE64; 256];
    let mut value = 0;
    while value < alphabet.len() {
        table[alphabet[value] as usize] = value as u8;
        value += 1;
    }
    table
};

/// Checks `Sec-WebSocket-Version`.
///
/// RFC 6455 §4.2.1 requires "A |Sec-WebSocket-Version| header field, with a value of 13",
/// and §4.2.2: "If this version does not match a version understood by the server, the
/// server MUST abort the WebSocket handshake [...] and instead send an appropriate HTTP
/// error code (such as 426 Upgrade Required)". A missing header is treated the same way.
pub(crate) fn validate_version(headers: &HeaderMap) -> Result<(), HandshakeError> {
    let mut values = headers.get_all(&VERSION.name).iter();
    match (values.next(), values.next()) {
        (Some(version), None) => check_version(version),
        _ => Err(HandshakeError::UnsupportedVersion),
    }
}

/// Checks the value of a `Sec-WebSocket-Version` that came once, as [`validate_version`]
/// does.
pub(crate) fn check_version(version: &HeaderValue) -> Result<(), HandshakeError> {
    if trim_ows(version.as_bytes()) == super::WEBSOCKET_VERSION.as_bytes() {
        Ok(())
    } else {
        Err(HandshakeError::UnsupportedVersion)
    }
}

/// Removes optional whitespace (RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`) at both ends.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// RFC 9110 §5.6.2: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
/// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn split_list_trims_and_skips_empty_elements() {
        let elements: Vec<&[u8]> = split_list(b" ,a,, b\t ,c d,").collect();
        assert_eq!(elements, [&b"a"[..], b"b", b"c d"]);
        assert_eq!(split_list(b"").count(), 0);
        assert_eq!(split_list(b" , ,").count(), 0);
    }

    #[test]
    fn tokens_combine_header_lines_and_ignore_case() {
        let map = headers(&[("connection", "keep-alive"), ("connection", "UpGrade")]);
        assert!(require_token(&map, &CONNECTION, "upgrade").is_ok());
        assert!(require_token(&map, &CONNECTION, "Keep-Alive").is_ok());
        assert!(matches!(
            require_token(&map, &CONNECTION, "close"),
            Err(HandshakeError::InvalidHeader { .. })
        ));
        assert!(matches!(
            require_token(&map, &UPGRADE, "websocket"),
            Err(HandshakeError::MissingHeader("Upgrade"))
        ));
    }

    #[test]
    fn tokens_match_whole_elements_only() {
        let map = headers(&[
            ("upgrade", "websockets, h2c"),
            ("connection", "upgrade-ish"),
        ]);
        assert!(require_token(&map, &UPGRADE, "websocket").is_err());
        assert!(require_token(&map, &CONNECTION, "upgrade").is_err());
    }

    static ORIGIN: Header = Header::new(header::ORIGIN, "Origin");

    #[test]
    fn single_value_rejects_repeated_header() {
        let map = headers(&[("host", "a"), ("host", "b"), ("origin", "o")]);
        assert!(matches!(
            single_value(&map, &HOST),
            Err(HandshakeError::InvalidHeader { name: "Host", .. })
        ));
        assert_eq!(single_value(&map, &ORIGIN).unwrap().unwrap(), "o");
        assert_eq!(single_value(&map, &UPGRADE).unwrap(), None);
    }

    #[test]
    fn is_token_accepts_tchars_only() {
        assert!(is_token(b"chat.v2+json"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a,b"));
        assert!(!is_token(b"a/b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn validate_key_requires_16_base64_bytes() {
        let valid = headers(&[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]);
        assert_eq!(validate_key(&valid).unwrap(), b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            validate_key(&HeaderMap::new()),
            Err(HandshakeError::MissingHeader("Sec-WebSocket-Key"))
        );
        for bad in [
            "",
            "dGhlIHNhbXBsZQ==",
            "dGhlIHNhbXBsZSBub25jZSEh",
            "!!!!IHNhbXBsZSBub25jZQ==",
        ] {
            let map = headers(&[("sec-websocket-key", bad)]);
            assert!(
                matches!(
                    validate_key(&map),
                    Err(HandshakeError::InvalidHeader {
                        name: "Sec-WebSocket-Key",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validate_version_requires_exactly_13() {
        assert_eq!(
            validate_version(&headers(&[("sec-websocket-version", "13")])),
            Ok(())
        );
        for bad in [
            &[][..],
            &[("sec-websocket-version", "8")],
            &[("sec-websocket-version", "13, 8")],
        ] {
            assert_eq!(
                validate_version(&headers(bad)),
                Err(HandshakeError::UnsupportedVersion)
            );
        }
        let twice = headers(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-version", "13"),
        ]);
        assert_eq!(
            validate_version(&twice),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    proptest::proptest! {
        /// The check without decoding agrees with the decoder: on the keys clients send
        /// (any 16 bytes, encoded), and on any 24 characters near the alphabet.
        #[test]
        fn canonical_key_check_agrees_with_the_decoder(
            bytes in proptest::array::uniform16(proptest::num::u8::ANY),
            noise in proptest::collection::vec(
                proptest::sample::select(b"AQgwBCDz09+/=-_ .".to_vec()),
                24,
            ),
        ) {
            let key = STANDARD.encode(bytes);
            proptest::prop_assert!(is_canonical_16_byte_base64(key.as_bytes()));
            let mut decoded = [0u8; 18];
            let decodes_to_16 =
                STANDARD.decode_slice(&noise, &mut decoded).is_ok_and(|len| len == 16);
            if is_canonical_16_byte_base64(&noise) {
                proptest::prop_assert!(decodes_to_16, "{:?}", String::from_utf8_lossy(&noise));
            }
        }
    }

    #[test]
    fn canonical_key_check_refuses_what_the_decoder_refuses() {
        for key in [
            "dGhlIHNhbXBsZSBub25jZR==", // trailing bits set
            "dGhlIHNhbXBsZSBub25jZQ=",  // 23 characters
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25j-Q==", // URL-safe alphabet
            "dGhlIHNhbXBsZSBub25jZQAA",
        ] {
            assert!(!is_canonical_16_byte_base64(key.as_bytes()), "{key}");
        }
        assert!(is_canonical_16_byte_base64(b"dGhlIHNhbXBsZSBub25jZQ=="));
    }
}
