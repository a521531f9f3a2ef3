//! Errors, split by who is at fault: the peer ([`ProtocolError`], [`HandshakeError`]) or
//! the caller ([`ApiMisuse`]).

use std::{error::Error as StdError, fmt};

use http::StatusCode;

use crate::close::CloseCode;

/// The peer violated RFC 6455. Sent back as a close frame; never caused by the caller.
///
/// ```
/// use sockjet_proto::{CloseCode, ProtocolError};
/// let error = ProtocolError::InvalidUtf8;
/// assert_eq!(CloseCode::from(&error), CloseCode::INVALID_DATA);
/// assert_eq!(error.to_string(), "invalid UTF-8 in text");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ProtocolError {
    /// A close frame had a 1-byte payload (RFC 6455 §5.5.1: a body starts with a 2-byte code).
    CloseFrameTooShort,
    /// A control frame's payload was longer than 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong,
    /// A new data frame arrived while a fragmented message was still open (RFC 6455 §5.4).
    ExpectedContinuation,
    /// A control frame had FIN clear (RFC 6455 §5.5: "Control frames MUST NOT be fragmented").
    FragmentedControlFrame,
    /// A frame was masked when it must not be, or unmasked when it must (RFC 6455 §5.1).
    IncorrectMasking,
    /// A close frame carried a status code that may not be sent (RFC 6455 §7.4).
    InvalidCloseCode(u16),
    /// A reserved opcode (RFC 6455 §5.2: "If an unknown opcode is received, the receiving
    /// endpoint MUST _Fail the WebSocket Connection_").
    InvalidOpcode(u8),
    /// The 64-bit payload length had its most significant bit set (RFC 6455 §5.2).
    InvalidPayloadLength,
    /// A text message, or a close reason, was not valid UTF-8 (RFC 6455 §8.1).
    InvalidUtf8,
    /// One frame exceeded the configured frame size limit.
    FrameTooBig {
        /// The frame's payload length.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message exceeded the configured message size limit.
    MessageTooBig {
        /// The message size so far, including the frame that went over.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A compressed message could not be inflated (RFC 7692 §6.2: the endpoint "MUST
    /// _Fail the WebSocket Connection_").
    DecompressionFailed,
    /// RSV1, RSV2 or RSV3 was set without an extension that defines it (RFC 6455 §5.2).
    ReservedBitsSet,
    /// The peer closed the TCP connection before the closing handshake (or mid-frame).
    UnexpectedEof,
    /// A continuation frame arrived with no fragmented message open (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// Data arrived after the peer's close frame (RFC 6455 §5.5.1: after sending a Close
    /// frame, an endpoint "MUST NOT send any more data frames").
    DataAfterClose,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CloseFrameTooShort => f.write_str("close frame too short"),
            Self::ControlFrameTooLong => f.write_str("control frame too long"),
            Self::ExpectedContinuation => f.write_str("expected a continuation frame"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::IncorrectMasking => f.write_str("incorrect masking"),
            Self::InvalidCloseCode(code) => write!(f, "invalid status code {code}"),
            Self::InvalidOpcode(opcode) => write!(f, "invalid opcode {opcode:#x}"),
            Self::InvalidPayloadLength => f.write_str("invalid payload length"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            Self::FrameTooBig { size, limit } => {
                write!(f, "frame of {size} bytes over the limit of {limit}")
            }
            Self::MessageTooBig { size, limit } => {
                write!(f, "message of {size} bytes over the limit of {limit}")
            }
            Self::DecompressionFailed => f.write_str("invalid compressed data"),
            Self::ReservedBitsSet => f.write_str("reserved bits must be 0"),
            Self::UnexpectedEof => f.write_str("unexpected end of stream"),
            Self::UnexpectedContinuation => f.write_str("unexpected continuation frame"),
            Self::DataAfterClose => f.write_str("data frame after close frame"),
        }
    }
}

impl StdError for ProtocolError {}

// The one place where errors become close codes (rustls' `AlertDescription` mapping).
impl From<&ProtocolError> for CloseCode {
    fn from(error: &ProtocolError) -> Self {
        match error {
            ProtocolError::InvalidUtf8 | ProtocolError::DecompressionFailed => Self::INVALID_DATA,
            ProtocolError::MessageTooBig { .. } | ProtocolError::FrameTooBig { .. } => {
                Self::MESSAGE_TOO_BIG
            }
            // No close frame is sent after an EOF; 1006 is what the application sees.
            ProtocolError::UnexpectedEof => Self::ABNORMAL_CLOSURE,
            _ => Self::PROTOCOL_ERROR,
        }
    }
}

/// The opening handshake failed.
///
/// On the server side, [`status`](Self::status) is the HTTP status to answer with; on the
/// client side the error says what was wrong with the server's response.
///
/// ```
/// use sockjet_proto::HandshakeError;
/// assert_eq!(HandshakeError::RequestLineTooLong.status().as_u16(), 414);
/// assert_eq!(HandshakeError::UnsupportedVersion.status().as_u16(), 426);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum HandshakeError {
    /// The request line (or status line) exceeded its limit.
    RequestLineTooLong,
    /// The header block exceeded its size or count limit.
    HeadersTooLarge,
    /// The HTTP head could not be parsed.
    MalformedHttp(String),
    /// The request method was not GET.
    MethodNotAllowed,
    /// The request was not HTTP/1.1 (or later).
    UnsupportedHttpVersion,
    /// A required header was absent.
    MissingHeader(&'static str),
    /// A header had an invalid value.
    InvalidHeader {
        /// The header's name.
        name: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// `Sec-WebSocket-Version` was missing or not 13.
    UnsupportedVersion,
    /// The server answered with a status other than 101.
    UnexpectedStatus(StatusCode),
    /// `Sec-WebSocket-Accept` did not match the key the client sent.
    InvalidAccept,
    /// The server chose a subprotocol or extension the client did not offer.
    UnexpectedNegotiation(String),
    /// The peer closed the connection before the handshake completed.
    UnexpectedEof,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    ///
    /// ```
    /// use sockjet_proto::HandshakeError;
    /// assert_eq!(HandshakeError::HeadersTooLarge.status().as_u16(), 431);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedHttpVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RequestLineTooLong => f.write_str("request line too long"),
            Self::HeadersTooLarge => f.write_str("request header fields too large"),
            Self::MalformedHttp(why) => write!(f, "malformed HTTP: {why}"),
            Self::MethodNotAllowed => f.write_str("method must be GET"),
            Self::UnsupportedHttpVersion => f.write_str("HTTP/1.1 required"),
            Self::MissingHeader(name) => write!(f, "missing {name} header"),
            Self::InvalidHeader { name, reason } => write!(f, "invalid {name} header: {reason}"),
            Self::UnsupportedVersion => f.write_str("unsupported Sec-WebSocket-Version"),
            Self::UnexpectedStatus(status) => {
                write!(f, "server rejected WebSocket connection: HTTP {status}")
            }
            Self::InvalidAccept => f.write_str("invalid Sec-WebSocket-Accept header"),
            Self::UnexpectedNegotiation(what) => write!(f, "unexpected negotiation: {what}"),
            Self::UnexpectedEof => f.write_str("connection closed during the opening handshake"),
        }
    }
}

