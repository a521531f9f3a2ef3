//! Just enough HTTP/1.1 for the opening handshake: find the end of a request or response
//! head as bytes trickle in, parse it with `httparse`, and write heads out.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use super::{
    Request, Response,
    headers::{CONTENT_LENGTH, single_value},
};
use crate::error::HandshakeError;

/// Limits on the size of an HTTP head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    /// Longest start line (request line or status line), counting its CRLF.
    pub(crate) max_start_line: usize,
    /// Largest header block, counting every CRLF up to the empty line that ends the head.
    pub(crate) max_header_bytes: usize,
    /// Most header lines.
    pub(crate) max_headers: usize,
}

/// Finds where an HTTP/1.1 head ends, incrementally and in linear time, enforcing
/// [`HeadLimits`] as soon as the buffered bytes break one.
///
/// Each call resumes the scan where the previous one stopped, so a head that arrives one
/// byte at a time is examined once overall, not once per byte received.
#[derive(Debug)]
pub(crate) struct HeadParser {
    limits: HeadLimits,
    /// Offset of the first byte not examined yet.
    scanned: usize,
    /// Offset where the line being scanned starts.
    line_start: usize,
    /// Length of the start line with its CRLF, once complete.
    start_line_len: Option<usize>,
    /// Header lines seen so far.
    header_lines: usize,
    /// Length of the whole head, once its empty line was found.
    head_len: Option<usize>,
    /// Bytes compared so far, across calls; tests check that it stays linear.
    #[cfg(test)]
    bytes_examined: usize,
}

impl HeadParser {
    pub(crate) fn new(limits: HeadLimits) -> Self {
        Self {
            limits,
            scanned: 0,
            line_start: 0,
            start_line_len: None,
            header_lines: 0,
            head_len: None,
            #[cfg(test)]
            bytes_examined: 0,
        }
    }

    /// The limits this parser enforces.
    pub(crate) fn limits(&self) -> HeadLimits {
        self.limits
    }

    /// Returns the length of the head (up to and including the empty line) once `buffer`
    /// holds all of it, `Ok(None)` while more bytes are needed.
    ///
    /// `buffer` must start with the head and may only have grown at its end since the
    /// previous call: the bytes already scanned are not looked at again.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::RequestLineTooLong`] or [`HandshakeError::HeadersTooLarge`] as soon
    /// as the bytes show a limit is exceeded (even before the head is complete), and
    /// [`HandshakeError::MalformedHttp`] for a line not ended by CRLF.
    pub(crate) fn find_end(&mut self, buffer: &[u8]) -> Result<Option<usize>, HandshakeError> {
        if let Some(head_len) = self.head_len {
            return Ok(Some(head_len));
        }
        debug_assert!(buffer.len() >= self.scanned, "the head buffer shrank");
        while let Some(position) = self.find_line_feed(buffer) {
            let line_feed = self.scanned + position;
            self.scanned = line_feed + 1;
            let line_len = self.scanned - self.line_start;
            // Limits first, so that the error does not depend on how the bytes were split
            // into reads (without the line feed, only the limits can be checked).
            match self.start_line_len {
                None if line_len > self.limits.max_start_line => {
                    return Err(HandshakeError::RequestLineTooLong);
                }
                Some(start_line_len)
                    if self.scanned - start_line_len > self.limits.max_header_bytes =>
                {
                    return Err(HandshakeError::HeadersTooLarge);
                }
                _ => {}
            }
            // RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator. We do
            // not: no WebSocket client sends one, and a single terminator keeps the end of
            // the head unambiguous (bare LFs are a classic request smuggling ingredient).
            if line_feed == self.line_start || buffer[line_feed - 1] != b'\r' {
                return Err(HandshakeError::MalformedHttp(
                    "line not terminated by CRLF".to_owned(),
                ));
            }
            self.line_start = self.scanned;
            let Some(_) = self.start_line_len else {
                if line_len == CRLF.len() {
                    // RFC 9112 §2.2 suggests ignoring an empty line before a request line;
                    // it only ever follows a previous request on a reused connection,
                    // which never happens before a WebSocket handshake.
                    return Err(HandshakeError::MalformedHttp(
                        "empty line before the start line".to_owned(),
                    ));
                }
                self.start_line_len = Some(line_len);
                continue;
            };
            if line_len == CRLF.len() {
                self.head_len = Some(self.scanned);
                return Ok(self.head_len);
            }
            self.header_lines += 1;
            if self.header_lines > self.limits.max_headers {
                return Err(HandshakeError::HeadersTooLarge);
            }
        }
        self.scanned = buffer.len();
        // The head is incomplete, so at least one more line feed has to arrive: if what is
        // buffered already reaches a limit, the complete line or block would exceed it.
        match self.start_line_len {
            None if buffer.len() - self.line_start >= self.limits.max_start_line => {
                Err(HandshakeError::RequestLineTooLong)
            }
            Some(start_line_len)
                if buffer.len() - start_line_len >= self.limits.max_header_bytes =>
            {
                Err(HandshakeError::HeadersTooLarge)
            }
            _ => Ok(None),
        }
    }

