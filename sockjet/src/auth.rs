//! Authentication during the opening handshake: HTTP Basic (RFC 7617) and bearer tokens
//! (RFC 6750) from the `Authorization` header or a query parameter. Both are request hooks
//! ([`ServerBuilder::request_hook`](crate::ServerBuilder::request_hook)): a request that
//! does not authenticate is answered with 401 and a `WWW-Authenticate` challenge before
//! any upgrade; one that does reaches the handler with its [`Identity`]
//! ([`Connection::identity`]).
//!
//! Browsers cannot set headers on a WebSocket request, so browser pages pass a token in
//! the query string (`wss://host/path?token=...`), as the guide's authentication chapter
//! does; see [`BearerAuth::query_parameter`].
//!
//! ```no_run
//! use sockjet::{Server, auth::BearerAuth};
//! # async fn f() -> std::io::Result<()> {
//! let tokens = BearerAuth::new(|token| async move {
//!     // Look the token up; its owner is the identity.
//!     (token == "s3cret").then(|| "alice".to_owned())
//! })
//! .query_parameter("token");
//! Server::builder()
//!     .request_hook(tokens)
//!     .bind("127.0.0.1:8765")
//!     .await?
//!     .serve(|ws| async move {
//!         let user = ws.identity().unwrap_or("nobody").to_owned();
//!         let _ = ws.send(format!("hello {user}")).await;
//!     })
//!     .await
//! # }
//! ```

use std::{borrow::Cow, fmt, future::Future, pin::Pin, sync::Arc};

use base64::Engine as _;
use http::{HeaderValue, StatusCode, header};
use sockjet_proto::{Request, Response};
use subtle::{Choice, ConstantTimeEq};

use crate::{
    connection::Connection,
    hooks::{RequestHook, respond},
};

/// Who a request authenticated as, stored in the request's
/// [`extensions`](http::Request::extensions) by [`BasicAuth`] (the user name),
/// [`BearerAuth`] (what its check returned) or a hook of your own; read it with
/// [`Connection::identity`].
///
/// ```
/// let identity = sockjet::auth::Identity::new("alice");
/// assert_eq!(identity.as_str(), "alice");
/// ```
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct Identity(String);

impl Identity {
    /// Wraps an identity.
    ///
    /// ```
    /// let _identity = sockjet::auth::Identity::new(String::from("bob"));
    /// ```
    pub fn new(identity: impl Into<String>) -> Self {
        Self(identity.into())
    }

