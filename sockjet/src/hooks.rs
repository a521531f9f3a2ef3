//! Handshake hooks, like Python `websockets`' `process_request` and `process_response`:
//! application code that sees each request before the upgrade and may answer it with any
//! HTTP response (a health check, a small page, 401, 403, 404), and code that may edit
//! every response before it is sent.
//!
//! The server runs, for each request it reads:
//!
//! 1. the request hooks, in the order they were added; the first one that answers wins
//!    and the others do not run;
//! 2. if none answered, the opening handshake proper: a request that is not a valid
//!    upgrade gets its HTTP error (400, 405, 426, ...), a valid one a 101 with the
//!    negotiated extensions and subprotocol (see
//!    [`ServerBuilder::subprotocols`](crate::ServerBuilder::subprotocols));
//! 3. the response hooks, in the order they were added, on whatever response was chosen;
//! 4. the response is sent. Anything but a 101 is written completely with
//!    `Connection: close` and a `Content-Length` that matches its body, and the connection
//!    is closed afterwards.
//!
//! Request hooks see every well-formed HTTP request, including a plain `GET` without
//! upgrade headers: that is how a health check is answered on the WebSocket port.
//!
//! ```no_run
//! use sockjet::{Server, hooks};
//! use sockjet::proto::http::{StatusCode, header};
//!
//! # async fn f() -> std::io::Result<()> {
//! let server = Server::builder()
//!     // A load balancer's probe: a plain GET, answered before any upgrade check.
//!     .process_request(|request, _peer| match request.uri().path() {
//!         "/healthz" => Some(hooks::respond(StatusCode::OK, "ok\n")),
//!         _ => None,
//!     })
//!     .process_response(|_request, response| {
//!         response.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
//!     })
//!     .bind("127.0.0.1:8765")
//!     .await?;
//! server.serve(|ws| async move { drop(ws) }).await
//! # }
//! ```

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use sockjet_proto::{Request, Response, ServerProtocol};

use crate::{server::ServerBuilder, subprotocol::SubprotocolPolicy};

/// The future an asynchronous request hook returns: the request to go on with (possibly
/// with new extensions), or the response that answers it.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<Request, Response>> + Send>>;

type SyncRequestFn = dyn Fn(&mut Request, Option<SocketAddr>) -> Option<Response> + Send + Sync;
type AsyncRequestFn = dyn Fn(Request, Option<SocketAddr>) -> HookFuture + Send + Sync;
type ResponseFn = dyn Fn(&Request, &mut Response) + Send + Sync;

/// A request hook: a function run on each request before the upgrade, which lets the
/// handshake go on (possibly after inserting data into the request's
/// [`extensions`](http::Request::extensions), which the handler finds in
/// [`Connection::request`](crate::Connection::request)) or answers it with any response.
///
/// Build one with [`new`](Self::new) or [`new_async`](Self::new_async), or convert a
/// ready-made policy ([`OriginPolicy`](crate::origin::OriginPolicy),
/// [`BasicAuth`](crate::auth::BasicAuth), [`BearerAuth`](crate::auth::BearerAuth)); add it
/// with [`ServerBuilder::request_hook`]. Cloning is cheap (the function is shared).
///
/// ```
/// use sockjet::hooks::{RequestHook, respond};
/// use sockjet::proto::http::StatusCode;
/// let hook = RequestHook::new(|request, _peer| {
///     if request.uri().path().starts_with("/admin") {
///         return Some(respond(StatusCode::FORBIDDEN, "forbidden\n"));
///     }
///     None
/// });
/// let _builder = sockjet::Server::builder().request_hook(hook);
/// ```
#[derive(Clone)]
pub struct RequestHook(HookKind);

#[derive(Clone)]
enum HookKind {
    /// Runs in place: no allocation per request.
    Sync(Arc<SyncRequestFn>),
    Async(Arc<AsyncRequestFn>),
}

