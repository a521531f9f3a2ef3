//! Checks an opening handshake request against RFC 6455 §4.2.1, in one pass over its
//! headers.

use http::{HeaderMap, HeaderValue, Method, Version, header};

use crate::{
    error::HandshakeError,
    handshake::{
        CONNECTION, CONTENT_LENGTH, HOST, Header, KEY, Request, UPGRADE, check_key, check_version,
        lists_token, parse_content_length, repeated, token_not_listed,
    },
};

/// Checks an opening handshake request against RFC 6455 §4.2.1 ("Reading the Client's
/// Opening Handshake"): "If the server, while reading the handshake, finds that the client
/// did not send a handshake that matches the description below [...], the server MUST stop
/// processing the client's handshake and return an HTTP response with an appropriate
/// error code (such as 400 Bad Request)."
///
/// When several things are wrong, the error is the first in the order of that list.
pub(crate) fn validate_request(request: &Request) -> Result<(), HandshakeError> {
    // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if request.method() != Method::GET {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if request.version() != Version::HTTP_11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    // §4.2.1 item 1 goes on: "including a "Request-URI" [RFC2616] that should be
    // interpreted as a /resource name/ defined in Section 3 (or an absolute HTTP/HTTPS URI
    // containing the /resource name/)". That rules out "*" and "host:port".
    let target = request.uri();
    if target.scheme().is_none() && !target.path().starts_with('/') {
        return Err(HandshakeError::MalformedHttp(
            "request target is not a path".to_owned(),
        ));
    }
    let seen = SeenHeaders::collect(request.headers());
    // §4.2.1 item 2: "A |Host| header field containing the server's authority", and
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any request message
    // that contains more than one Host header field".
    seen.host.single(&HOST)?;
    // §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket", treated
    // as an ASCII case-insensitive value."
    seen.upgrade.require(&UPGRADE, "websocket")?;
    // §4.2.1 item 4: "A |Connection| header field that includes the token "Upgrade",
    // treated as an ASCII case-insensitive value."
    seen.connection.require(&CONNECTION, "upgrade")?;
    // §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded [...] value
    // that, when decoded, is 16 bytes in length."
    check_key(seen.key.single(&KEY)?)?;
    // §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
    match seen.version {
        Occurrences::Once(version) => check_version(version)?,
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    // A GET upgrade has no body: bytes behind the head are frames, and a declared body
    // would make them ambiguous.
    if seen.transfer_encoding {
        return Err(HandshakeError::InvalidHeader {
            name: "Transfer-Encoding",
            reason: "a handshake request has no body".to_owned(),
        });
    }
    let content_length = match seen.content_length {
        Occurrences::None => 0,
        Occurrences::Once(value) => parse_content_length(value)?,
        Occurrences::Repeated => return Err(repeated(&CONTENT_LENGTH)),
    };
    if content_length > 0 {
        return Err(HandshakeError::InvalidHeader {
            name: "Content-Length",
            reason: "a handshake request has no body".to_owned(),
        });
    }
    Ok(())
}

/// The headers the handshake checks, gathered in one walk over the map: a lookup per
/// header would hash each name and probe the table again (about a tenth of the server's
/// instructions per connection).
#[derive(Default)]
struct SeenHeaders<'a> {
    host: Occurrences<'a>,
    upgrade: Listing,
    connection: Listing,
    key: Occurrences<'a>,
    version: Occurrences<'a>,
    transfer_encoding: bool,
    content_length: Occurrences<'a>,
}

impl<'a> SeenHeaders<'a> {
    fn collect(headers: &'a HeaderMap) -> Self {
        let mut seen = Self::default();
        for (name, value) in headers {
            // Comparisons of standard names, which `http` represents as a small enum.
            if name == header::HOST {
                seen.host.add(value);
            } else if name == header::UPGRADE {
                seen.upgrade.add(value, "websocket");
            } else if name == header::CONNECTION {
                seen.connection.add(value, "upgrade");
            } else if name == header::SEC_WEBSOCKET_KEY {
                seen.key.add(value);
            } else if name == header::SEC_WEBSOCKET_VERSION {
                seen.version.add(value);
            } else if name == header::TRANSFER_ENCODING {
                seen.transfer_encoding = true;
            } else if name == header::CONTENT_LENGTH {
                seen.content_length.add(value);
            }
        }
        seen
    }
}

/// How often a header that may appear once came, and its value if once.
#[derive(Default)]
enum Occurrences<'a> {
    #[default]
    None,
    Once(&'a HeaderValue),
    Repeated,
}