    /// The identity as a string.
    ///
    /// ```
    /// assert_eq!(sockjet::auth::Identity::new("bob").as_str(), "bob");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Connection {
    /// The identity the handshake authenticated, if an authentication hook (or a hook of
    /// your own) stored an [`Identity`] in the request.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// if let Some(user) = ws.identity() {
    ///     println!("{user} connected");
    /// }
    /// # }
    /// ```
    pub fn identity(&self) -> Option<&str> {
        self.request()
            .extensions()
            .get::<Identity>()
            .map(Identity::as_str)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type BasicCheckFn = dyn Fn(String, String) -> BoxFuture<bool> + Send + Sync;
type BearerCheckFn = dyn Fn(String) -> BoxFuture<Option<String>> + Send + Sync;

/// HTTP Basic authentication (RFC 7617): the client sends `Authorization: Basic
/// base64(user:password)`; a request without valid credentials is answered with 401 and
/// `WWW-Authenticate: Basic realm="...", charset="UTF-8"`. The user name becomes the
/// connection's [`Identity`].
///
/// Credentials travel in clear text: use it over TLS only, except on loopback.
///
/// ```
/// use sockjet::auth::BasicAuth;
/// let fixed = BasicAuth::credentials("chat", [("alice", "wonderland"), ("bob", "builder")]);
/// let checked = BasicAuth::check("chat", |user, password| async move {
///     // Ask a user database; compare password hashes in constant time.
///     user == "carol" && password == "secret"
/// });
/// let _builder = sockjet::Server::builder().request_hook(fixed);
/// # drop(checked);
/// ```
#[derive(Clone)]
pub struct BasicAuth {
    challenge: HeaderValue,
    check: BasicCheck,
}

#[derive(Clone)]
enum BasicCheck {
    /// Compared in place, in constant time.
    Fixed(Arc<[(Vec<u8>, Vec<u8>)]>),
    Custom(Arc<BasicCheckFn>),
}

impl BasicAuth {
    /// Accepts a fixed list of user names and passwords. Every request is compared with
    /// every entry in full, in constant time (no early exit on the first differing byte
    /// or the first matching entry), so that timing does not tell how close a guess was.
    ///
    /// # Panics
    ///
    /// If `realm` contains control characters.
    ///
    /// ```
    /// let _auth = sockjet::auth::BasicAuth::credentials("admin area", [("admin", "hunter2")]);
    /// ```
    pub fn credentials<I, U, P>(realm: &str, credentials: I) -> Self
    where
        I: IntoIterator<Item = (U, P)>,
        U: Into<String>,
        P: Into<String>,
    {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = credentials
            .into_iter()
            .map(|(user, password)| (user.into().into_bytes(), password.into().into_bytes()))
            .collect();
        Self {
            challenge: basic_challenge(realm),
            check: BasicCheck::Fixed(entries.into()),
        }
    }

    /// Accepts what `check(user, password)` accepts. It may wait (ask a database); it
    /// should compare secrets in constant time itself (see `subtle::ConstantTimeEq`).
    /// For a check that does not wait, return `std::future::ready(...)`.
    ///
    /// # Panics
    ///
    /// If `realm` contains control characters.
    ///
    /// ```
    /// let _auth = sockjet::auth::BasicAuth::check("chat", |user, _password| {
    ///     std::future::ready(user == "guest")
    /// });
    /// ```
    pub fn check<F, Fut>(realm: &str, check: F) -> Self
    where
        F: Fn(String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            challenge: basic_challenge(realm),
            check: BasicCheck::Custom(Arc::new(move |user, password| {
                Box::pin(check(user, password)) as BoxFuture<bool>
            })),
        }
    }

    fn unauthorized(&self) -> Response {
        let mut response = respond(StatusCode::UNAUTHORIZED, "authentication required\n");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        response
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let check = match &self.check {
            BasicCheck::Fixed(entries) => format!("{} fixed credentials", entries.len()),
            BasicCheck::Custom(_) => "custom check".to_owned(),
        };
        f.debug_struct("BasicAuth")
            .field("challenge", &self.challenge)
            .field("check", &check)
            .finish()
    }
}

impl From<BasicAuth> for RequestHook {
    fn from(auth: BasicAuth) -> Self {
        match auth.check.clone() {
            BasicCheck::Fixed(entries) => RequestHook::new(move |request, _peer| {
                let Some((user, password)) = basic_credentials(request) else {
                    return Some(auth.unauthorized());
                };
                if !bool::from(fixed_credentials_match(&entries, &user, &password)) {
                    return Some(auth.unauthorized());
                }
                request.extensions_mut().insert(Identity(user));
                None
            }),
            BasicCheck::Custom(check) => {
                let auth = Arc::new(auth);
                RequestHook::new_async(move |mut request, _peer| {
                    let auth = auth.clone();
                    let check = check.clone();
                    async move {
                        let (user, password) =
                            basic_credentials(&request).ok_or_else(|| auth.unauthorized())?;
                        if !check(user.clone(), password).await {
                            return Err(auth.unauthorized());
                        }
                        request.extensions_mut().insert(Identity(user));
                        Ok(request)
                    }
                })
            }
        }
    }
}

/// RFC 7617 §2: `WWW-Authenticate: Basic realm="...", charset="UTF-8"` (the realm is a
/// quoted-string, RFC 9110 §5.6.4: backslash and quote are escaped).
fn basic_challenge(realm: &str) -> HeaderValue {
    let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
    HeaderValue::from_str(&format!("Basic realm=\"{escaped}\", charset=\"UTF-8\""))
        .expect("the realm has no control characters")
}

/// The user name and password of a request's `Authorization: Basic` header; `None` if it
/// has none, several, or one that is not base64 of UTF-8 `user:password` (RFC 7617 §2:
/// the user-id cannot contain a colon; the password may).
fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let encoded = single_credentials(request, "basic")?;
    // RFC 7617 §2 uses base64 as RFC 4648 §4 defines it; padding is accepted but not
    // required, as many clients omit it.
    let decoded = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
    .decode(encoded)
    .ok()?;
    // `charset="UTF-8"` in the challenge asks for UTF-8 (RFC 7617 §2.1).
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The credentials of the request's only `Authorization` header if its scheme is
/// `scheme` (compared without regard to case, RFC 9110 §11.1).
fn single_credentials<'a>(request: &'a Request, scheme: &str) -> Option<&'a str> {
    let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (given_scheme, credentials) = value.split_once(' ')?;
    if !given_scheme.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let credentials = credentials.trim_matches(' ');
    (!credentials.is_empty()).then_some(credentials)
}

