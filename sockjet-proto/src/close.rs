//! Close codes and close frames (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use crate::message::Utf8Bytes;

/// Status code of a WebSocket close frame ([RFC 6455 §7.4]).
///
/// The code space is open (registered codes, 3000-3999 for libraries and frameworks,
/// 4000-4999 for applications), so this is a newtype with constants rather than an enum.
///
/// ```
/// use sockjet_proto::CloseCode;
/// assert!(CloseCode::NORMAL_CLOSURE.is_sendable());
/// assert!(!CloseCode::from(1005).is_sendable());
/// assert_eq!(u16::from(CloseCode::GOING_AWAY), 1001);
/// ```
///
/// [RFC 6455 §7.4]: https://datatracker.ietf.org/doc/html/rfc6455#section-7.4
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose for which the connection was established has been fulfilled.
    pub const NORMAL_CLOSURE: Self = Self(1000);
    /// 1001: an endpoint is going away (server shutdown, browser navigating away).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the endpoint is terminating the connection due to a protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: reserved; stands for "no status code was present". Never sent.
    pub const NO_STATUS_RCVD: Self = Self(1005);
    /// 1006: reserved; stands for "closed abnormally, without a close frame". Never sent.
    pub const ABNORMAL_CLOSURE: Self = Self(1006);
    /// 1007: a message contained data inconsistent with its type (invalid UTF-8 in text).
    pub const INVALID_DATA: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension it did not.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition that prevented it from fulfilling the
    /// request.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (temporary overload).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway or proxy received an invalid response from the upstream server.
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: reserved; stands for "TLS handshake failed". Never sent.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Returns the numeric value.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::CloseCode::MESSAGE_TOO_BIG.as_u16(), 1009);
    /// ```
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// RFC 6455 §7.4.1 reserves 1004, 1005, 1006 and 1015 ("MUST NOT be set as a status
    /// code in a Close control frame by an endpoint"); codes below 1000 are unused, and
    /// 1016-2999 are reserved for future protocol revisions. 3000-4999 are open to
    /// libraries and applications.
    ///
    /// ```
    /// use sockjet_proto::CloseCode;
    /// assert!(CloseCode::from(4000).is_sendable());
    /// assert!(!CloseCode::from(1016).is_sendable());
    /// ```
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether a close with this code counts as a normal end of the connection
    /// (1000, 1001 or "no status" 1005), as Python `websockets`' `ConnectionClosedOK` does.
    ///
    /// ```
    /// assert!(sockjet_proto::CloseCode::GOING_AWAY.is_ok());
    /// ```
    pub const fn is_ok(self) -> bool {
        matches!(self.0, 1000 | 1001 | 1005)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1000 => "OK",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure",
            3000..=3999 => "registered",
            4000..=4999 => "private use",
            _ => "unknown",
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// The payload of one close frame: a status code and a UTF-8 reason.
///
/// An empty close frame (no code, no reason) is represented by `Option::<CloseFrame>::None`
/// wherever a close frame is optional.
///
/// ```
/// use sockjet_proto::{CloseCode, CloseFrame};
/// let frame = CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye");
/// assert_eq!(frame.to_string(), "1000 (OK) bye");
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason; at most 123 bytes so that the frame fits in a control frame.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// Builds a close frame from a code and a reason.
    ///
    /// ```
    /// let f = sockjet_proto::CloseFrame::new(sockjet_proto::CloseCode::GOING_AWAY, "");
    /// assert!(f.reason.is_empty());
    /// ```
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, &*self.reason)
        }
    }
}

/// How the closing handshake ended: the close frames received and sent, in which order.
///
/// This is the terminal status of a connection (Python `websockets`' `ConnectionClosed`).
///
/// ```
/// use sockjet_proto::{CloseCode, CloseFrame, ConnectionClosed};
/// let closed = ConnectionClosed {
///     rcvd: Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "")),
///     sent: Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "")),
///     rcvd_then_sent: Some(true),
/// };
/// assert!(closed.is_ok());
/// ```
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct ConnectionClosed {
    /// The close frame received from the peer, if any. An empty close frame is reported as
    /// code 1005.
    pub rcvd: Option<CloseFrame>,
    /// The close frame sent to the peer, if any.
    pub sent: Option<CloseFrame>,
    /// `Some(true)` if the peer closed first, `Some(false)` if we did, `None` if one of the
    /// two frames is missing.
    pub rcvd_then_sent: Option<bool>,
}

impl ConnectionClosed {
    /// Whether the connection ended normally: both close frames exchanged, and the code
    /// that ended it is 1000, 1001 or 1005.
    ///
    /// ```
    /// assert!(!sockjet_proto::ConnectionClosed::default().is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        match (&self.rcvd, &self.sent) {
            (Some(rcvd), Some(sent)) => rcvd.code.is_ok() && sent.code.is_ok(),
            _ => false,
        }
    }

    /// The code that describes the end of the connection: the received one if any, else
    /// 1006 (abnormal closure).
    ///
    /// ```
    /// use sockjet_proto::{CloseCode, ConnectionClosed};
    /// assert_eq!(ConnectionClosed::default().code(), CloseCode::ABNORMAL_CLOSURE);
    /// ```
    pub fn code(&self) -> CloseCode {
        self.rcvd
            .as_ref()
            .map_or(CloseCode::ABNORMAL_CLOSURE, |frame| frame.code)
    }
}

impl fmt::Display for ConnectionClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rcvd, &self.sent, self.rcvd_then_sent) {
            (None, None, _) => f.write_str("no close frame received or sent"),
            (Some(r), None, _) => write!(f, "received {r}; then no close frame sent"),
            (None, Some(s), _) => write!(f, "sent {s}; no close frame received"),
            (Some(r), Some(s), Some(true)) => write!(f, "received {r}; then sent {s}"),
            (Some(r), Some(s), _) => write!(f, "sent {s}; then received {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_match_rfc_table() {
        for code in 0..=u16::MAX {
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(code).is_sendable(), expected, "{code}");
        }
    }
}
