//! Limits and options of the protocol core.

use crate::extension::permessage_deflate::DeflateConfig;

/// Limits and options shared by both sides of a connection.
///
/// The defaults are safe for a server exposed to the Internet: 1 MiB messages and frames.
///
/// ```
/// use sockjet_proto::Config;
/// let config = Config::default().max_message_size(Some(64 * 1024));
/// assert_eq!(config.max_message_size, Some(65536));
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Largest message accepted, in bytes, across all its fragments; `None` for no limit.
    /// A bigger message fails the connection with 1009 as soon as its frame header shows
    /// it, before its payload is buffered. Default: 1 MiB.
    pub max_message_size: Option<usize>,
    /// Largest single frame accepted, in bytes; `None` for no limit (the message limit
    /// still applies). Default: 1 MiB.
    pub max_frame_size: Option<usize>,
    /// Frames larger than this are split into fragments when sent; `None` sends every
    /// message as one frame. Default: `None`.
    pub max_send_frame_size: Option<usize>,
    /// permessage-deflate (RFC 7692) settings; `None` disables compression. On by default,
    /// with memory-friendly parameters (see [`DeflateConfig`]).
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: Some(DEFAULT_MAX_SIZE),
            max_frame_size: Some(DEFAULT_MAX_SIZE),
            max_send_frame_size: None,
            deflate: Some(DeflateConfig::default()),
        }
    }
}

impl Config {
    /// Sets [`max_message_size`](Self::max_message_size).
    ///
    /// ```
    /// let config = sockjet_proto::Config::default().max_message_size(None);
    /// assert_eq!(config.max_message_size, None);
    /// ```
    pub fn max_message_size(mut self, limit: Option<usize>) -> Self {
        self.max_message_size = limit;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    ///
    /// ```
    /// let config = sockjet_proto::Config::default().max_frame_size(Some(4096));
    /// assert_eq!(config.max_frame_size, Some(4096));
    /// ```
    pub fn max_frame_size(mut self, limit: Option<usize>) -> Self {
        self.max_frame_size = limit;
        self
    }

    /// Sets [`deflate`](Self::deflate): `None` turns compression off.
    ///
    /// ```
    /// let config = sockjet_proto::Config::default().deflate(None);
    /// assert!(config.deflate.is_none());
    /// ```
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// Sets [`max_send_frame_size`](Self::max_send_frame_size).
    ///
    /// ```
    /// let config = sockjet_proto::Config::default().max_send_frame_size(Some(4096));
    /// assert_eq!(config.max_send_frame_size, Some(4096));
    /// ```
    pub fn max_send_frame_size(mut self, limit: Option<usize>) -> Self {
        self.max_send_frame_size = limit.map(|size| size.max(1));
        self
    }
}

/// 1 MiB, Python `websockets`' default `max_size`.
pub const DEFAULT_MAX_SIZE: usize = 1 << 20;

/// Options of the server side of the opening handshake, and the [`Config`] of the
/// connection it opens.
///
/// The HTTP limits bound what a client can make the server buffer before the request is
/// even validated: a request line of 8 KiB, and a header block of 8 KiB and 128 headers.
///
/// ```
/// use sockjet_proto::{Config, ServerConfig};
/// let config = ServerConfig::default()
///     .protocol(Config::default().max_message_size(Some(64 * 1024)))
///     .max_headers(32)
///     .server_header(None);
/// assert_eq!(config.max_headers, 32);
/// assert_eq!(config.max_request_line, 8192);
/// assert_eq!(config.server_header, None);
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Limits of the connection once open.
    pub protocol: Config,
    /// Longest request line, in bytes, counting its CRLF; a longer one is answered with
    /// 414. Default: 8 KiB.
    pub max_request_line: usize,
    /// Largest header block, in bytes, counting every CRLF up to the empty line that ends
    /// it; a larger one is answered with 431. Default: 8 KiB.
    pub max_header_bytes: usize,
    /// Most header lines accepted; more are answered with 431. Default: 128.
    pub max_headers: usize,
    /// Value of the `Server` header in every response, or `None` to send none.
    /// Default: `sockjet/<version>`.
    pub server_header: Option<String>,
    /// Hand a request that is well-formed HTTP but not a valid opening handshake (a plain
    /// `GET /healthz`, a `POST`, an HTTP/1.0 probe) to the application as
    /// [`Event::Request`](crate::Event::Request), instead of answering it in the core,
    /// so that it can be answered as plain HTTP (a health check, a small page).
    /// [`ServerProtocol::request_error`](crate::ServerProtocol::request_error) then says
    /// what is wrong with it, and [`accept`](crate::ServerProtocol::accept) answers it with
    /// that error. Malformed HTTP and heads over the limits are still answered by the
    /// core. Default: `false`.
    pub deliver_invalid_requests: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            protocol: Config::default(),
            max_request_line: DEFAULT_MAX_LINE,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            server_header: Some(DEFAULT_PRODUCT.to_owned()),
            deliver_invalid_requests: false,
        }
    }
}

