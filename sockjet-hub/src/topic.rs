//! Topic names: what a valid one is, and the error for one that is not.

use std::fmt;

/// The longest topic name accepted, in bytes. Names usually come from clients (a URL
/// path, a chat command); the bound keeps one from costing unbounded memory in every
/// hub's maps and in Redis channel names.
pub const MAX_TOPIC_LEN: usize = 256;

/// Why a topic name was refused.
///
/// ```
/// use sockjet_hub::{TopicError, validate_topic};
/// assert_eq!(validate_topic(""), Err(TopicError::Empty));
/// assert!(validate_topic("lobby").is_ok());
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`] bytes (its length is given).
    TooLong(usize),
    /// The name contains a control character (U+0000 to U+001F or U+007F to U+009F), which
    /// would garble logs.
    ControlCharacter,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty topic name"),
            Self::TooLong(len) => {
                write!(f, "topic name of {len} bytes (at most {MAX_TOPIC_LEN})")
            }
            Self::ControlCharacter => f.write_str("control character in topic name"),
        }
    }
}

impl std::error::Error for TopicError {}

/// Checks that `topic` is a valid topic name: not empty, at most [`MAX_TOPIC_LEN`] bytes,
/// no control characters. Any other Unicode text is fine.
///
/// # Errors
///
/// Says which rule the name breaks.
///
/// ```
/// use sockjet_hub::{TopicError, validate_topic};
/// assert!(validate_topic("chat/général").is_ok());
/// assert_eq!(validate_topic("a\nb"), Err(TopicError::ControlCharacter));
/// assert_eq!(validate_topic(&"x".repeat(300)), Err(TopicError::TooLong(300)));
/// ```
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(topic.len()));
    }
    if topic.chars().any(char::is_control) {
        return Err(TopicError::ControlCharacter);
    }
    Ok(())
}
