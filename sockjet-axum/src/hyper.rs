//! WebSocket upgrades in a hyper 1.x service: answer the request with [`upgrade`], return
//! the response from the service, and await the [`Upgrading`] future (in a task of its
//! own) for the [`Connection`].
//!
//! Both ways of asking for a WebSocket are handled: the HTTP/1.1 `Upgrade` of RFC 6455
//! and the HTTP/2 extended CONNECT of RFC 8441 (which hyper's HTTP/2 server accepts once
//! `enable_connect_protocol()` is set on its builder).
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http_body_util::Full;
//! use hyper::{Request, Response, body::{Bytes, Incoming}, server::conn::http1, service::service_fn};
//! use hyper_util::rt::TokioIo;
//!
//! async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     if !sockjet_axum::hyper::is_upgrade_request(&request) {
//!         return Ok(Response::new(Full::new(Bytes::from("plain HTTP"))));
//!     }
//!     let builder = sockjet::Server::builder();
//!     match sockjet_axum::hyper::upgrade(&mut request, &builder) {
//!         Ok((response, upgrading)) => {
//!             tokio::spawn(async move {
//!                 let Ok(mut ws) = upgrading.await else { return };
//!                 while let Ok(Some(message)) = ws.recv().await {
//!                     let _ = ws.send(message).await;
//!                 }
//!             });
//!             Ok(response)
//!         }
//!         Err(refusal) => Ok(refusal),
//!     }
//! }
//!
//! # async fn serve() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     tokio::spawn(
//!         http1::Builder::new()
//!             .serve_connection(TokioIo::new(stream), service_fn(handle))
//!             .with_upgrades(),
//!     );
//! }
//! # }
//! ```

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};
use http_body_util::Full;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sockjet::{Connection, Error, PendingUpgrade, ServerBuilder, Upgrade};
use tokio::net::TcpStream;

/// The body of the responses built here.
pub type Body = Full<Bytes>;

/// Whether `request` asks for a WebSocket: an HTTP/1.1 GET with `Upgrade: websocket` and
/// `Connection: upgrade`, or an HTTP/2 CONNECT whose `:protocol` is `websocket`. Use it to
/// route; [`upgrade`] checks the rest.
///
/// ```
/// let request = http::Request::get("/ws")
///     .header("Upgrade", "websocket")
///     .header("Connection", "keep-alive, Upgrade")
///     .body(())
///     .unwrap();
/// assert!(sockjet_axum::hyper::is_upgrade_request(&request));
/// assert!(!sockjet_axum::hyper::is_upgrade_request(&http::Request::get("/ws").body(()).unwrap()));
/// ```
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    if request.version() >= Version::HTTP_2 {
        return request.method() == Method::CONNECT
            && connect_protocol(request) == Some("websocket");
    }
    request.method() == Method::GET
        && lists_token(request.headers(), header::UPGRADE, "websocket")
        && lists_token(request.headers(), header::CONNECTION, "upgrade")
}

/// Answers a WebSocket request in a hyper service: checks it (RFC 6455 §4.2.1, or RFC 8441
/// over HTTP/2), negotiates permessage-deflate with `builder`'s options, and returns the
/// response to send (101, or 200 over HTTP/2) with the future that resolves to the
/// [`Connection`] once hyper upgraded the connection. That future only completes after
/// the service returned the response: spawn it.
///
/// # Errors
///
/// The response refusing an invalid request (400, 405, 426 with
/// `Sec-WebSocket-Version: 13`, 505), or 426 if hyper cannot upgrade this connection.
///
/// ```no_run
/// # async fn f(mut request: hyper::Request<hyper::body::Incoming>) {
/// let builder = sockjet::Server::builder();
/// let response = match sockjet_axum::hyper::upgrade(&mut request, &builder) {
///     Ok((response, upgrading)) => {
///         tokio::spawn(async move {
///             if let Ok(ws) = upgrading.await {
///                 let _ = ws.send("welcome").await;
///             }
///         });
///         response
///     }
///     Err(refusal) => refusal,
/// };
/// # drop(response); }
/// ```
#[allow(clippy::result_large_err)] // The error is the response to send.
pub fn upgrade<B>(
    request: &mut Request<B>,
    builder: &ServerBuilder,
) -> Result<(Response<Body>, Upgrading), Response<Body>> {
    upgrade_with(request, builder, |_| {})
}