impl StdError for HandshakeError {}

/// The caller broke the documented call order. Never caused by untrusted data.
///
/// ```
/// use sockjet_proto::ApiMisuse;
/// assert_eq!(ApiMisuse::SendAfterClose.to_string(), "cannot send after the close frame");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ApiMisuse {
    /// A data or control frame was sent before the handshake completed.
    NotOpen,
    /// A frame was sent after the close frame was sent (RFC 6455 §5.5.1).
    SendAfterClose,
    /// A control frame payload was longer than 125 bytes.
    ControlFrameTooLong,
    /// A close code that may not appear on the wire (1005, 1006, 1015, ...).
    UnsendableCloseCode(CloseCode),
    /// A continuation was sent with no fragmented message open, or a new message was
    /// started while one was open.
    BadFragmentSequence,
    /// The handshake call was made in the wrong state.
    NotConnecting,
    /// A 101 was sent in answer to a request that is not a valid opening handshake (see
    /// [`ServerConfig::deliver_invalid_requests`](crate::ServerConfig::deliver_invalid_requests)).
    AcceptInvalidRequest,
}

impl fmt::Display for ApiMisuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOpen => f.write_str("connection is not open"),
            Self::SendAfterClose => f.write_str("cannot send after the close frame"),
            Self::ControlFrameTooLong => f.write_str("control frame payload over 125 bytes"),
            Self::UnsendableCloseCode(code) => write!(f, "close code {code} cannot be sent"),
            Self::BadFragmentSequence => f.write_str("fragments sent out of sequence"),
            Self::NotConnecting => f.write_str("handshake already done"),
            Self::AcceptInvalidRequest => {
                f.write_str("cannot accept a request that is not a valid opening handshake")
            }
        }
    }
}

impl StdError for ApiMisuse {}
