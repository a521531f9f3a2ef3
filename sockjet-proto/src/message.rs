//! Application messages: text (valid UTF-8) or binary, with owned `'static` payloads.

use std::{fmt, ops::Deref, str};

use bytes::Bytes;

/// [`Bytes`] known to hold valid UTF-8; derefs to `str`.
///
/// Cloning is cheap (reference counted), so one text can be sent to many connections.
///
/// ```
/// use sockjet_proto::Utf8Bytes;
/// let text = Utf8Bytes::from("héllo");
/// assert_eq!(&*text, "héllo");
/// assert_eq!(text.len(), 6);
/// assert!(Utf8Bytes::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps a static string without copying.
    ///
    /// ```
    /// const HELLO: sockjet_proto::Utf8Bytes = sockjet_proto::Utf8Bytes::from_static("hello");
    /// assert_eq!(HELLO.as_str(), "hello");
    /// ```
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Wraps bytes that the caller has already validated.
    ///
    /// Crate-internal: the assembler calls this after incremental validation.
    pub(crate) fn from_bytes_unchecked(bytes: Bytes) -> Self {
        debug_assert!(str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// Returns the text as a `&str`.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::Utf8Bytes::from("a").as_str(), "a");
    /// ```
    pub fn as_str(&self) -> &str {
        // The one `unsafe` in the core. Re-validating on every access would make each
        // `&str` borrow O(n) (about 50 us for a 1 MiB text), so the invariant is kept by
        // construction instead.
        #[allow(unsafe_code)]
        // SAFETY: every constructor either validates the bytes (`TryFrom`, `From<&str>`,
        // `From<String>`) or takes bytes the incremental validator accepted
        // (`from_bytes_unchecked`, crate-private, debug-asserted), and the bytes are
        // immutable afterwards.
        unsafe {
            str::from_utf8_unchecked(&self.0)
        }
    }

    /// Returns the underlying bytes.
    ///
    /// ```
    /// let bytes = sockjet_proto::Utf8Bytes::from("a").into_bytes();
    /// assert_eq!(&bytes[..], b"a");
    /// ```
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Borrows the underlying bytes.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::Utf8Bytes::from("a").as_bytes(), b"a");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        if crate::utf8::is_valid(&bytes) {
            Ok(Self(bytes))
        } else {
            // Re-run the std validator only on failure, to report where it failed.
            str::from_utf8(&bytes).map(|_| unreachable!())
        }
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = std::str::Utf8Error;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        Self::try_from(Bytes::from(bytes))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// A complete WebSocket data message.
///
/// Control frames (ping, pong, close) are not messages; the core reports them as
/// [`Event`](crate::Event)s.
///
/// ```
/// use sockjet_proto::Message;
/// let text = Message::from("hello");
/// assert!(text.is_text());
/// assert_eq!(text.as_text(), Some("hello"));
/// let binary = Message::from(vec![1u8, 2, 3]);
/// assert_eq!(binary.len(), 3);
/// ```
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum Message {
    /// A text message (opcode 0x1), always valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message (opcode 0x2).
    Binary(Bytes),
}

impl Message {
    /// Builds a text message.
    ///
    /// ```
    /// assert!(sockjet_proto::Message::text("hi").is_text());
    /// ```
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// Builds a binary message.
    ///
    /// ```
    /// assert!(sockjet_proto::Message::binary(vec![0u8]).is_binary());
    /// ```
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Whether this is a text message.
    ///
    /// ```
    /// assert!(!sockjet_proto::Message::binary(vec![]).is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    ///
    /// ```
    /// assert!(sockjet_proto::Message::binary(vec![]).is_binary());
    /// ```
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The payload length in bytes.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::Message::text("é").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    ///
    /// ```
    /// assert!(sockjet_proto::Message::text("").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload bytes, whatever the type.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::Message::text("a").as_bytes(), b"a");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// The text, if this is a text message.
    ///
    /// ```
    /// assert_eq!(sockjet_proto::Message::binary(vec![]).as_text(), None);
    /// ```
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            Self::Binary(_) => None,
        }
    }

    /// Consumes the message and returns its payload bytes.
    ///
    /// ```
    /// let payload = sockjet_proto::Message::text("a").into_bytes();
    /// assert_eq!(&payload[..], b"a");
    /// ```
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(data) => data,
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.into())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::Binary(data.into())
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Self::Binary(Bytes::copy_from_slice(data))
    }
}
