//! [`WebSocketUpgrade`]: the axum extractor, a drop-in for `axum::extract::ws`'s, whose
//! handler gets a [`sockjet::Connection`].

use std::{borrow::Cow, fmt, future::Future, net::SocketAddr};

use axum::{
    body::Body,
    extract::{ConnectInfo, FromRequestParts},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, Version, header, request::Parts};
use hyper::upgrade::OnUpgrade;
use sockjet::{
    Connection, ConnectionConfig, Error, Server,
    proto::{DeflateConfig, HandshakeError, ServerConfig, ServerProtocol},
};

use crate::hyper::{NOT_UPGRADABLE, Upgrading, accept, connect_protocol};

/// Extractor that accepts a WebSocket upgrade: an HTTP/1.1 `Upgrade` (RFC 6455) or an
/// HTTP/2 extended CONNECT (RFC 8441; `axum::serve` enables it). The request is checked
/// when extracted; an invalid one is refused with a [`WebSocketUpgradeRejection`] (400,
/// 405, 426 with `Sec-WebSocket-Version: 13`, 505), the same answers a sockjet
/// [`Server`] gives. [`on_upgrade`](Self::on_upgrade) returns the response and runs the
/// callback on the [`Connection`] once axum has sent it.
///
/// permessage-deflate is negotiated as in a sockjet [`Server`] (on by default). With
/// `into_make_service_with_connect_info::<SocketAddr>()`, the connection's
/// [`peer_addr`](Connection::peer_addr) is the client's address.
///
/// ```no_run
/// use axum::{Router, response::Response, routing::any};
/// use sockjet_axum::WebSocketUpgrade;
///
/// async fn ws(upgrade: WebSocketUpgrade) -> Response {
///     upgrade
///         .protocols(["chat.v2", "chat.v1"])
///         .max_message_size(Some(64 * 1024))
///         .on_upgrade(|mut ws: sockjet::Connection| async move {
///             while let Ok(Some(message)) = ws.recv().await {
///                 if ws.send(message).await.is_err() {
///                     break;
///                 }
///             }
///         })
/// }
///
/// # async fn serve() -> std::io::Result<()> {
/// let app = Router::new().route("/ws", any(ws));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub struct WebSocketUpgrade {
    /// The request without its body, as the connection will report it.
    request: http::Request<()>,
    on_upgrade: OnUpgrade,
    connection: ConnectionConfig,
    handshake: ServerConfig,
    /// The subprotocol to answer with.
    protocol: Option<HeaderValue>,
    peer_addr: Option<SocketAddr>,
    on_failed_upgrade: Option<Box<dyn FnOnce(Error) + Send>>,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = head_of(parts);
        // The checks of a default server now, so that a bad request never reaches the
        // handler; `on_upgrade` answers with the options the handler chose.
        let mut check = ServerProtocol::new(ServerConfig::default());
        let checked = match request.version() >= Version::HTTP_2 {
            true => check.receive_extended_connect(&request, connect_protocol(&request)),
            false => check.receive_parsed_request(&request),
        };
        if let Err(error) = checked {
            let response = check.error_response(&error);
            return Err(WebSocketUpgradeRejection {
                error: Some(error),
                response,
            });
        }
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(WebSocketUpgradeRejection::not_upgradable)?;
        let peer_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Ok(Self {
            request,
            on_upgrade,
            connection: ConnectionConfig::default(),
            handshake: ServerConfig::default(),
            protocol: None,
            peer_addr,
            on_failed_upgrade: None,
        })
    }
}

impl WebSocketUpgrade {
    /// The handshake request (method, URI, version and headers), as
    /// [`Connection::request`] will give it.
    ///
    /// ```
    /// # fn f(upgrade: &sockjet_axum::WebSocketUpgrade) {
    /// println!("{}", upgrade.request().uri());
    /// # }
    /// ```
    pub fn request(&self) -> &http::Request<()> {
        &self.request
    }