impl ServerConfig {
    /// Sets [`protocol`](Self::protocol).
    ///
    /// ```
    /// use sockjet_proto::{Config, ServerConfig};
    /// let config = ServerConfig::default().protocol(Config::default().max_frame_size(None));
    /// assert_eq!(config.protocol.max_frame_size, None);
    /// ```
    pub fn protocol(mut self, config: Config) -> Self {
        self.protocol = config;
        self
    }

    /// Sets [`max_request_line`](Self::max_request_line).
    ///
    /// ```
    /// let config = sockjet_proto::ServerConfig::default().max_request_line(1024);
    /// assert_eq!(config.max_request_line, 1024);
    /// ```
    pub fn max_request_line(mut self, limit: usize) -> Self {
        self.max_request_line = limit;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    ///
    /// ```
    /// let config = sockjet_proto::ServerConfig::default().max_header_bytes(4096);
    /// assert_eq!(config.max_header_bytes, 4096);
    /// ```
    pub fn max_header_bytes(mut self, limit: usize) -> Self {
        self.max_header_bytes = limit;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    ///
    /// ```
    /// let config = sockjet_proto::ServerConfig::default().max_headers(64);
    /// assert_eq!(config.max_headers, 64);
    /// ```
    pub fn max_headers(mut self, limit: usize) -> Self {
        self.max_headers = limit;
        self
    }

    /// Sets [`server_header`](Self::server_header).
    ///
    /// ```
    /// let config = sockjet_proto::ServerConfig::default().server_header(Some("demo/1".into()));
    /// assert_eq!(config.server_header.as_deref(), Some("demo/1"));
    /// ```
    pub fn server_header(mut self, value: Option<String>) -> Self {
        self.server_header = value;
        self
    }

    /// Sets [`deliver_invalid_requests`](Self::deliver_invalid_requests).
    ///
    /// ```
    /// let config = sockjet_proto::ServerConfig::default().deliver_invalid_requests(true);
    /// assert!(config.deliver_invalid_requests);
    /// ```
    pub fn deliver_invalid_requests(mut self, deliver: bool) -> Self {
        self.deliver_invalid_requests = deliver;
        self
    }
}

/// Options of the client side of the opening handshake, and the [`Config`] of the
/// connection it opens.
///
/// ```
/// use sockjet_proto::ClientConfig;
/// use sockjet_proto::http::{HeaderName, HeaderValue};
/// let config = ClientConfig::default()
///     .origin(Some("https://example.com".into()))
///     .subprotocols(["chat", "superchat"])
///     .header(HeaderName::from_static("x-token"), HeaderValue::from_static("42"));
/// assert_eq!(config.subprotocols, ["chat", "superchat"]);
/// assert_eq!(config.headers["x-token"], "42");
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Limits of the connection once open.
    pub protocol: Config,
    /// Largest header block of the server's response, in bytes, counting every CRLF up to
    /// the empty line that ends it. Default: 8 KiB.
    pub max_header_bytes: usize,
    /// Most header lines accepted in the server's response. Default: 128.
    pub max_headers: usize,
    /// Value of the `User-Agent` header, or `None` to send none. Default: `sockjet/<version>`.
    pub user_agent: Option<String>,
    /// Value of the `Origin` header, or `None` to send none (RFC 6455 §4.1: browsers send
    /// it; other clients may). Default: `None`.
    pub origin: Option<String>,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference. Each must
    /// be an HTTP token (RFC 6455 §4.1). Default: none.
    pub subprotocols: Vec<String>,
    /// More headers for the request, such as `Authorization` or `Cookie`. A header named
    /// here replaces the one the handshake would send. Default: none.
    pub headers: http::HeaderMap,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            protocol: Config::default(),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            user_agent: Some(DEFAULT_PRODUCT.to_owned()),
            origin: None,
            subprotocols: Vec::new(),
            headers: http::HeaderMap::new(),
        }
    }
}

