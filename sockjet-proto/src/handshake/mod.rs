//! The opening handshake (RFC 6455 §4): HTTP/1.1 types and the `Sec-WebSocket-Accept`
//! computation.
//!
//! [`ServerProtocol`](crate::ServerProtocol) and [`ClientProtocol`](crate::ClientProtocol)
//! run the handshake; this module holds what they share with the application.
//!
//! ```
//! use sockjet_proto::handshake::accept_key;
//! // The example of RFC 6455 §1.3.
//! assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! ```

mod headers;
mod http11;

use base64::{Engine, engine::general_purpose::STANDARD};
use sha1::{Digest, Sha1};

pub use crate::error::HandshakeError;

pub(crate) use headers::{
    CONNECTION, CONTENT_LENGTH, HOST, Header, KEY, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL,
    UPGRADE, check_key, check_version, is_token, lists_token, repeated, require_token,
    single_value, split_list, token_not_listed, trim_ows, validate_key, validate_version,
};
pub(crate) use http11::{
    HeadLimits, HeadParser, content_length, parse_content_length, parse_request, parse_response,
    write_request, write_response,
};

/// An opening handshake request, as the server receives it or the client sends it.
///
/// Its URI is the request target as it appears on the request line (a path and query,
/// usually); the `Host` header holds the authority.
///
/// ```
/// use sockjet_proto::{Request, http::Method};
/// let request = Request::builder().uri("/chat").body(()).unwrap();
/// assert_eq!(request.method(), Method::GET);
/// ```
pub type Request = http::Request<()>;

/// An opening handshake response: `101 Switching Protocols`, or an HTTP error with a body.
///
/// ```
/// use sockjet_proto::{Bytes, Response, http::StatusCode};
/// let response = Response::new(Bytes::from_static(b"go away"));
/// assert_eq!(response.status(), StatusCode::OK);
/// ```
pub type Response = http::Response<bytes::Bytes>;

/// Parses a complete HTTP/1.1 response head: status line, headers and the empty line
/// that ends them. A server that keeps the bytes of the response it sent, rather than the
/// parsed [`Response`], parses them again with this when asked.
///
/// # Errors
///
/// [`HandshakeError::MalformedHttp`] (or another header error) if `head` is not a
/// complete, valid response head.
///
/// ```
/// let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
/// let response = sockjet_proto::handshake::parse_response_head(head).unwrap();
/// assert_eq!(response.status(), 101);
/// assert_eq!(response.headers()["upgrade"], "websocket");
/// ```
pub fn parse_response_head(head: &[u8]) -> Result<Response, HandshakeError> {
    parse_response(
        head,
        HeadLimits {
            max_start_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 256,
        },
    )
}

/// The only WebSocket version this crate speaks (RFC 6455 §4.1: "The value of this header
/// field MUST be 13").
///
/// ```
/// assert_eq!(sockjet_proto::handshake::WEBSOCKET_VERSION, "13");
/// ```
pub const WEBSOCKET_VERSION: &str = "13";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2): the base64
/// SHA-1 of the key, as sent (still base64), followed by the protocol's GUID.
///
/// ```
/// use sockjet_proto::handshake::accept_key;
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut encoded = [0u8; ACCEPT_KEY_LEN];
    String::from_utf8_lossy(encode_accept_key(key, &mut encoded)).into_owned()
}

/// [`accept_key`] as a header value, encoded on the stack (one allocation, the value's).
pub(crate) fn accept_key_value(key: &[u8]) -> http::HeaderValue {
    let mut encoded = [0u8; ACCEPT_KEY_LEN];
    http::HeaderValue::from_bytes(encode_accept_key(key, &mut encoded))
        .expect("base64 is a valid header value")
}

/// Base64 of a SHA-1 digest (20 bytes): 28 characters.
pub(crate) const ACCEPT_KEY_LEN: usize = 28;

pub(crate) fn encode_accept_key<'a>(key: &[u8], out: &'a mut [u8; ACCEPT_KEY_LEN]) -> &'a [u8] {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    let len = STANDARD
        .encode_slice(sha1.finalize(), out)
        .expect("28 bytes hold the base64 of 20");
    &out[..len]
}

/// RFC 6455 §1.3: the "Globally Unique Identifier" appended to the key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn accept_key_matches_second_known_pair() {
        // The example exchange of the Wikipedia "WebSocket" article, checked independently
        // with Python's hashlib.
        assert_eq!(
            accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
            "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        );
    }
}
