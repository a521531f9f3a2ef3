//! Following HTTP redirects during the opening handshake.
//!
//! RFC 6455 §4.1 lets the server answer with a redirect ("the client handles the response
//! per HTTP procedures"); a client may follow it, as Python `websockets` does. Browsers do
//! not, so this is for non-browser clients talking to servers behind load balancers that
//! move endpoints around.

use http::{HeaderMap, StatusCode, header};
use sockjet_proto::Response;

use super::target::{Credentials, Target};
use crate::error::{Error, ErrorKind};

/// How many redirects a client follows by default, as Python `websockets`.
pub(crate) const DEFAULT_MAX_REDIRECTS: usize = 10;

/// The `Location` of a redirect the client follows: 301, 302, 303, 307 or 308 (RFC 9110
/// §15.4). 300 (a choice for a person to make) and 304/305/306 are not redirects to follow.
pub(crate) fn location(response: &Response) -> Option<&str> {
    let followed = [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ];
    if !followed.contains(&response.status()) {
        return None;
    }
    response.headers().get(header::LOCATION)?.to_str().ok()
}

/// What a request carries from hop to hop.
#[derive(Debug)]
pub(crate) struct Hop {
    /// The URL of this hop.
    pub(crate) target: Target,
    /// The caller's extra headers, less those dropped on a cross-origin hop.
    pub(crate) headers: HeaderMap,
    /// The credentials of the URL, sent as `Authorization: Basic` unless the caller set
    /// `Authorization` itself.
    pub(crate) credentials: Option<Credentials>,
}

impl Hop {
    /// The first hop, to the URL the caller gave.
    pub(crate) fn first(mut target: Target, headers: HeaderMap) -> Self {
        let credentials = target.credentials.take();
        Self {
            target,
            headers,
            credentials,
        }
    }

    /// The request headers of this hop: the caller's, plus `Authorization` from the URL's
    /// credentials when the caller did not set one (RFC 7617).
    pub(crate) fn request_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(credentials) = &self.credentials {
            if !headers.contains_key(header::AUTHORIZATION) {
                headers.insert(header::AUTHORIZATION, credentials.basic());
            }
        }
        headers
    }

    /// Moves to `location`, resolved against this hop's URL.
    ///
    /// A `wss://` to `ws://` redirect is refused: following it would send the request,
    /// which may carry credentials, in clear text (Python `websockets` refuses it too).
    /// On a hop to another origin, `Authorization`, `Cookie` and the URL's credentials
    /// are dropped, as browsers' fetch and curl do: they were meant for the first server.
    pub(crate) fn follow(&mut self, location: &str) -> Result<(), Error> {
        let mut next = self.target.join(location)?;
        if self.target.secure && !next.secure {
            return Err(Error::new(ErrorKind::Handshake).with_source(format!(
                "refusing to follow a redirect from {} to {}: it leaves TLS (wss:// to ws://)",
                self.target.url(),
                next.url()
            )));
        }
        if !self.target.same_origin(&next) {
            self.headers.remove(header::AUTHORIZATION);
            self.headers.remove(header::COOKIE);
            self.credentials = None;
        }
        if let Some(credentials) = next.credentials.take() {
            self.credentials = Some(credentials);
        }
        self.target = next;
        Ok(())
    }
}

/// The error after `count` redirects, the last one to `location`.
pub(crate) fn too_many(count: usize, location: &str) -> Error {
    Error::new(ErrorKind::Handshake).with_source(format!(
        "too many redirects: stopped after following {count} (the next was to {location})"
    ))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn hop(url: &str) -> Hop {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("session=1"));
        headers.insert("x-trace", HeaderValue::from_static("7"));
        Hop::first(Target::parse(url).unwrap(), headers)
    }

    #[test]
    fn same_origin_hops_keep_credentials() {
        let mut hop = hop("ws://u:p@h:8080/a");
        hop.follow("/b").unwrap();
        let headers = hop.request_headers();
        assert_eq!(headers[header::AUTHORIZATION], "Basic dTpw");
        assert_eq!(headers[header::COOKIE], "session=1");
        assert_eq!(hop.target.url(), "ws://h:8080/b");
    }

    #[test]
    fn cross_origin_hops_drop_credentials() {
        for location in ["ws://other:8080/", "ws://h:8081/", "wss://h:8080/"] {
            let mut hop = hop("ws://u:p@h:8080/a");
            hop.follow(location).unwrap();
            let headers = hop.request_headers();
            assert!(!headers.contains_key(header::AUTHORIZATION), "{location}");
            assert!(!headers.contains_key(header::COOKIE), "{location}");
            assert_eq!(headers["x-trace"], "7");
        }
    }

    #[test]
    fn tls_downgrades_are_refused() {
        let mut hop = hop("wss://h/");
        let error = hop.follow("ws://h/").unwrap_err();
        assert!(error.to_string().contains("leaves TLS"), "{error}");
    }
}
