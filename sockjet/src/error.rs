//! The error type of the tokio layer.

use std::{error::Error as StdError, fmt, io};

use sockjet_proto::{ConnectionClosed, HandshakeError, ProtocolError};

/// An error from a connection, a client or a server.
///
/// Opaque on purpose: ask with [`kind`](Self::kind) and the predicates. The `Display` text
/// is for people and may change between versions.
///
/// ```
/// use sockjet::{Error, ErrorKind};
/// let error = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert_eq!(error.kind(), ErrorKind::Io);
/// ```
pub struct Error {
    kind: ErrorKind,
    closed: Option<Box<ConnectionClosed>>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What kind of failure an [`Error`] is.
///
/// ```
/// assert_ne!(sockjet::ErrorKind::Closed, sockjet::ErrorKind::Timeout);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ErrorKind {
    /// The connection is closed; [`Error::closed`] says how.
    Closed,
    /// The opening handshake failed.
    Handshake,
    /// The URL could not be used.
    InvalidUrl,
    /// A network error.
    Io,
    /// The peer broke the protocol; the connection was failed with a close code.
    Protocol,
    /// A timeout expired (open, close or keepalive).
    Timeout,
    /// The call was not valid in the connection's state.
    Misuse,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            closed: None,
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_closed(mut self, closed: ConnectionClosed) -> Self {
        self.closed = Some(Box::new(closed));
        self
    }

    pub(crate) fn closed_with(
        status: ConnectionClosed,
        cause: Option<&ProtocolError>,
        io: Option<&io::Error>,
    ) -> Self {
        let (kind, source): (ErrorKind, Option<Box<dyn StdError + Send + Sync>>) = match (cause, io)
        {
            (_, Some(io)) => (
                ErrorKind::Io,
                Some(Box::new(io::Error::new(io.kind(), io.to_string()))),
            ),
            (Some(ProtocolError::UnexpectedEof), None) | (None, None) => (ErrorKind::Closed, None),
            (Some(cause), None) => (ErrorKind::Protocol, Some(Box::new(cause.clone()))),
        };
        Self {
            kind,
            closed: Some(Box::new(status)),
            source,
        }
    }

    /// What kind of error this is.
    ///
    /// ```
    /// # use sockjet::{Error, ErrorKind};
    /// let error = Error::from(std::io::Error::other("x"));
    /// assert_eq!(error.kind(), ErrorKind::Io);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// How the connection closed, if this error ended a connection: the close frames
    /// received and sent (code 1006 when none was received).
    ///
    /// ```
    /// # use sockjet::Error;
    /// assert!(Error::from(std::io::Error::other("x")).closed().is_none());
    /// ```
    pub fn closed(&self) -> Option<&ConnectionClosed> {
        self.closed.as_deref()
    }

    /// Whether a timeout caused this error.
    ///
    /// ```
    /// # use sockjet::Error;
    /// assert!(!Error::from(std::io::Error::other("x")).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The handshake error, if the opening handshake failed.
    ///
    /// ```
    /// # use sockjet::Error;
    /// assert!(Error::from(std::io::Error::other("x")).handshake_error().is_none());
    /// ```
    pub fn handshake_error(&self) -> Option<&HandshakeError> {
        self.source.as_ref()?.downcast_ref()
    }

    /// The protocol violation that failed the connection, if any.
    ///
    /// ```
    /// # use sockjet::Error;
    /// assert!(Error::from(std::io::Error::other("x")).protocol_error().is_none());
    /// ```
    pub fn protocol_error(&self) -> Option<&ProtocolError> {
        self.source.as_ref()?.downcast_ref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.kind);
        if let Some(closed) = &self.closed {
            debug.field("closed", closed);
        }
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Closed => "connection closed",
            ErrorKind::Handshake => "handshake failed",
            ErrorKind::InvalidUrl => "invalid URL",
            ErrorKind::Io => "network error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Misuse => "invalid call",
        };
        f.write_str(what)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if let Some(closed) = &self.closed {
            write!(f, " ({closed})")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        let kind = if error.kind() == io::ErrorKind::TimedOut {
            ErrorKind::Timeout
        } else {
            ErrorKind::Io
        };
        Self::new(kind).with_source(error)
    }
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Self {
        Self::new(ErrorKind::Handshake).with_source(error)
    }
}

impl From<sockjet_proto::ApiMisuse> for Error {
    fn from(error: sockjet_proto::ApiMisuse) -> Self {
        Self::new(ErrorKind::Misuse).with_source(error)
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match error.kind {
            ErrorKind::Closed => io::ErrorKind::ConnectionAborted,
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::InvalidUrl | ErrorKind::Misuse => io::ErrorKind::InvalidInput,
            ErrorKind::Handshake | ErrorKind::Protocol => io::ErrorKind::InvalidData,
            ErrorKind::Io => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}
