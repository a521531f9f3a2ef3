//! How the server answers a request it read: runs the hooks and the handshake, and sends
//! either a 101 (the connection opens) or a plain HTTP answer, written in full before the
//! connection closes.

use std::{fmt, io, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use sockjet_proto::{Outgoing, Request, Response, ServerProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    error::{Error, ErrorKind},
    hooks::Hooks,
    server::write_all_outgoing,
    socket::Socket,
};

/// Answers a request the core delivered, after its request hooks (`answered` is their
/// answer, if any): the handshake (101 or the request's HTTP error), then the response
/// hooks. A 101 is left in `proto.outgoing()` for the caller to send, and the request (as
/// the hooks left it) is returned. Anything else is queued in `proto.outgoing()` and the
/// error to report is returned: the caller sends it with [`answer_and_close`], and
/// `proto.close_expected()` is then true, so it closes with [`linger_close`].
///
/// Not async: every server connection's handshake future would hold this one's state.
pub(crate) fn respond_to(
    hooks: &Hooks,
    server_header: Option<&str>,
    proto: &mut ServerProtocol,
    request: Box<Request>,
    answered: Option<Response>,
) -> Result<Box<Request>, Error> {
    // The common case: the core writes the 101 itself, without an `http::Response` to
    // build and then serialize.
    if answered.is_none() && hooks.accepts_plainly() && proto.send_accept(&request)? {
        return Ok(request);
    }
    let answer = hooks.answer(proto, request, answered);
    let (request, mut response) = (answer.request, answer.response);
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        finish_http_response(request.method(), &mut response, server_header);
    }
    if let Err(misuse) = proto.send_response(response) {
        // A response hook made a 101 out of the answer to a request that is not a
        // handshake.
        tracing::error!(%misuse, "invalid handshake response");
        let refusal = proto.reject(StatusCode::INTERNAL_SERVER_ERROR, "");
        proto.send_response(refusal)?;
        return Err(Error::from(misuse));
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(request);
    }
    Err(match (answer.by_hook, proto.handshake_error()) {
        (false, Some(error)) => Error::from(error.clone()),
        (true, _) => Error::new(ErrorKind::Handshake).with_source(AnsweredByHook(status)),
        (false, None) => {
            Error::new(ErrorKind::Handshake).with_source(format!("refused with HTTP {status}"))
        }
    })
}

/// Makes a response other than a 101 safe to send before closing: a `Content-Length`
/// that matches the body (never chunked: nothing follows it), `Connection: close`, and no
/// body for a `HEAD` request (RFC 9110 §9.3.2).
pub(crate) fn finish_http_response(method: &Method, response: &mut Response, server: Option<&str>) {
    let headers = response.headers_mut();
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(server) = server.and_then(|value| HeaderValue::from_str(value).ok()) {
        headers.entry(header::SERVER).or_insert(server);
    }
    let status = response.status();
    let has_body = !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    if has_body {
        let length = HeaderValue::from(response.body().len());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length);
    } else {
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Bytes::new();
    }
    if method == Method::HEAD {
        *response.body_mut() = Bytes::new();
    }
}

/// Writes an HTTP response that refuses or answers the request, and half-closes; then
/// [`linger_close`] closes.
pub(crate) async fn answer_and_close(
    stream: &mut Socket,
    outgoing: &mut Outgoing,
) -> io::Result<()> {
    write_all_outgoing(stream, outgoing).await?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// Closes a connection after an HTTP answer without resetting it.
///
/// RFC 9112 §9.6: "If a server performs an immediate close of a TCP connection, there is a
/// significant risk that the client will not be able to read the last HTTP response" (a
/// close with unread input sends a reset, which can discard the response at the client).
/// So after the response and a half-close, what the client still sends is read and
/// dropped until it closes too, for a bounded time and number of bytes.
pub(crate) async fn linger_close(mut stream: Socket) {
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// How long, and how many bytes, the server reads after answering a request it will not
/// upgrade, waiting for the client to close first.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// The source of the error `accept` returns for a request a hook answered: not a failure
/// of the server, so the accept loop logs it quietly (a health check every few seconds
/// would fill the log).
#[derive(Debug)]
pub(crate) struct AnsweredByHook(pub(crate) StatusCode);

impl fmt::Display for AnsweredByHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "answered by a request hook with HTTP {}", self.0)
    }
}

impl std::error::Error for AnsweredByHook {}

impl AnsweredByHook {
    /// Whether `error` is the answer of a request hook.
    pub(crate) fn is_source_of(error: &Error) -> bool {
        std::error::Error::source(error).is_some_and(|source| source.is::<Self>())
    }
}