impl RequestHook {
    /// A hook that decides at once, as Python `websockets`' `process_request`: `None`
    /// lets the handshake go on, `Some(response)` answers the request with `response`.
    /// It may edit the request (add extensions).
    ///
    /// ```
    /// use sockjet::hooks::RequestHook;
    /// /// Tags each request with the time it arrived, for the handler.
    /// #[derive(Clone)]
    /// struct Arrived(std::time::SystemTime);
    /// let hook = RequestHook::new(|request, _peer| {
    ///     request.extensions_mut().insert(Arrived(std::time::SystemTime::now()));
    ///     None
    /// });
    /// # drop(hook);
    /// ```
    pub fn new<F>(hook: F) -> Self
    where
        F: Fn(&mut Request, Option<SocketAddr>) -> Option<Response> + Send + Sync + 'static,
    {
        Self(HookKind::Sync(Arc::new(hook)))
    }

    /// A hook that may wait (look a token up in a database, ask another service). It
    /// takes the request and the peer address by value and gives back the request to go
    /// on with (`Ok`), or the response that answers it (`Err`). The future is boxed once
    /// per request.
    ///
    /// ```
    /// use sockjet::hooks::{RequestHook, respond};
    /// use sockjet::proto::http::StatusCode;
    /// async fn is_banned(_peer: Option<std::net::SocketAddr>) -> bool { false }
    /// let hook = RequestHook::new_async(|request, peer| async move {
    ///     if is_banned(peer).await {
    ///         return Err(respond(StatusCode::FORBIDDEN, "banned\n"));
    ///     }
    ///     Ok(request)
    /// });
    /// # drop(hook);
    /// ```
    pub fn new_async<F, Fut>(hook: F) -> Self
    where
        F: Fn(Request, Option<SocketAddr>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Request, Response>> + Send + 'static,
    {
        Self(HookKind::Async(Arc::new(move |request, peer| {
            Box::pin(hook(request, peer)) as HookFuture
        })))
    }

    /// Runs the hook on `request`. A panic in it answers 500 instead of dropping the
    /// connection without a word (Python `websockets` answers an exception in
    /// `process_request` the same way).
    ///
    /// An asynchronous hook owns the request while it runs; a copy stays here, so that
    /// the response hooks still see the request when it answers.
    pub(crate) async fn run(
        &self,
        request: &mut Request,
        peer: Option<SocketAddr>,
    ) -> Option<Response> {
        match &self.0 {
            HookKind::Sync(hook) => run_sync(hook.as_ref(), request, peer),
            HookKind::Async(hook) => {
                let owned = std::mem::replace(request, request.clone());
                let future = std::panic::catch_unwind(AssertUnwindSafe(|| hook(owned, peer)));
                let outcome = match future {
                    Ok(future) => CatchUnwind(future).await,
                    Err(_) => Err(hook_panicked()),
                };
                match outcome {
                    Ok(next) => {
                        *request = next;
                        None
                    }
                    Err(response) => Some(response),
                }
            }
        }
    }
}

/// Runs a hook that decides at once; a panic in it answers 500.
fn run_sync(
    hook: &SyncRequestFn,
    request: &mut Request,
    peer: Option<SocketAddr>,
) -> Option<Response> {
    std::panic::catch_unwind(AssertUnwindSafe(|| hook(request, peer)))
        .unwrap_or_else(|_| Some(hook_panicked()))
}

impl fmt::Debug for RequestHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            HookKind::Sync(_) => "sync",
            HookKind::Async(_) => "async",
        };
        f.debug_tuple("RequestHook").field(&kind).finish()
    }
}

/// Polls a hook's future, turning a panic into a 500 answer.
struct CatchUnwind(HookFuture);

impl Future for CatchUnwind {
    type Output = Result<Request, Response>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(hook_panicked())),
        }
    }
}

fn hook_panicked() -> Response {
    tracing::error!("a request hook panicked; answering 500");
    respond(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
}

/// The hooks and handshake policy of a server, shared by every connection.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    request: Vec<RequestHook>,
    /// One of `request` is asynchronous.
    has_async_request_hook: bool,
    response: Vec<Arc<ResponseFn>>,
    pub(crate) subprotocols: SubprotocolPolicy,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("request", &self.request)
            .field("response", &self.response.len())
            .field("subprotocols", &self.subprotocols)
            .finish()
    }
}