/// Compares `user` and `password` with every entry, each in full: the time taken depends
/// on the lengths of the stored entries, not on how much of a guess is right, nor on
/// which entry matched.
fn fixed_credentials_match(entries: &[(Vec<u8>, Vec<u8>)], user: &str, password: &str) -> Choice {
    let mut found = Choice::from(0);
    for (expected_user, expected_password) in entries {
        found |= constant_time_eq(expected_user, user.as_bytes())
            & constant_time_eq(expected_password, password.as_bytes());
    }
    found
}

/// Constant-time equality that also hides where a value of the wrong length differs: it
/// walks all of `expected` whatever `given` is, comparing with `given`'s bytes (or zeros
/// past its end) and folding the length comparison in. Only the (secret-free) length of
/// `given` and the length of `expected` show in the timing.
fn constant_time_eq(expected: &[u8], given: &[u8]) -> Choice {
    let mut equal = (expected.len() as u64).ct_eq(&(given.len() as u64));
    for (index, byte) in expected.iter().enumerate() {
        let other = given.get(index).copied().unwrap_or(0);
        equal &= byte.ct_eq(&other);
    }
    equal
}

/// Bearer tokens (RFC 6750): from `Authorization: Bearer TOKEN`, or from a query parameter
/// if [`query_parameter`](Self::query_parameter) names one (browsers cannot set headers on
/// a WebSocket request). The check function returns the token's identity, or `None` to
/// refuse it; a request without a token, or with a refused one, is answered with 401 and
/// `WWW-Authenticate: Bearer` (with `error="invalid_token"` when a token was refused,
/// RFC 6750 §3.1).
///
/// The header wins when both are present. Query parameters are decoded as
/// `application/x-www-form-urlencoded` (`%XX` escapes, `+` for a space).
///
/// ```
/// use sockjet::auth::BearerAuth;
/// let auth = BearerAuth::new(|token| async move {
///     match token.as_str() {
///         "t0k3n" => Some("alice".to_owned()),
///         _ => None,
///     }
/// })
/// .query_parameter("token")
/// .realm("chat");
/// let _builder = sockjet::Server::builder().request_hook(auth);
/// ```
#[derive(Clone)]
pub struct BearerAuth {
    check: Arc<BearerCheckFn>,
    query_parameter: Option<String>,
    realm: Option<String>,
}

impl BearerAuth {
    /// Checks tokens with `check`, which returns the token's identity or `None`. For a
    /// check that does not wait, return `std::future::ready(...)`. A check that compares
    /// the token with a secret should do so in constant time (`subtle::ConstantTimeEq`),
    /// or look up a hash of it.
    ///
    /// ```
    /// let _auth = sockjet::auth::BearerAuth::new(|token| {
    ///     std::future::ready((token == "letmein").then(|| "guest".to_owned()))
    /// });
    /// ```
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        Self {
            check: Arc::new(move |token| Box::pin(check(token)) as BoxFuture<Option<String>>),
            query_parameter: None,
            realm: None,
        }
    }

    /// Also takes the token from this query parameter (`?token=...`) when the request has
    /// no `Authorization: Bearer` header.
    ///
    /// ```
    /// let _auth = sockjet::auth::BearerAuth::new(|_| std::future::ready(None))
    ///     .query_parameter("access_token");
    /// ```
    pub fn query_parameter(mut self, name: impl Into<String>) -> Self {
        self.query_parameter = Some(name.into());
        self
    }

    /// Names the protection space in the challenge (`WWW-Authenticate: Bearer
    /// realm="..."`).
    ///
    /// ```
    /// let _auth = sockjet::auth::BearerAuth::new(|_| std::future::ready(None)).realm("api");
    /// ```
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The token of a request: the `Authorization: Bearer` header, else the query
    /// parameter. `Err(())` if an `Authorization` header is there but unusable (not
    /// Bearer, repeated, malformed).
    fn token(&self, request: &Request) -> Result<Option<String>, ()> {
        if request.headers().contains_key(header::AUTHORIZATION) {
            return single_credentials(request, "bearer")
                .map(|token| Some(token.to_owned()))
                .ok_or(());
        }
        let (Some(name), Some(query)) = (&self.query_parameter, request.uri().query()) else {
            return Ok(None);
        };
        Ok(query_value(query, name).filter(|token| !token.is_empty()))
    }

    /// RFC 6750 §3: 401 with `WWW-Authenticate: Bearer`, and `error="invalid_token"` when
    /// a token was presented.
    fn unauthorized(&self, token_presented: bool) -> Response {
        let mut params = Vec::new();
        if let Some(realm) = &self.realm {
            let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
            params.push(format!("realm=\"{escaped}\""));
        }
        if token_presented {
            params.push("error=\"invalid_token\"".to_owned());
        }
        let challenge = match params.is_empty() {
            true => "Bearer".to_owned(),
            false => format!("Bearer {}", params.join(", ")),
        };
        let mut response = respond(StatusCode::UNAUTHORIZED, "authentication required\n");
        if let Ok(challenge) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("query_parameter", &self.query_parameter)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl From<BearerAuth> for RequestHook {
    fn from(auth: BearerAuth) -> Self {
        let auth = Arc::new(auth);
        RequestHook::new_async(move |mut request, _peer| {
            let auth = auth.clone();
            async move {
                let token = match auth.token(&request) {
                    Ok(Some(token)) => token,
                    Ok(None) => return Err(auth.unauthorized(false)),
                    Err(()) => return Err(auth.unauthorized(true)),
                };
                match (auth.check)(token).await {
                    Some(identity) => {
                        request.extensions_mut().insert(Identity(identity));
                        Ok(request)
                    }
                    None => Err(auth.unauthorized(true)),
                }
            }
        })
    }
}

/// The decoded value of the first parameter `name` in a query string, decoded as
/// `application/x-www-form-urlencoded` (WHATWG URL §5.1: `+` is a space, then `%XX`
/// escapes); `None` if absent or not UTF-8.
pub(crate) fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key)? == name).then(|| form_decode(value))?
    })
}

