//! WebSocket extensions (RFC 6455 §9): what sockjet negotiates in
//! `Sec-WebSocket-Extensions`, and the per-connection state that runs them.
//!
//! A negotiated extension plugs into a [`Protocol`](crate::Protocol) through the
//! [`Extension`] trait: the protocol hands it the payload of each outgoing data message to
//! encode, and each frame of an incoming message whose first frame carries the extension's
//! reserved bit, to decode. Framing, limits and UTF-8 validation stay in the protocol.
//!
//! The only extension is [`permessage_deflate`] (RFC 7692). Its negotiation is a pair of
//! functions per side ([`DeflateConfig::client_offer`] and
//! [`DeflateConfig::client_accept`], [`DeflateConfig::server_negotiate`]) and its
//! per-connection state is a [`PerMessageDeflate`], which implements [`Extension`].
//!
//! ```
//! use sockjet_proto::extension::permessage_deflate::DeflateConfig;
//! let config = DeflateConfig::default();
//! let (params, response) = config
//!     .server_negotiate(&["permessage-deflate; client_max_window_bits"])
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(response, "permessage-deflate; server_max_window_bits=12");
//! assert_eq!(config.client_accept(&[&response]).unwrap(), params);
//! ```
//!
//! [`DeflateConfig::client_offer`]: permessage_deflate::DeflateConfig::client_offer
//! [`DeflateConfig::client_accept`]: permessage_deflate::DeflateConfig::client_accept
//! [`DeflateConfig::server_negotiate`]: permessage_deflate::DeflateConfig::server_negotiate
//! [`PerMessageDeflate`]: permessage_deflate::PerMessageDeflate

use std::{borrow::Cow, error::Error as StdError, fmt};

use bytes::BytesMut;

mod compressor;
pub mod permessage_deflate;
mod zlib_compressor;

/// The per-connection state of a negotiated extension that transforms the payload of data
/// messages, such as permessage-deflate (a "per-message" extension, RFC 7692 §4).
///
/// It owns one reserved bit ([`rsv`](Self::rsv)) which marks, on the first frame of a
/// message, that the message was encoded. RFC 6455 §5.2 lets only a negotiated extension
/// give a reserved bit a meaning, so the protocol fails a connection on any other bit, on
/// the bit in a control frame or a continuation frame, and on the bit before an extension
/// is set with [`Protocol::set_extension`](crate::Protocol::set_extension).
///
/// ```
/// use sockjet_proto::extension::{DecodeError, Extension};
/// use sockjet_proto::{BytesMut, Event, Message, Protocol, Side, frame::RSV2};
///
/// /// A toy extension: messages with RSV2 travel reversed.
/// #[derive(Debug)]
/// struct Reverse;
///
/// impl Extension for Reverse {
///     fn name(&self) -> &'static str { "x-reverse" }
///     fn rsv(&self) -> u8 { RSV2 }
///     fn encode(&mut self, payload: &[u8], out: &mut BytesMut) -> bool {
///         out.extend(payload.iter().rev());
///         true
///     }
///     fn decode(&mut self, payload: &[u8], fin: bool, out: &mut BytesMut, max_len: usize)
///         -> Result<(), DecodeError> {
///         if out.len() + payload.len() > max_len { return Err(DecodeError::TooBig); }
///         out.extend_from_slice(payload);
///         if fin { out.reverse(); } // the whole message is in `out` at its last frame
///         Ok(())
///     }
/// }
///
/// let mut server = Protocol::new(Side::Server, Default::default());
/// server.set_extension(Box::new(Reverse));
/// server.send_message(Message::binary(vec![1u8, 2, 3])).unwrap();
/// let mut wire = Vec::new();
/// server.outgoing().drain_into(&mut wire);
/// assert_eq!(wire, [0x82 | RSV2 << 4, 3, 3, 2, 1]);
///
/// let mut client = Protocol::new(Side::Client, Default::default());
/// client.set_extension(Box::new(Reverse));
/// client.receive_data(&wire);
/// assert_eq!(client.next_event(), Some(Event::Message(Message::binary(vec![1u8, 2, 3]))));
/// ```
pub trait Extension: fmt::Debug + Send {
    /// The extension's registered name, as in `Sec-WebSocket-Extensions`.
    fn name(&self) -> &'static str;

    /// The reserved bit the extension sets on the first frame of a message it encoded, as
    /// in [`FrameHeader::rsv`](crate::frame::FrameHeader::rsv):
    /// [`RSV1`](crate::frame::RSV1), [`RSV2`](crate::frame::RSV2) or
    /// [`RSV3`](crate::frame::RSV3).
    fn rsv(&self) -> u8;