impl Hooks {
    pub(crate) fn push_request(&mut self, hook: RequestHook) {
        self.has_async_request_hook |= matches!(hook.0, HookKind::Async(_));
        self.request.push(hook);
    }

    /// Whether an accepting response goes out as the core builds it: no response hook may
    /// edit it and no subprotocol is to be chosen, so the server can have the core write
    /// it directly (`ServerProtocol::send_accept`).
    pub(crate) fn accepts_plainly(&self) -> bool {
        self.response.is_empty() && !self.subprotocols.is_configured()
    }

    /// Runs the request hooks in place, in order, until one answers, if none of them
    /// waits; `Err(())` (having run none) if one may. The server then needs no future,
    /// and no allocation, for hooks such as a health check's.
    pub(crate) fn run_request_hooks_now(
        &self,
        request: &mut Request,
        peer: Option<SocketAddr>,
    ) -> Result<Option<Response>, ()> {
        if self.has_async_request_hook {
            return Err(());
        }
        for hook in &self.request {
            if let HookKind::Sync(hook) = &hook.0 {
                if let Some(response) = run_sync(hook.as_ref(), request, peer) {
                    return Ok(Some(response));
                }
            }
        }
        Ok(None)
    }

    /// Runs the request hooks on a request the core delivered, in order, until one
    /// answers; returns its answer.
    pub(crate) async fn run_request_hooks(
        &self,
        request: &mut Request,
        peer: Option<SocketAddr>,
    ) -> Option<Response> {
        for hook in &self.request {
            if let Some(response) = hook.run(request, peer).await {
                return Some(response);
            }
        }
        None
    }

    /// Decides the response once the request hooks ran: their answer, or the handshake's
    /// (101 or the request's HTTP error); then the response hooks edit it.
    pub(crate) fn answer(
        &self,
        proto: &ServerProtocol,
        request: Box<Request>,
        answered: Option<Response>,
    ) -> Answer {
        let by_hook = answered.is_some();
        let mut response = match answered {
            // Only the handshake may switch protocols: a hand-made 101 would lack
            // `Sec-WebSocket-Accept` and the negotiated extensions.
            Some(response) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                tracing::error!("a request hook answered 101; return None to accept instead");
                respond(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
            Some(response) => response,
            None => {
                let response = proto.accept(&request);
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    self.subprotocols.negotiate(&request, response)
                } else {
                    response
                }
            }
        };
        for hook in &self.response {
            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&request, &mut response))).is_err()
            {
                tracing::error!("a response hook panicked; answering 500");
                response = respond(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n");
            }
        }
        Answer {
            request,
            response,
            by_hook,
        }
    }
}

/// What to send in answer to a request.
pub(crate) struct Answer {
    /// The request as the hooks left it (with their extensions).
    pub(crate) request: Box<Request>,
    pub(crate) response: Response,
    /// A request hook answered (rather than the handshake).
    pub(crate) by_hook: bool,
}

/// Builds a plain-text response, for a hook to answer with: `Content-Type: text/plain;
/// charset=utf-8` and `text` as the body. The server adds `Content-Length` and
/// `Connection: close` when it sends it.
///
/// ```
/// use sockjet::proto::http::StatusCode;
/// let response = sockjet::hooks::respond(StatusCode::NOT_FOUND, "no such room\n");
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.body(), "no such room\n");
/// ```
pub fn respond(status: StatusCode, text: &str) -> Response {
    respond_with(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(text.as_bytes()),
    )
}

