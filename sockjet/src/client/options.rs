//! The request options of [`ClientBuilder`]: headers, `Origin`, subprotocols, user agent.

use http::{HeaderName, HeaderValue};

use super::ClientBuilder;
use crate::error::{Error, ErrorKind};

impl ClientBuilder {
    /// Adds a header to the opening handshake request, after any of the same name. A
    /// header the handshake sends itself (`User-Agent`, `Origin`, ...) is replaced.
    ///
    /// An invalid name or value makes [`connect`](Self::connect) fail with
    /// [`ErrorKind::Misuse`].
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h")
    ///     .header("Authorization", "Bearer 7f3a")
    ///     .header("Cookie", "session=1");
    /// ```
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: Into<http::Error>,
        V: TryInto<HeaderValue>,
        V::Error: Into<http::Error>,
    {
        let header = name
            .try_into()
            .map_err(Into::into)
            .and_then(|name| Ok((name, value.try_into().map_err(Into::into)?)));
        match header {
            Ok((name, value)) => {
                self.handshake.headers.append(name, value);
            }
            Err(error) => self.note_invalid(format!("invalid header: {error}")),
        }
        self
    }

    /// Sends `Origin: origin` (RFC 6455 §4.1 and §10.2), for servers that check it.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").origin("https://app.example");
    /// ```
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.handshake.origin = Some(origin.into());
        self
    }

    /// Offers these subprotocols, in order of preference (RFC 6455 §1.9). The one the
    /// server picks is [`Connection::subprotocol`](crate::Connection::subprotocol); a
    /// pick that was not offered fails the handshake.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").subprotocols(["v2.chat", "v1.chat"]);
    /// ```
    pub fn subprotocols<I, S>(mut self, subprotocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.handshake.subprotocols = subprotocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the `User-Agent` header (default `sockjet/<version>`); see
    /// [`ClientConfig::user_agent`](crate::proto::ClientConfig::user_agent) to send none.
    ///
    /// ```
    /// let _b = sockjet::ClientBuilder::new("ws://h").user_agent("my-app/1.2");
    /// ```
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.handshake.user_agent = Some(user_agent.into());
        self
    }

    fn note_invalid(&mut self, why: String) {
        self.invalid.get_or_insert(why);
    }

    /// Checks what the handshake would otherwise panic on.
    pub(super) fn check_options(&self) -> Result<(), Error> {
        let misuse = |why: String| Error::new(ErrorKind::Misuse).with_source(why);
        if let Some(why) = &self.invalid {
            return Err(misuse(why.clone()));
        }
        for (what, value) in [
            ("Origin", &self.handshake.origin),
            ("User-Agent", &self.handshake.user_agent),
        ] {
            if let Some(value) = value {
                if HeaderValue::from_str(value).is_err() {
                    return Err(misuse(format!("invalid {what} header value {value:?}")));
                }
            }
        }
        // RFC 6455 §4.1: subprotocols "MUST all be unique strings" of token characters.
        for subprotocol in &self.handshake.subprotocols {
            if !is_token(subprotocol) {
                return Err(misuse(format!(
                    "subprotocol {subprotocol:?} is not an HTTP token"
                )));
            }
        }
        Ok(())
    }
}

/// RFC 9110 §5.6.2: `token = 1*tchar`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}