    /// Encodes the payload of one whole outgoing message, appending the result to `out`.
    /// Returns `false`, leaving `out` as it was, to send this message as it is (without
    /// the reserved bit), e.g. because it is too short to gain from compression.
    fn encode(&mut self, payload: &[u8], out: &mut BytesMut) -> bool;

    /// A key for [`encode`](Self::encode)'s output when it depends on nothing but the
    /// payload and this key: no state carried from message to message (permessage-deflate
    /// without context takeover). Two extensions with the same key encode any payload to
    /// the same bytes, so a message broadcast to many connections is encoded once per key
    /// ([`PreparedMessage`](crate::PreparedMessage)). `None` (the default): encoded per
    /// connection.
    fn shared_encoding(&self) -> Option<u64> {
        None
    }

    /// Decodes one frame of an incoming message whose first frame had the reserved bit,
    /// appending the result to `out`, which holds what the message's earlier frames
    /// decoded to. `fin` is set on the message's last frame. `out` must not grow past
    /// `max_len` bytes (the message size limit): an extension that expands data checks
    /// this as it goes, not afterwards, so that a small frame cannot make it allocate a
    /// huge buffer.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooBig`] past `max_len`, [`DecodeError::Invalid`] for data the
    /// extension cannot decode. Either fails the connection (close codes 1009 and 1007),
    /// so the state need not be usable afterwards.
    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), DecodeError>;
}

/// Why an [`Extension`] could not decode a message.
///
/// ```
/// use sockjet_proto::extension::DecodeError;
/// assert_eq!(DecodeError::TooBig.to_string(), "decoded message over the size limit");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum DecodeError {
    /// The decoded message would be larger than the size limit.
    TooBig,
    /// The payload is not valid for the extension (e.g. corrupt DEFLATE data).
    Invalid,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooBig => f.write_str("decoded message over the size limit"),
            Self::Invalid => f.write_str("invalid extension data"),
        }
    }
}

impl StdError for DecodeError {}

/// One element of a `Sec-WebSocket-Extensions` list: an extension and its parameters.
#[derive(Debug, Eq, PartialEq)]
pub(crate) struct Element<'a> {
    /// The extension's name, as sent.
    pub(crate) name: &'a str,
    pub(crate) params: Vec<Param<'a>>,
}

/// A parameter of an [`Element`]: `name` or `name=value`.
#[derive(Debug, Eq, PartialEq)]
pub(crate) struct Param<'a> {
    pub(crate) name: &'a str,
    /// The value, unquoted if it was a quoted-string; `None` for a valueless parameter.
    pub(crate) value: Option<Cow<'a, str>>,
}

/// Parses the `Sec-WebSocket-Extensions` header lines `values`, as one list (RFC 9110
/// §5.3), into its elements in order. An element that breaks the grammar is an `Err`
/// saying why, and parsing resumes at the next comma, so that one bad element does not
/// hide the others.
///
/// RFC 6455 §9.1:
///
/// ```text
/// extension-list = 1#extension
/// extension = extension-token *( ";" extension-param )
/// extension-token = registered-token
/// registered-token = token
/// extension-param = token [ "=" (token | quoted-string) ]
///     ;When using the quoted-string syntax variant, the value
///     ;after quoted-string unescaping MUST conform to the
///     ;'token' ABNF.
/// ```
///
/// Optional whitespace is accepted around `;`, `=` and `,` (the implied `*LWS` of RFC
/// 2616's `#rule` that RFC 6455 uses), and empty list elements are skipped (RFC 9110
/// §5.6.1).
pub(crate) fn parse_extensions<'a>(values: &[&'a str]) -> Vec<Result<Element<'a>, String>> {
    let mut elements = Vec::new();
    for value in values {
        let mut parser = Parser {
            text: value,
            pos: 0,
        };
        loop {
            parser.skip_ows_and_commas();
            if parser.at_end() {
                break;
            }
            let element = parser.element();
            if element.is_err() {
                parser.skip_element();
            }
            elements.push(element);
        }
    }
    elements
}