    /// Picks the subprotocol: the first of `protocols` (in the server's order of
    /// preference) that the client offered in `Sec-WebSocket-Protocol`. None is chosen if
    /// the client offered none of them; RFC 6455 §4.2.2 then has the server answer
    /// without the header, and the client decides whether to go on.
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) {
    /// let upgrade = upgrade.protocols(["graphql-transport-ws", "graphql-ws"]);
    /// # }
    /// ```
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        let offered: Vec<&str> = self.requested_protocols().collect();
        self.protocol = protocols
            .into_iter()
            .map(Into::into)
            .find(|protocol| offered.contains(&protocol.as_ref()))
            .and_then(|protocol| HeaderValue::from_str(&protocol).ok());
        self
    }

    /// The subprotocols the client offered, in its order.
    ///
    /// ```
    /// # fn f(upgrade: &sockjet_axum::WebSocketUpgrade) {
    /// let offered: Vec<&str> = upgrade.requested_protocols().collect();
    /// # }
    /// ```
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|protocol| !protocol.is_empty())
    }

    /// The subprotocol chosen so far.
    ///
    /// ```
    /// # fn f(upgrade: &sockjet_axum::WebSocketUpgrade) {
    /// println!("{:?}", upgrade.selected_protocol());
    /// # }
    /// ```
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|value| value.to_str().ok())
    }

    /// Sets the connection options (keepalive, timeouts, queue, limits, compression).
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) {
    /// let upgrade = upgrade.config(sockjet::ConnectionConfig::default().ping_interval(None));
    /// # }
    /// ```
    pub fn config(mut self, config: ConnectionConfig) -> Self {
        self.connection = config;
        self
    }

    /// Sets the handshake options (the `Server` header; the HTTP head limits are axum's).
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) {
    /// let upgrade = upgrade.handshake(sockjet::proto::ServerConfig::default().server_header(None));
    /// # }
    /// ```
    pub fn handshake(mut self, config: ServerConfig) -> Self {
        self.handshake = config;
        self
    }

    /// Sets the largest message (and frame) accepted; `None` for no limit. Default: 1 MiB.
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) {
    /// let upgrade = upgrade.max_message_size(Some(16 << 20));
    /// # }
    /// ```
    pub fn max_message_size(mut self, limit: Option<usize>) -> Self {
        self.connection = self.connection.max_message_size(limit);
        self
    }

    /// Sets permessage-deflate options; `None` refuses compression. On by default.
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) {
    /// let upgrade = upgrade.compression(None);
    /// # }
    /// ```
    pub fn compression(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.connection = self.connection.compression(deflate);
        self
    }

    /// Calls `callback` if the upgrade fails after the response was sent (hyper could not
    /// hand over the connection). By default the failure is only logged.
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) {
    /// let upgrade = upgrade.on_failed_upgrade(|error| eprintln!("upgrade failed: {error}"));
    /// # }
    /// ```
    pub fn on_failed_upgrade(mut self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed_upgrade = Some(Box::new(callback));
        self
    }

    /// Accepts the connection: returns the response for axum to send (101, or 200 over
    /// HTTP/2) and, in a task of its own, runs `callback` with the [`Connection`] once
    /// axum has upgraded it. When `callback` returns, the connection is closed with 1000
    /// (if still open).
    ///
    /// ```
    /// # fn f(upgrade: sockjet_axum::WebSocketUpgrade) -> axum::response::Response {
    /// upgrade.on_upgrade(|ws| async move {
    ///     let _ = ws.send("hello").await;
    /// })
    /// # }
    /// ```
    #[must_use = "the upgrade happens only if this response is returned"]
    pub fn on_upgrade<C, F>(self, callback: C) -> Response
    where
        C: FnOnce(Connection) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let builder = Server::builder()
            .connection(self.connection)
            .handshake(self.handshake);
        let mut upgrade = match accept(&self.request, &builder) {
            Ok(upgrade) => upgrade,
            // The same checks passed at extraction; only the options changed.
            Err(refusal) => return refusal.map(Body::from),
        };
        upgrade.set_peer_addr(self.peer_addr);
        if let Some(protocol) = self.protocol {
            upgrade
                .response_mut()
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        let (response, pending) = match upgrade.respond() {
            Ok(accepted) => accepted,
            Err(refusal) => return refusal.map(Body::from),
        };
        let upgrading = Upgrading::new(self.on_upgrade, pending);
        let on_failed_upgrade = self.on_failed_upgrade;
        tokio::spawn(async move {
            match upgrading.await {
                Ok(connection) => callback(connection).await,
                Err(error) => match on_failed_upgrade {
                    Some(on_failed_upgrade) => on_failed_upgrade(error),
                    None => tracing::debug!(%error, "WebSocket upgrade failed"),
                },
            }
        });
        response.map(Body::from)
    }
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", &self.request)
            .field("protocol", &self.protocol)
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

/// Why [`WebSocketUpgrade`] refused a request; its response is the HTTP answer.
///
/// ```
/// # fn f(rejection: sockjet_axum::WebSocketUpgradeRejection) {
/// println!("{}: {rejection}", rejection.status());
/// # }
/// ```
#[derive(Debug)]
pub struct WebSocketUpgradeRejection {
    /// `None` when hyper cannot upgrade the connection.
    error: Option<HandshakeError>,
    response: sockjet::Response,
}

impl WebSocketUpgradeRejection {
    fn not_upgradable() -> Self {
        Self {
            error: None,
            response: crate::hyper::not_upgradable(),
        }
    }

    /// The HTTP status of the refusal.
    ///
    /// ```
    /// # fn f(rejection: &sockjet_axum::WebSocketUpgradeRejection) {
    /// assert!(rejection.status().is_client_error());
    /// # }
    /// ```
    pub fn status(&self) -> http::StatusCode {
        self.response.status()
    }

    /// What was wrong with the handshake request; `None` if the request was valid but
    /// the connection cannot be upgraded (HTTP/1.0, or not served by hyper).
    ///
    /// ```
    /// # fn f(rejection: &sockjet_axum::WebSocketUpgradeRejection) {
    /// if let Some(error) = rejection.handshake_error() { println!("{error}"); }
    /// # }
    /// ```
    pub fn handshake_error(&self) -> Option<&HandshakeError> {
        self.error.as_ref()
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(error) => error.fmt(f),
            None => f.write_str(NOT_UPGRADABLE),
        }
    }
}

impl std::error::Error for WebSocketUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error
            .as_ref()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        self.response.map(Body::from)
    }
}

/// The request without its body, and of its extensions only the `:protocol` of an
/// extended CONNECT.
fn head_of(parts: &Parts) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    if let Some(protocol) = parts.extensions.get::<hyper::ext::Protocol>() {
        request.extensions_mut().insert(protocol.clone());
    }
    request
}