    /// Position of the next LF after the scanned bytes, relative to them.
    fn find_line_feed(&mut self, buffer: &[u8]) -> Option<usize> {
        let unscanned = &buffer[self.scanned..];
        let position = memchr::memchr(b'\n', unscanned);
        #[cfg(test)]
        {
            self.bytes_examined += position.map_or(unscanned.len(), |position| position + 1);
        }
        position
    }
}

/// Parses a complete request head, as delimited by [`HeadParser::find_end`].
///
/// # Errors
///
/// [`HandshakeError::UnsupportedHttpVersion`] for a version other than HTTP/1.0 or 1.1,
/// [`HandshakeError::MalformedHttp`] for anything else httparse or `http` refuse.
/// Boxed: the request moves on through the server and into the connection.
pub(crate) fn parse_request(
    head: &[u8],
    limits: HeadLimits,
) -> Result<Box<Request>, HandshakeError> {
    // One copy of the head, which the target and every header value then share: one
    // allocation per request instead of one per header (the connect path's main cost in
    // user space, with the frees when the request is dropped).
    let head = Bytes::copy_from_slice(head);
    let mut stack_slots = [const { MaybeUninit::uninit() }; STACK_HEADER_SLOTS];
    let mut heap_slots = Vec::new();
    let slots = header_slots(&mut stack_slots, &mut heap_slots, limits.max_headers);
    let mut parsed = httparse::Request::new(&mut []);
    // The version ends the request line.
    let request_line = head.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let version_field = request_line
        .rsplit(|&byte| byte == b' ')
        .next()
        .unwrap_or_default();
    let status = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        &head,
        slots,
    );
    check_complete(status, &head, version_field)?;
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        unreachable!("httparse fills in a complete request line");
    };
    let mut request = Box::new(Request::new(()));
    *request.method_mut() = Method::from_bytes(method.as_bytes())
        .map_err(|_| HandshakeError::MalformedHttp("invalid method".to_owned()))?;
    *request.uri_mut() = Uri::from_maybe_shared(head.slice_ref(target.as_bytes()))
        .map_err(|error| HandshakeError::MalformedHttp(format!("invalid target ({error})")))?;
    *request.version_mut() = version(minor);
    *request.headers_mut() = header_map(&head, parsed.headers)?;
    Ok(request)
}