/// A cursor over one header value. Only ASCII bytes are ever consumed as syntax, so `pos`
/// always lies on a `char` boundary.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn skip_ows_and_commas(&mut self) {
        while let Some(b' ' | b'\t' | b',') = self.peek() {
            self.pos += 1;
        }
    }

    /// `extension-token *( ";" extension-param )`, up to the next `,` or the end.
    fn element(&mut self) -> Result<Element<'a>, String> {
        let name = self.token().ok_or("expected an extension name")?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => return Ok(Element { name, params }),
                Some(b';') => self.pos += 1,
                Some(_) => return Err(format!("unexpected character after {name}")),
            }
            self.skip_ows();
            let param = self.token().ok_or("expected a parameter name")?;
            self.skip_ows();
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.skip_ows();
                let value = match self.peek() {
                    Some(b'"') => self.quoted_string()?,
                    _ => Cow::Borrowed(self.token().ok_or("expected a parameter value")?),
                };
                if !is_token(&value) {
                    return Err(format!("value of {param} is not a token"));
                }
                Some(value)
            } else {
                None
            };
            params.push(Param { name: param, value });
        }
    }

    /// `1*tchar` (RFC 9110 §5.6.2), or `None` without consuming anything.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.text[start..self.pos])
    }

    /// RFC 9110 §5.6.4: `DQUOTE *( qdtext / quoted-pair ) DQUOTE`, unescaped. Borrowed when
    /// it holds no quoted-pair.
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, String> {
        self.pos += 1; // the opening DQUOTE
        let start = self.pos;
        let mut unescaped: Option<String> = None;
        loop {
            let Some(ch) = self.text[self.pos..].chars().next() else {
                return Err("unterminated quoted-string".to_owned());
            };
            match ch {
                '"' => {
                    let value = match unescaped {
                        Some(owned) => Cow::Owned(owned),
                        None => Cow::Borrowed(&self.text[start..self.pos]),
                    };
                    self.pos += 1;
                    return Ok(value);
                }
                '\\' => {
                    let owned = unescaped.get_or_insert_with(|| self.text[start..self.pos].into());
                    self.pos += 1;
                    let Some(escaped) = self.text[self.pos..].chars().next() else {
                        return Err("unterminated quoted-string".to_owned());
                    };
                    owned.push(escaped);
                    self.pos += escaped.len_utf8();
                }
                _ => {
                    if let Some(owned) = &mut unescaped {
                        owned.push(ch);
                    }
                    self.pos += ch.len_utf8();
                }
            }
        }
    }

    /// Recovers from a malformed element: skips to the next `,` outside a quoted-string.
    fn skip_element(&mut self) {
        let mut quoted = false;
        let bytes = self.text.as_bytes();
        while let Some(&byte) = bytes.get(self.pos) {
            match byte {
                b'"' => quoted = !quoted,
                b'\\' if quoted => self.pos += 1,
                b',' if !quoted => return,
                _ => {}
            }
            self.pos += 1;
        }
        // An escaped last byte may have stepped one past the end.
        self.pos = self.text.len();
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// RFC 9110 §5.6.2: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
/// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(name: &'a str, value: Option<&'a str>) -> Param<'a> {
        Param {
            name,
            value: value.map(Cow::Borrowed),
        }
    }

    #[test]
    fn parses_elements_params_and_values() {
        let parsed = parse_extensions(&[
            "permessage-deflate; client_max_window_bits, foo ;a=1 ; b = \"x\"",
            " , bar",
        ]);
        assert_eq!(
            parsed,
            [
                Ok(Element {
                    name: "permessage-deflate",
                    params: vec![param("client_max_window_bits", None)],
                }),
                Ok(Element {
                    name: "foo",
                    params: vec![param("a", Some("1")), param("b", Some("x"))],
                }),
                Ok(Element {
                    name: "bar",
                    params: vec![],
                }),
            ]
        );
    }

    #[test]
    fn unescapes_quoted_values() {
        let parsed = parse_extensions(&[r#"x; a="1\0"; b="ab""#]);
        let Ok(element) = &parsed[0] else {
            panic!("{parsed:?}")
        };
        assert_eq!(element.params[0].value.as_deref(), Some("10"));
        assert!(matches!(element.params[0].value, Some(Cow::Owned(_))));
        assert!(matches!(element.params[1].value, Some(Cow::Borrowed("ab"))));
        // An empty quoted-string is not a token (RFC 6455 §9.1).
        let parsed = parse_extensions(&[r#"x; b="""#]);
        assert!(parsed[0].is_err(), "{parsed:?}");
    }

    #[test]
    fn a_malformed_element_does_not_hide_the_next() {
        let parsed = parse_extensions(&[
            "a; =1, b; p=\"x, y\", c d, e; f=\"unterminated, g",
            "h; i=\"\\",
            "; j, k",
        ]);
        let summary: Vec<Result<&str, ()>> = parsed
            .iter()
            .map(|element| element.as_ref().map(|element| element.name).map_err(|_| ()))
            .collect();
        // "b" has a quoted comma, which is not a token; the error must skip the whole
        // quoted-string, not resume inside it.
        assert_eq!(
            summary,
            [
                Err(()),
                Err(()),
                Err(()),
                Err(()),
                Err(()),
                Err(()),
                Ok("k")
            ]
        );
    }

    #[test]
    fn non_ascii_text_is_an_error_not_a_panic() {
        let parsed = parse_extensions(&["é; x", "x; y=\"é\"", "x; y=\"\\é\"", "x;é"]);
        assert!(parsed.iter().all(Result::is_err), "{parsed:?}");
    }
}