fn form_decode(text: &str) -> Option<String> {
    let spaced: Cow<'_, str> = match text.contains('+') {
        true => Cow::Owned(text.replace('+', " ")),
        false => Cow::Borrowed(text),
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &[u8]) -> Request {
        Request::builder()
            .header(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            )
            .body(())
            .unwrap()
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "Aladdin:open sesame", RFC 7617 §2.
        let request = with_authorization(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(
            basic_credentials(&request),
            Some(("Aladdin".to_owned(), "open sesame".to_owned()))
        );
        let request = with_authorization(b"basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ");
        assert!(basic_credentials(&request).is_some());
        // A colon in the password stays in the password.
        let request = with_authorization(b"Basic dTpwOnE=");
        assert_eq!(
            basic_credentials(&request),
            Some(("u".to_owned(), "p:q".to_owned()))
        );
    }

    #[test]
    fn malformed_basic_credentials_are_refused() {
        for value in [
            &b"Basic"[..],
            b"Basic ",
            b"Basic !!!!",
            b"Basic dXNlcg==", // "user": no colon
            b"Basic /w==",     // 0xFF: not UTF-8
            b"Bearer dTpw",    // other scheme
            b"Basic\tdTpw",    // no space after the scheme
            b"Basic dTpw\xff", // not visible ASCII
        ] {
            assert_eq!(
                basic_credentials(&with_authorization(value)),
                None,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn fixed_credentials_need_both_parts_right() {
        let entries = [
            (b"alice".to_vec(), b"wonderland".to_vec()),
            (b"bob".to_vec(), b"builder".to_vec()),
        ];
        let matches =
            |user, password| bool::from(fixed_credentials_match(&entries, user, password));
        assert!(matches("alice", "wonderland"));
        assert!(matches("bob", "builder"));
        assert!(!matches("alice", "builder"));
        assert!(!matches("alice", "wonderlan"));
        assert!(!matches("alice", "wonderland!"));
        assert!(!matches("alic", "wonderland"));
        assert!(!matches("", ""));
    }

    #[test]
    fn constant_time_eq_compares_lengths_too() {
        assert!(bool::from(constant_time_eq(b"abc", b"abc")));
        assert!(!bool::from(constant_time_eq(b"abc", b"abc\0")));
        assert!(!bool::from(constant_time_eq(b"abc\0", b"abc")));
        assert!(bool::from(constant_time_eq(b"", b"")));
    }

    #[test]
    fn query_values_are_form_decoded() {
        assert_eq!(
            query_value("a=1&token=x%2By+z", "token").as_deref(),
            Some("x+y z")
        );
        assert_eq!(query_value("token", "token").as_deref(), Some(""));
        assert_eq!(query_value("tok%65n=v", "token").as_deref(), Some("v"));
        assert_eq!(query_value("a=1", "token"), None);
        assert_eq!(query_value("token=%ff", "token"), None);
    }

    #[test]
    fn realm_is_quoted() {
        assert_eq!(
            basic_challenge(r#"my "realm""#),
            r#"Basic realm="my \"realm\"", charset="UTF-8""#
        );
    }
}