/// Parses a complete response head, as delimited by [`HeadParser::find_end`]; the body of
/// the returned response is empty.
///
/// # Errors
///
/// As [`parse_request`].
pub(crate) fn parse_response(head: &[u8], limits: HeadLimits) -> Result<Response, HandshakeError> {
    let head = Bytes::copy_from_slice(head);
    let mut stack_slots = [const { MaybeUninit::uninit() }; STACK_HEADER_SLOTS];
    let mut heap_slots = Vec::new();
    let slots = header_slots(&mut stack_slots, &mut heap_slots, limits.max_headers);
    let mut parsed = httparse::Response::new(&mut []);
    // The version starts the status line.
    let status = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        &head,
        slots,
    );
    check_complete(status, &head, &head)?;
    let (Some(code), Some(minor)) = (parsed.code, parsed.version) else {
        unreachable!("httparse fills in a complete status line");
    };
    let mut response = Response::default();
    *response.status_mut() = StatusCode::from_u16(code)
        .map_err(|_| HandshakeError::MalformedHttp(format!("invalid status {code}")))?;
    *response.version_mut() = version(minor);
    *response.headers_mut() = header_map(&head, parsed.headers)?;
    Ok(response)
}

/// Header slots on the stack for heads with at most this many header lines (4 KiB of
/// stack, as many as the default limit); a larger configured limit gets them on the heap.
const STACK_HEADER_SLOTS: usize = 128;

/// `max_headers` slots for httparse, from `stack` when they fit, else from `heap`. Left
/// uninitialised: httparse writes each before reading it, so a large limit costs nothing
/// for a short head.
fn header_slots<'a, 'b>(
    stack: &'a mut [MaybeUninit<httparse::Header<'b>>; STACK_HEADER_SLOTS],
    heap: &'a mut Vec<MaybeUninit<httparse::Header<'b>>>,
    max_headers: usize,
) -> &'a mut [MaybeUninit<httparse::Header<'b>>] {
    if max_headers <= STACK_HEADER_SLOTS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        heap
    }
}

/// The value of `Content-Length`, if present.
///
/// # Errors
///
/// [`HandshakeError::InvalidHeader`] if it is repeated or not a decimal number (RFC 9112
/// §6.3: such a message "is unrecoverable").
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HandshakeError> {
    match single_value(headers, &CONTENT_LENGTH)? {
        Some(value) => parse_content_length(value).map(Some),
        None => Ok(None),
    }
}

/// Parses the value of a `Content-Length` that came once, as [`content_length`] does.
pub(crate) fn parse_content_length(value: &HeaderValue) -> Result<u64, HandshakeError> {
    let digits = value.as_bytes();
    // `u64::from_str` alone would also accept a leading '+'.
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HandshakeError::InvalidHeader {
            name: CONTENT_LENGTH.display,
            reason: "not a number".to_owned(),
        });
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(HandshakeError::InvalidHeader {
            name: CONTENT_LENGTH.display,
            reason: "too large".to_owned(),
        })
}

/// Appends `request`'s head: request line (always HTTP/1.1) and headers.
pub(crate) fn write_request(request: &Request, out: &mut BytesMut) {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    out.put_slice(request.method().as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    write_headers(request.headers(), out);
    out.put_slice(CRLF);
}

/// Appends `response`: status line (always HTTP/1.1), headers and body.
///
/// A 1xx, 204 or 304 response has no body (RFC 9112 §6.3), so its body is not written. For
/// other statuses a `Content-Length` is added if the response has none, because the
/// handshake code never writes chunked bodies.
pub(crate) fn write_response(response: &Response, out: &mut BytesMut) {
    let status = response.status();
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(CRLF);
    write_headers(response.headers(), out);
    let has_body = !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    if has_body
        && !response
            .headers()
            .contains_key(http::header::CONTENT_LENGTH)
        && !response
            .headers()
            .contains_key(http::header::TRANSFER_ENCODING)
    {
        out.put_slice(b"Content-Length: ");
        out.put_slice(response.body().len().to_string().as_bytes());
        out.put_slice(CRLF);
    }
    out.put_slice(CRLF);
    if has_body {
        out.put_slice(response.body());
    }
}

/// Maps httparse's result. A version error means another HTTP version only if the version
/// field says "HTTP/"; otherwise the peer does not speak HTTP at all (TLS or SSH on the
/// wrong port, say).
fn check_complete(
    status: Result<httparse::Status<usize>, httparse::Error>,
    head: &[u8],
    version_field: &[u8],
) -> Result<(), HandshakeError> {
    match status {
        Ok(httparse::Status::Complete(len)) if len == head.len() => Ok(()),
        // Invariant: `head` ends at the first empty line, where httparse stops too.
        Ok(_) => Err(HandshakeError::MalformedHttp("incomplete head".to_owned())),
        Err(httparse::Error::Version) if version_field.starts_with(b"HTTP/") => {
            Err(HandshakeError::UnsupportedHttpVersion)
        }
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::HeadersTooLarge),
        Err(error) => Err(HandshakeError::MalformedHttp(error.to_string())),
    }
}