impl<'a> Occurrences<'a> {
    fn add(&mut self, value: &'a HeaderValue) {
        *self = match self {
            Self::None => Self::Once(value),
            _ => Self::Repeated,
        };
    }

    /// The value, or the error for a header that is missing or repeated.
    fn single(&self, name: &Header) -> Result<&'a HeaderValue, HandshakeError> {
        match *self {
            Self::Once(value) => Ok(value),
            Self::None => Err(HandshakeError::MissingHeader(name.display)),
            Self::Repeated => Err(repeated(name)),
        }
    }
}

/// Whether a list header came, and whether one of its lines listed the wanted token.
/// Several header lines with the same name are one list (RFC 9110 §5.3), so
/// `Connection: keep-alive` followed by `Connection: Upgrade` lists `upgrade`.
#[derive(Default)]
struct Listing {
    present: bool,
    listed: bool,
}

impl Listing {
    fn add(&mut self, value: &HeaderValue, token: &str) {
        self.present = true;
        self.listed = self.listed || lists_token(value.as_bytes(), token);
    }

    fn require(&self, name: &Header, token: &str) -> Result<(), HandshakeError> {
        match (self.present, self.listed) {
            (false, _) => Err(HandshakeError::MissingHeader(name.display)),
            (true, false) => Err(token_not_listed(name, token)),
            (true, true) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_VALUE: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A valid handshake request with `pairs` appended to its headers, and every header
    /// named in `without` left out.
    fn request(pairs: &[(&'static str, &'static str)], without: &[&str]) -> Request {
        let mut builder = Request::builder().uri("/chat");
        for (name, value) in [
            ("host", "example.com"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", KEY_VALUE),
            ("sec-websocket-version", "13"),
        ] {
            if !without.contains(&name) {
                builder = builder.header(name, value);
            }
        }
        for &(name, value) in pairs {
            builder = builder.header(name, value);
        }
        builder.body(()).unwrap()
    }

    fn invalid_header(result: Result<(), HandshakeError>) -> Option<&'static str> {
        match result {
            Err(HandshakeError::InvalidHeader { name, .. }) => Some(name),
            _ => None,
        }
    }

    #[test]
    fn accepts_valid_request_and_lists_spread_over_lines() {
        assert_eq!(validate_request(&request(&[], &[])), Ok(()));
        let spread = request(
            &[
                ("connection", "keep-alive"),
                ("connection", "UPGRADE"),
                ("upgrade", "h2c, WebSocket"),
            ],
            &["connection", "upgrade"],
        );
        assert_eq!(validate_request(&spread), Ok(()));
        assert_eq!(
            validate_request(&request(&[("content-length", "0")], &[])),
            Ok(())
        );
    }

    #[test]
    fn reports_the_first_problem_in_rfc_order() {
        // Host comes before Upgrade, Upgrade before Connection, and so on.
        let many = request(&[("upgrade", "h2c")], &["host", "upgrade", "connection"]);
        assert_eq!(
            validate_request(&many),
            Err(HandshakeError::MissingHeader("Host"))
        );
        let many = request(&[("upgrade", "h2c")], &["upgrade", "connection"]);
        assert_eq!(invalid_header(validate_request(&many)), Some("Upgrade"));
        let many = request(&[], &["connection", "sec-websocket-key"]);
        assert_eq!(
            validate_request(&many),
            Err(HandshakeError::MissingHeader("Connection"))
        );
        let many = request(&[("content-length", "5")], &["sec-websocket-version"]);
        assert_eq!(
            validate_request(&many),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn refuses_repeated_single_headers() {
        // The base request has one Host and one key already.
        let host = request(&[("host", "other.example")], &[]);
        assert_eq!(invalid_header(validate_request(&host)), Some("Host"));
        let key = request(&[("sec-websocket-key", KEY_VALUE)], &[]);
        assert_eq!(
            invalid_header(validate_request(&key)),
            Some("Sec-WebSocket-Key")
        );
        let length = request(&[("content-length", "0"), ("content-length", "0")], &[]);
        assert_eq!(
            invalid_header(validate_request(&length)),
            Some("Content-Length")
        );
        let version = request(&[("sec-websocket-version", "13")], &[]);
        assert_eq!(
            validate_request(&version),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn refuses_a_body() {
        let chunked = request(&[("transfer-encoding", "chunked")], &[]);
        assert_eq!(
            invalid_header(validate_request(&chunked)),
            Some("Transfer-Encoding")
        );
        for length in ["5", "x"] {
            let with_body = request(&[("content-length", length)], &[]);
            assert_eq!(
                invalid_header(validate_request(&with_body)),
                Some("Content-Length"),
                "{length}"
            );
        }
    }
}