/// [`upgrade`], with `edit` called on the accepted [`Upgrade`] before it is answered: to
/// pick a subprotocol, add headers, set the peer address or refuse after all.
///
/// # Errors
///
/// As [`upgrade`], and the refusal `edit` made.
///
/// ```no_run
/// # async fn f(mut request: hyper::Request<hyper::body::Incoming>) {
/// use sockjet::proto::http::header::SEC_WEBSOCKET_PROTOCOL;
/// let builder = sockjet::Server::builder();
/// let answer = sockjet_axum::hyper::upgrade_with(&mut request, &builder, |upgrade| {
///     let offered = upgrade.request().headers().get(SEC_WEBSOCKET_PROTOCOL).cloned();
///     if let Some(offered) = offered.filter(|value| value == "chat") {
///         upgrade.response_mut().headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, offered);
///     }
/// });
/// # drop(answer); }
/// ```
#[allow(clippy::result_large_err)]
pub fn upgrade_with<B>(
    request: &mut Request<B>,
    builder: &ServerBuilder,
    edit: impl FnOnce(&mut Upgrade),
) -> Result<(Response<Body>, Upgrading), Response<Body>> {
    let mut upgrade = accept(request, builder).map_err(into_hyper)?;
    let on_upgrade = request
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or_else(|| into_hyper(not_upgradable()))?;
    edit(&mut upgrade);
    let (response, pending) = upgrade.respond().map_err(into_hyper)?;
    Ok((into_hyper(response), Upgrading::new(on_upgrade, pending)))
}

/// Checks `request` with the rules of its HTTP version.
#[allow(clippy::result_large_err)]
pub(crate) fn accept<B>(
    request: &Request<B>,
    builder: &ServerBuilder,
) -> Result<Upgrade, sockjet::Response> {
    // RFC 8441 for HTTP/2 (and RFC 9220 for HTTP/3): an HTTP/2 GET cannot upgrade.
    if request.version() >= Version::HTTP_2 {
        builder.upgrade_extended_connect(request, connect_protocol(request))
    } else {
        builder.upgrade(request)
    }
}

/// The `:protocol` pseudo-header of an extended CONNECT, which hyper keeps apart.
pub(crate) fn connect_protocol<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<hyper::ext::Protocol>()
        .map(hyper::ext::Protocol::as_str)
}

/// The 426 for a request hyper cannot upgrade (no `OnUpgrade`: HTTP/1.0, a request not
/// coming from a hyper server, or an upgrade already taken), as axum answers it.
pub(crate) fn not_upgradable() -> sockjet::Response {
    let mut response = Response::new(Bytes::from_static(NOT_UPGRADABLE.as_bytes()));
    *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) const NOT_UPGRADABLE: &str = "connection cannot be upgraded";

fn into_hyper(response: sockjet::Response) -> Response<Body> {
    response.map(Full::new)
}

/// Whether any `name` header lists `token` (RFC 9110 §5.6.1 lists, compared ASCII
/// case-insensitively).
fn lists_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&byte| byte == b',')
            .any(|element| element.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Resolves to the [`Connection`] once hyper hands over the upgraded connection, which
/// happens after the response was sent. Returned by [`upgrade`].
///
/// Over plain TCP (hyper serving a `TokioIo<TcpStream>`), the connection takes the TCP
/// stream back from hyper and runs on sockjet's TCP fast path.
#[must_use = "the connection opens only when this future is awaited"]
pub struct Upgrading {
    on_upgrade: OnUpgrade,
    pending: Option<PendingUpgrade>,
}

impl Upgrading {
    pub(crate) fn new(on_upgrade: OnUpgrade, pending: PendingUpgrade) -> Self {
        Self {
            on_upgrade,
            pending: Some(pending),
        }
    }
}

impl Future for Upgrading {
    type Output = Result<Connection, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx));
        let pending = self
            .pending
            .take()
            .expect("Upgrading polled after completion");
        Poll::Ready(match upgraded {
            Ok(upgraded) => Ok(finish(pending, upgraded)),
            Err(error) => Err(Error::from(io::Error::other(error))),
        })
    }
}

impl fmt::Debug for Upgrading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrading")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// Opens the connection on what hyper upgraded.
fn finish(pending: PendingUpgrade, upgraded: Upgraded) -> Connection {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => pending.finish_tcp(parts.io.into_inner(), parts.read_buf),
        Err(upgraded) => pending.finish(TokioIo::new(upgraded)),
    }
}