fn version(minor: u8) -> Version {
    match minor {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    }
}

/// The parsed headers as a map whose values are slices of `head`, the bytes httparse
/// parsed (no copy per value).
fn header_map(head: &Bytes, parsed: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for header in parsed {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| HandshakeError::MalformedHttp("invalid header name".to_owned()))?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(header.value))
            .map_err(|_| HandshakeError::MalformedHttp(format!("invalid {name} value")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn write_headers(headers: &HeaderMap, out: &mut BytesMut) {
    for (name, value) in headers {
        write_header_name(name, out);
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(CRLF);
    }
}

/// Writes `name` in its usual spelling (`http` stores names in lowercase). Field names are
/// case-insensitive (RFC 9110 §5.1), but some servers and proxies compare them exactly, and
/// the conventional spelling reads better in logs.
fn write_header_name(name: &HeaderName, out: &mut BytesMut) {
    let name = name.as_str();
    let rest = match name.strip_prefix("sec-websocket-") {
        Some(rest) => {
            out.put_slice(b"Sec-WebSocket-");
            rest
        }
        None => name,
    };
    let mut word_start = true;
    for byte in rest.bytes() {
        out.put_u8(if word_start {
            byte.to_ascii_uppercase()
        } else {
            byte
        });
        word_start = byte == b'-';
    }
}

const CRLF: &[u8] = b"\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_start_line: 64,
        max_header_bytes: 64,
        max_headers: 3,
    };

    fn find_end(head: &[u8]) -> Result<Option<usize>, HandshakeError> {
        HeadParser::new(LIMITS).find_end(head)
    }

    #[test]
    fn find_end_returns_head_length() {
        let bytes = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nframe";
        assert_eq!(find_end(bytes), Ok(Some(bytes.len() - 5)));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r"), Ok(None));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\n"), Ok(Some(18)));
    }

    #[test]
    fn find_end_scans_each_byte_once_when_fed_bytewise() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for index in 0..120 {
            head.extend_from_slice(
                format!("X-Header-{index:03}: {}\r\n", "v".repeat(40)).as_bytes(),
            );
        }
        head.extend_from_slice(b"\r\n");
        let limits = HeadLimits {
            max_start_line: 8192,
            max_header_bytes: 8192,
            max_headers: 128,
        };
        let mut parser = HeadParser::new(limits);
        let mut result = Ok(None);
        for end in 1..=head.len() {
            result = parser.find_end(&head[..end]);
            if end < head.len() {
                assert_eq!(result, Ok(None), "at {end}");
            }
        }
        assert_eq!(result, Ok(Some(head.len())));
        assert_eq!(parser.bytes_examined, head.len());
        assert!(parse_request(&head, limits).is_ok());
    }

    #[test]
    fn find_end_rejects_long_start_line_before_its_end() {
        // 64 bytes and no LF yet: with the LF still to come, the line would be 65.
        assert_eq!(
            find_end(&[b'a'; 64]),
            Err(HandshakeError::RequestLineTooLong)
        );
        assert_eq!(find_end(&[b'a'; 63]), Ok(None));
        // Exactly at the limit, CRLF included.
        let mut line = vec![b'a'; 62];
        line.extend_from_slice(b"\r\n");
        assert_eq!(find_end(&line), Ok(None));
        line.insert(0, b'a');
        assert_eq!(find_end(&line), Err(HandshakeError::RequestLineTooLong));
    }

    #[test]
    fn find_end_rejects_large_header_block_before_its_end() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        head.extend_from_slice(&[b'x'; 63]);
        assert_eq!(find_end(&head), Ok(None));
        head.push(b'x');
        assert_eq!(find_end(&head), Err(HandshakeError::HeadersTooLarge));
        // A block of exactly 64 bytes with its final CRLF is accepted.
        let mut head = b"GET / HTTP/1.1\r\nA: ".to_vec();
        head.extend_from_slice(&[b'x'; 57]);
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(find_end(&head), Ok(Some(head.len())));
    }

    #[test]
    fn find_end_rejects_too_many_headers_before_the_end() {
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
        assert_eq!(find_end(head), Ok(None));
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n";
        assert_eq!(find_end(head), Err(HandshakeError::HeadersTooLarge));
    }

    #[test]
    fn find_end_rejects_bare_line_feeds() {
        for head in [
            &b"GET / HTTP/1.1\n"[..],
            b"\n",
            b"GET / HTTP/1.1\r\nHost: a\n",
        ] {
            assert!(
                matches!(find_end(head), Err(HandshakeError::MalformedHttp(_))),
                "{head:?}"
            );
        }
        assert!(matches!(
            find_end(b"\r\nGET"),
            Err(HandshakeError::MalformedHttp(_))
        ));
    }

    #[test]
    fn parse_request_keeps_target_version_and_headers() {
        let head = b"GET /chat?room=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        let request = parse_request(head, LIMITS).unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/chat?room=1");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["host"], "a");
        let values: Vec<_> = request.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
    }

    #[test]
    fn parse_request_maps_errors() {
        assert_eq!(
            parse_request(b"GET / HTTP/2.0\r\n\r\n", LIMITS).unwrap_err(),
            HandshakeError::UnsupportedHttpVersion
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.0\r\n\r\n", LIMITS)
                .unwrap()
                .version(),
            Version::HTTP_10
        );
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", LIMITS),
            Err(HandshakeError::MalformedHttp(_))
        ));
        assert!(matches!(
            parse_request(b"GET  HTTP/1.1\r\n\r\n", LIMITS),
            Err(HandshakeError::MalformedHttp(_))
        ));
    }

    #[test]
    fn parse_response_maps_version_errors() {
        assert_eq!(
            parse_response(b"HTTP/2 101 Switching Protocols\r\n\r\n", LIMITS).unwrap_err(),
            HandshakeError::UnsupportedHttpVersion
        );
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", LIMITS),
            Err(HandshakeError::MalformedHttp(_))
        ));
    }

    #[test]
    fn parse_response_reads_status() {
        let response = parse_response(b"HTTP/1.1 404 Nope\r\nA: b\r\n\r\n", LIMITS).unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["a"], "b");
        assert!(response.body().is_empty());
    }

    #[test]
    fn content_length_is_strict() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(&headers), Ok(None));
        headers.insert("content-length", HeaderValue::from_static("42"));
        assert_eq!(content_length(&headers), Ok(Some(42)));
        for bad in ["+1", "", "1 2", "99999999999999999999999"] {
            headers.insert("content-length", HeaderValue::from_static(bad));
            assert!(content_length(&headers).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn write_request_spells_header_names_conventionally() {
        let request = Request::builder()
            .uri("ws://example.com/a?b")
            .header("host", "example.com")
            .header("sec-websocket-key", "k")
            .header("x-custom-thing", "1")
            .body(())
            .unwrap();
        let mut out = BytesMut::new();
        write_request(&request, &mut out);
        assert_eq!(
            &out[..],
            b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nSec-WebSocket-Key: k\r\n\
              X-Custom-Thing: 1\r\n\r\n"
        );
    }

    #[test]
    fn write_response_adds_content_length_and_skips_101_body() {
        let mut out = BytesMut::new();
        let response = Response::new(bytes::Bytes::from_static(b"hello"));
        write_response(&response, &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        );

        let mut out = BytesMut::new();
        let mut response = Response::new(bytes::Bytes::from_static(b"ignored"));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        write_response(&response, &mut out);
        assert_eq!(&out[..], b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    }
}