impl ClientConfig {
    /// Sets [`protocol`](Self::protocol).
    ///
    /// ```
    /// use sockjet_proto::{ClientConfig, Config};
    /// let config = ClientConfig::default().protocol(Config::default().max_message_size(None));
    /// assert_eq!(config.protocol.max_message_size, None);
    /// ```
    pub fn protocol(mut self, config: Config) -> Self {
        self.protocol = config;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    ///
    /// ```
    /// let config = sockjet_proto::ClientConfig::default().max_header_bytes(4096);
    /// assert_eq!(config.max_header_bytes, 4096);
    /// ```
    pub fn max_header_bytes(mut self, limit: usize) -> Self {
        self.max_header_bytes = limit;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    ///
    /// ```
    /// let config = sockjet_proto::ClientConfig::default().max_headers(64);
    /// assert_eq!(config.max_headers, 64);
    /// ```
    pub fn max_headers(mut self, limit: usize) -> Self {
        self.max_headers = limit;
        self
    }

    /// Sets [`user_agent`](Self::user_agent).
    ///
    /// ```
    /// let config = sockjet_proto::ClientConfig::default().user_agent(None);
    /// assert_eq!(config.user_agent, None);
    /// ```
    pub fn user_agent(mut self, value: Option<String>) -> Self {
        self.user_agent = value;
        self
    }

    /// Sets [`origin`](Self::origin).
    ///
    /// ```
    /// let config = sockjet_proto::ClientConfig::default().origin(Some("https://a.example".into()));
    /// assert_eq!(config.origin.as_deref(), Some("https://a.example"));
    /// ```
    pub fn origin(mut self, value: Option<String>) -> Self {
        self.origin = value;
        self
    }

    /// Sets [`subprotocols`](Self::subprotocols).
    ///
    /// ```
    /// let config = sockjet_proto::ClientConfig::default().subprotocols(["mqtt"]);
    /// assert_eq!(config.subprotocols, ["mqtt"]);
    /// ```
    pub fn subprotocols<I, S>(mut self, subprotocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = subprotocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`headers`](Self::headers), replacing any set before.
    ///
    /// ```
    /// use sockjet_proto::http::{HeaderMap, HeaderValue, header::COOKIE};
    /// let mut headers = HeaderMap::new();
    /// headers.insert(COOKIE, HeaderValue::from_static("session=1"));
    /// let config = sockjet_proto::ClientConfig::default().headers(headers);
    /// assert_eq!(config.headers[COOKIE], "session=1");
    /// ```
    pub fn headers(mut self, headers: http::HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Adds one header to [`headers`](Self::headers), after any with the same name.
    ///
    /// ```
    /// use sockjet_proto::http::{HeaderValue, header::AUTHORIZATION};
    /// let config = sockjet_proto::ClientConfig::default()
    ///     .header(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
    /// assert_eq!(config.headers[AUTHORIZATION], "Bearer abc");
    /// ```
    pub fn header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// Default limit of the request line (and of the status line a client accepts): 8 KiB, as
/// nginx's `large_client_header_buffers` and Python `websockets`' `MAX_LINE_LENGTH`.
pub(crate) const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// Default limit of a header block: 8 KiB.
const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// Default limit of the number of headers: 128, as Python `websockets`' `MAX_NUM_HEADERS`.
const DEFAULT_MAX_HEADERS: usize = 128;

/// Default `Server` and `User-Agent` value.
const DEFAULT_PRODUCT: &str = concat!("sockjet/", env!("CARGO_PKG_VERSION"));