/// Builds a response with any content type and body, such as a small HTML page.
///
/// # Panics
///
/// If `content_type` is not a valid header value (it contains control characters).
///
/// ```
/// use sockjet::proto::http::StatusCode;
/// let page = sockjet::hooks::respond_with(
///     StatusCode::OK,
///     "text/html; charset=utf-8",
///     "<!doctype html><title>chat</title>",
/// );
/// assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
/// ```
pub fn respond_with(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let content_type = HeaderValue::from_str(content_type).expect("content type is a header value");
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

impl ServerBuilder {
    /// Adds a request hook that decides at once (see [`RequestHook::new`] and the
    /// [`hooks`](crate::hooks) module for the order things run in): `None` lets the
    /// handshake go on, `Some(response)` answers the request. Several hooks run in the
    /// order added; the first that answers wins.
    ///
    /// ```no_run
    /// use sockjet::hooks::respond;
    /// use sockjet::proto::http::StatusCode;
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::builder()
    ///     .process_request(|request, _peer| {
    ///         if request.uri().path() == "/healthz" {
    ///             return Some(respond(StatusCode::OK, "ok\n"));
    ///         }
    ///         None
    ///     })
    ///     .bind("127.0.0.1:8765")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn process_request<F>(self, hook: F) -> Self
    where
        F: Fn(&mut Request, Option<SocketAddr>) -> Option<Response> + Send + Sync + 'static,
    {
        self.request_hook(RequestHook::new(hook))
    }

    /// Adds a request hook that may wait (see [`RequestHook::new_async`]): it takes the
    /// request and peer address by value, and resolves to the request to go on with or
    /// the response that answers it.
    ///
    /// ```no_run
    /// use sockjet::hooks::respond;
    /// use sockjet::proto::http::StatusCode;
    /// async fn session_user(cookie: Option<String>) -> Option<String> { cookie }
    /// # async fn f() -> std::io::Result<()> {
    /// let server = sockjet::Server::builder()
    ///     .process_request_async(|mut request, _peer| async move {
    ///         let cookie = request
    ///             .headers()
    ///             .get("cookie")
    ///             .and_then(|value| value.to_str().ok())
    ///             .map(str::to_owned);
    ///         match session_user(cookie).await {
    ///             Some(user) => {
    ///                 request.extensions_mut().insert(sockjet::auth::Identity::new(user));
    ///                 Ok(request)
    ///             }
    ///             None => Err(respond(StatusCode::UNAUTHORIZED, "log in first\n")),
    ///         }
    ///     })
    ///     .bind("127.0.0.1:8765")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn process_request_async<F, Fut>(self, hook: F) -> Self
    where
        F: Fn(Request, Option<SocketAddr>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Request, Response>> + Send + 'static,
    {
        self.request_hook(RequestHook::new_async(hook))
    }

    /// Adds a request hook or a ready-made policy:
    /// [`OriginPolicy`](crate::origin::OriginPolicy),
    /// [`BasicAuth`](crate::auth::BasicAuth), [`BearerAuth`](crate::auth::BearerAuth). It
    /// runs after the hooks added before it.
    ///
    /// ```
    /// use sockjet::origin::OriginPolicy;
    /// let _builder = sockjet::Server::builder()
    ///     .request_hook(OriginPolicy::new().allow("https://example.com"));
    /// ```
    pub fn request_hook(mut self, hook: impl Into<RequestHook>) -> Self {
        self.hooks.push_request(hook.into());
        self
    }

    /// Adds a response hook: it sees the request (as the request hooks left it) and the
    /// response about to be sent (the 101, or the error or answer of a hook), and may
    /// edit it (add `Set-Cookie`, replace it entirely). Several run in the order added.
    /// A 101 turned into another status refuses the connection; a 101 must not be made
    /// out of an error response.
    ///
    /// ```
    /// use sockjet::proto::http::{HeaderValue, header};
    /// let _builder = sockjet::Server::builder().process_response(|_request, response| {
    ///     response
    ///         .headers_mut()
    ///         .insert(header::SET_COOKIE, HeaderValue::from_static("seen=1; HttpOnly"));
    /// });
    /// ```
    pub fn process_response<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Request, &mut Response) + Send + Sync + 'static,
    {
        self.hooks.response.push(Arc::new(hook));
        self
    }
}
