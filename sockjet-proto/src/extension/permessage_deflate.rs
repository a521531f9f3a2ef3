//! The permessage-deflate extension (RFC 7692): negotiation in the opening handshake, and
//! the compression and decompression of messages.
//!
//! Each message is compressed on its own into a raw DEFLATE stream (RFC 1951) that ends
//! with a sync flush; the final `00 00 ff ff` of that flush is left off the wire and put
//! back by the receiver (RFC 7692 §7.2.1, §7.2.2). With *context takeover* (the default)
//! the LZ77 window carries over from one message to the next, so a message that repeats an
//! earlier one shrinks to a few bytes.
//!
//! ```
//! use sockjet_proto::extension::permessage_deflate::{DeflateConfig, PerMessageDeflate};
//! use sockjet_proto::{BytesMut, Side};
//!
//! let config = DeflateConfig::default();
//! let offer = config.client_offer();
//! let (server_params, response) = config.server_negotiate(&[&offer]).unwrap().unwrap();
//! let client_params = config.client_accept(&[&response]).unwrap();
//!
//! let mut client = PerMessageDeflate::new(Side::Client, client_params, &config);
//! let mut server = PerMessageDeflate::new(Side::Server, server_params, &config);
//! let mut wire = BytesMut::new();
//! client.compress(b"Hello", &mut wire);
//! let mut message = BytesMut::new();
//! server.decompress(&wire, true, &mut message, 1 << 20).unwrap();
//! assert_eq!(&message[..], b"Hello");
//! ```
//!
//! # Memory
//!
//! The zlib state is allocated on first use, one direction at a time: a connection that
//! only receives compressed messages never allocates a compressor. With `mem_level` below
//! 8 (the default is 5) the compressor is C zlib's, whose tables follow `mem_level`: about
//! 38 KiB at 12 window bits (the server's default) and 150 KiB at 15. From 8 on it is
//! zlib-rs's, faster when one connection compresses large messages in a row but with a
//! 128 KiB hash table at any setting: 259 KiB at 12 bits and memLevel 8. A decompressor
//! (zlib-rs) takes 46 KiB whatever the window: zlib-rs always allocates 32 KiB for it.
//! `tests/deflate.rs` measures every setting.

use std::{error::Error as StdError, fmt, mem};

use bytes::BytesMut;
use zlib_rs::{Inflate, InflateFlush, Status};

use super::{DecodeError, Extension, Param, compressor::Compressor, parse_extensions};
use crate::{error::HandshakeError, frame::RSV1, protocol::Side};

/// The window size a server compresses with unless configured otherwise: 12 bits, a 4 KiB
/// window, as Python `websockets`. Its compressor then takes about 38 KiB instead of
/// 150 KiB at 15 bits (with the default `mem_level`).
///
/// ```
/// assert_eq!(sockjet_proto::extension::permessage_deflate::DEFAULT_SERVER_MAX_WINDOW_BITS, 12);
/// ```
pub const DEFAULT_SERVER_MAX_WINDOW_BITS: u8 = 12;

/// Options of permessage-deflate, for either side of the connection.
///
/// The `server_*` and `client_*` parameters are named as in RFC 7692 §7.1: they describe
/// the compressor of that side. What each one does depends on the side using the
/// configuration; the field docs say it for both.
///
/// The defaults suit both sides: a client makes the same offer as a browser
/// (`permessage-deflate; client_max_window_bits`), and a server accepts any valid offer
/// and compresses with a 4 KiB window.
///
/// ```
/// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
/// let config = DeflateConfig::default()
///     .compression_level(1)
///     .client_no_context_takeover(true);
/// assert_eq!(
///     config.client_offer(),
///     "permessage-deflate; client_no_context_takeover; client_max_window_bits"
/// );
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Whether the server resets its compressor after every message (RFC 7692 §7.1.1.1),
    /// which costs compression and saves no memory in sockjet (the state is reset, not
    /// freed). A server always does so when the client asks; with this set, a server
    /// imposes it and a client asks for it. Default: `false`.
    pub server_no_context_takeover: bool,
    /// Whether the client resets its compressor after every message (RFC 7692 §7.1.1.2).
    /// A client sets it to offer it (and then does so whatever the server answers); a
    /// server sets it to require it of every client. Default: `false`.
    pub client_no_context_takeover: bool,
    /// Base-2 logarithm of the server's LZ77 window, 8 to 15 (other values are clamped).
    ///
    /// - Server: the largest window it compresses with; it answers the smaller of this and
    ///   what the client asked for. `None` means [`DEFAULT_SERVER_MAX_WINDOW_BITS`].
    /// - Client: asked for in the offer (`server_max_window_bits=N`); a server must then
    ///   use at most this window or decline compression. `None` asks nothing, since many
    ///   servers support only 15 bits and would decline.
    ///
    /// Default: `None`.
    pub server_max_window_bits: Option<u8>,
    /// Base-2 logarithm of the client's LZ77 window, 8 to 15 (other values are clamped).
    ///
    /// - Client: `Some(n)` offers `client_max_window_bits=n` and compresses with at most
    ///   `n` bits; `None` offers a valueless `client_max_window_bits`, saying the client
    ///   can use whatever smaller window the server answers, and otherwise uses 15 bits.
    /// - Server: the largest window a client may use, answered to clients that offer the
    ///   parameter (RFC 7692 §7.1.2.2 forbids answering it to others). `None` sets no
    ///   limit. A limit saves the client's memory, not the server's: sockjet's
    ///   decompressor takes the same memory for any window.
    ///
    /// Default: `None`.
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0 (no compression) to 9 (slowest); larger values are
    /// clamped. Default: 6, zlib's default, which Python `websockets` and Node's `ws` use.
    pub compression_level: u32,
    /// zlib `memLevel`, 1 to 9 (other values are clamped): memory against speed. Below
    /// 8, the compressor is C zlib's, with a hash table of `2^(mem_level + 8)` bytes and
    /// `2^(mem_level + 8)` bytes of symbols (8 KiB each at 5), cheapest when many
    /// connections compress, since each one's tables are cold by its next message. At 8
    /// and 9 it is zlib-rs's, with a 128 KiB hash table and `7 × 2^(mem_level + 6)`
    /// bytes of symbols, 1.5 times faster when one connection compresses large messages
    /// in a row. Default: 5, as Python `websockets`; it loses little compression except
    /// on messages of tens of KiB.
    pub mem_level: u8,
    /// Messages shorter than this many bytes are sent uncompressed: below it deflate's
    /// overhead and CPU time outweigh what it saves. Default: 128.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            compression_level: 6,
            mem_level: 5,
            threshold: 128,
        }
    }
}

impl DeflateConfig {
    /// Sets [`server_no_context_takeover`](Self::server_no_context_takeover).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// let config = DeflateConfig::default().server_no_context_takeover(true);
    /// assert!(config.client_offer().contains("; server_no_context_takeover"));
    /// ```
    pub fn server_no_context_takeover(mut self, enabled: bool) -> Self {
        self.server_no_context_takeover = enabled;
        self
    }

    /// Sets [`client_no_context_takeover`](Self::client_no_context_takeover).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// let config = DeflateConfig::default().client_no_context_takeover(true);
    /// assert!(config.client_offer().contains("; client_no_context_takeover"));
    /// ```
    pub fn client_no_context_takeover(mut self, enabled: bool) -> Self {
        self.client_no_context_takeover = enabled;
        self
    }

    /// Sets [`server_max_window_bits`](Self::server_max_window_bits).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// let config = DeflateConfig::default().server_max_window_bits(Some(10));
    /// assert!(config.client_offer().contains("; server_max_window_bits=10"));
    /// ```
    pub fn server_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.server_max_window_bits = bits;
        self
    }

    /// Sets [`client_max_window_bits`](Self::client_max_window_bits).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// let config = DeflateConfig::default().client_max_window_bits(Some(9));
    /// assert!(config.client_offer().ends_with("; client_max_window_bits=9"));
    /// ```
    pub fn client_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.client_max_window_bits = bits;
        self
    }

    /// Sets [`compression_level`](Self::compression_level).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// assert_eq!(DeflateConfig::default().compression_level(1).compression_level, 1);
    /// ```
    pub fn compression_level(mut self, level: u32) -> Self {
        self.compression_level = level;
        self
    }

    /// Sets [`mem_level`](Self::mem_level).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// assert_eq!(DeflateConfig::default().mem_level(8).mem_level, 8);
    /// ```
    pub fn mem_level(mut self, level: u8) -> Self {
        self.mem_level = level;
        self
    }

    /// Sets [`threshold`](Self::threshold).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// assert_eq!(DeflateConfig::default().threshold(0).threshold, 0);
    /// ```
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The value of `Sec-WebSocket-Extensions` in a client's request: one offer, with the
    /// parameters this configuration asks for.
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// assert_eq!(
    ///     DeflateConfig::default().client_offer(),
    ///     "permessage-deflate; client_max_window_bits"
    /// );
    /// let config = DeflateConfig::default()
    ///     .server_max_window_bits(Some(10))
    ///     .client_max_window_bits(Some(11));
    /// assert_eq!(
    ///     config.client_offer(),
    ///     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"
    /// );
    /// ```
    pub fn client_offer(&self) -> String {
        let mut offer = String::from(NAME);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            offer.push_str(&format!("; server_max_window_bits={}", clamp_bits(bits)));
        }
        // RFC 7692 §7.1.2.2: without a value, the parameter only says that the client
        // supports it, so that the server may answer with a window for the client.
        match self.client_max_window_bits {
            None => offer.push_str("; client_max_window_bits"),
            Some(bits) => offer.push_str(&format!("; client_max_window_bits={}", clamp_bits(bits))),
        }
        offer
    }

    /// Checks the server's answer to [`client_offer`](Self::client_offer): the values of
    /// every `Sec-WebSocket-Extensions` header of the response (call it only if there is
    /// one; without it, the server declined compression). Returns what was agreed.
    ///
    /// RFC 7692 §7: "A client MUST _Fail the WebSocket Connection_ if the peer server
    /// accepted an extension negotiation offer for this extension with an extension
    /// negotiation response meeting any of the following conditions": an unknown
    /// parameter, an invalid value, a repeated parameter, or a configuration the client
    /// does not support. And RFC 6455 §9.1: the server may not answer with an extension
    /// the client did not offer, and permessage-deflate is the only one a sockjet client
    /// offers. Every such case is a [`HandshakeError::UnexpectedNegotiation`].
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// let config = DeflateConfig::default().server_max_window_bits(Some(10));
    /// let params = config
    ///     .client_accept(&["permessage-deflate; server_max_window_bits=9"])
    ///     .unwrap();
    /// assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (9, 15));
    /// // The server must honour what the client asked for.
    /// assert!(config.client_accept(&["permessage-deflate"]).is_err());
    /// assert!(config.client_accept(&["permessage-deflate; server_max_window_bits=11"]).is_err());
    /// ```
    pub fn client_accept(
        &self,
        response_header_values: &[&str],
    ) -> Result<DeflateParams, HandshakeError> {
        let fail = |why: String| HandshakeError::UnexpectedNegotiation(why);
        let mut accepted = None;
        for element in parse_extensions(response_header_values) {
            let element =
                element.map_err(|why| fail(format!("Sec-WebSocket-Extensions: {why}")))?;
            if !element.name.eq_ignore_ascii_case(NAME) {
                return Err(fail(format!("extension {} not offered", element.name)));
            }
            if accepted.is_some() {
                return Err(fail(format!("{NAME} accepted twice")));
            }
            let answer = Parameters::parse(&element.params, Role::Response)
                .map_err(|why| fail(format!("{NAME}: {why}")))?;
            accepted = Some(self.check_answer(answer).map_err(fail)?);
        }
        accepted.ok_or_else(|| fail("empty Sec-WebSocket-Extensions".to_owned()))
    }

    /// The client's side of [`client_accept`](Self::client_accept): whether the answer
    /// `answer` fits the offer this configuration made, and what it makes the parameters.
    fn check_answer(&self, answer: Parameters) -> Result<DeflateParams, String> {
        // RFC 7692 §7.1.1.1: the server accepts an offer with server_no_context_takeover
        // "by including the "server_no_context_takeover" extension parameter in the
        // corresponding extension negotiation response".
        if self.server_no_context_takeover && !answer.server_no_context_takeover {
            return Err("server_no_context_takeover asked for, not granted".to_owned());
        }
        // RFC 7692 §7.1.2.1: likewise, "with the same or smaller value as the offer".
        let server_max_window_bits =
            match (self.server_max_window_bits, answer.server_max_window_bits) {
                (None, answered) => answered.unwrap_or(15),
                (Some(asked), None) => {
                    return Err(format!(
                        "server_max_window_bits={} asked for, not granted",
                        clamp_bits(asked)
                    ));
                }
                (Some(asked), Some(answered)) if answered > clamp_bits(asked) => {
                    return Err(format!(
                        "server_max_window_bits={answered} over the {} asked for",
                        clamp_bits(asked)
                    ));
                }
                (Some(_), Some(answered)) => answered,
            };
        // The offer always has client_max_window_bits; `Role::Response` made sure the
        // answer's has a value.
        let answered_client_bits = answer.client_max_window_bits.flatten();
        let client_max_window_bits = match (self.client_max_window_bits, answered_client_bits) {
            (None, answered) => answered.unwrap_or(15),
            // RFC 7692 §7.1.2.2: the client said it would use no more than `offered`.
            (Some(offered), None) => clamp_bits(offered),
            (Some(offered), Some(answered)) if answered > clamp_bits(offered) => {
                return Err(format!(
                    "client_max_window_bits={answered} over the {} offered",
                    clamp_bits(offered)
                ));
            }
            (Some(_), Some(answered)) => answered,
        };
        Ok(DeflateParams {
            server_no_context_takeover: answer.server_no_context_takeover,
            // RFC 7692 §7.1.1.2: offering it is a promise, granted or not.
            client_no_context_takeover: answer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        })
    }

    /// The server's side of the negotiation: picks the first acceptable permessage-deflate
    /// offer among the values of every `Sec-WebSocket-Extensions` header of the request.
    /// Returns the agreed parameters and the value of the response's
    /// `Sec-WebSocket-Extensions`, or `None` if no offer is acceptable (no compression).
    ///
    /// Offers of other extensions are ignored. RFC 7692 §5: a client may offer
    /// permessage-deflate several times with different parameters, "The order of elements
    /// is important as it specifies the client's preference". RFC 7692 §7: "A server
    /// MUST decline an extension negotiation offer for this extension if" it has an
    /// unknown parameter, an invalid value or a repeated parameter: such an offer is
    /// skipped. Sockjet accepts any other offer, since it supports every parameter.
    ///
    /// Never fails today: an offer that breaks the header grammar is declined too, not
    /// answered with 400 (as Python `websockets` declines invalid offers), so that a
    /// client sending an odd extension header still gets a connection.
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::DeflateConfig;
    /// let config = DeflateConfig::default();
    /// let offers = [
    ///     "x-webkit-deflate-frame",
    ///     "permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=10",
    /// ];
    /// let (params, response) = config.server_negotiate(&offers).unwrap().unwrap();
    /// assert_eq!(response, "permessage-deflate; server_max_window_bits=10");
    /// assert_eq!(params.server_max_window_bits, 10);
    /// assert_eq!(config.server_negotiate(&["permessage-deflate; foo"]).unwrap(), None);
    /// ```
    pub fn server_negotiate(
        &self,
        request_header_values: &[&str],
    ) -> Result<Option<(DeflateParams, String)>, HandshakeError> {
        let accepted = parse_extensions(request_header_values)
            .into_iter()
            .flatten()
            .filter(|element| element.name.eq_ignore_ascii_case(NAME))
            .find_map(|element| Parameters::parse(&element.params, Role::Offer).ok())
            .map(|offer| self.answer(offer));
        Ok(accepted)
    }

    /// The server's answer to the valid offer `offer`.
    fn answer(&self, offer: Parameters) -> (DeflateParams, String) {
        let limit = clamp_bits(
            self.server_max_window_bits
                .unwrap_or(DEFAULT_SERVER_MAX_WINDOW_BITS),
        );
        let server_max_window_bits = offer
            .server_max_window_bits
            .map_or(limit, |asked| asked.min(limit));
        // RFC 7692 §7.1.2.2: "If a received extension negotiation offer doesn't have the
        // "client_max_window_bits" extension parameter, the corresponding extension
        // negotiation response to the offer MUST NOT include the
        // "client_max_window_bits" extension parameter."
        let client_limit = self.client_max_window_bits.map(clamp_bits);
        let answered_client_bits = match (offer.client_max_window_bits, client_limit) {
            (None, _) | (Some(None), None) => None,
            (Some(Some(offered)), None) => Some(offered),
            (Some(None), Some(limit)) => Some(limit),
            (Some(Some(offered)), Some(limit)) => Some(offered.min(limit)),
        };
        let params = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits: answered_client_bits.unwrap_or(15),
        };
        let mut response = String::from(NAME);
        if params.server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        // Answered when asked for (RFC 7692 §7.1.2.1), or as a hint when smaller than the
        // 15 bits the client otherwise assumes.
        if offer.server_max_window_bits.is_some() || server_max_window_bits < 15 {
            response.push_str(&format!(
                "; server_max_window_bits={server_max_window_bits}"
            ));
        }
        if let Some(bits) = answered_client_bits {
            response.push_str(&format!("; client_max_window_bits={bits}"));
        }
        (params, response)
    }
}

/// What the opening handshake agreed on (RFC 7692 §7.1), from either side's point of
/// view. Window sizes are base-2 logarithms, 8 to 15.
///
/// The default is an offer and answer without parameters: 15-bit windows and context
/// takeover both ways.
///
/// ```
/// use sockjet_proto::extension::permessage_deflate::DeflateParams;
/// let params = DeflateParams::default();
/// assert_eq!(params.server_max_window_bits, 15);
/// assert!(!params.client_no_context_takeover);
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's compressor uses at most this window.
    pub server_max_window_bits: u8,
    /// The client's compressor uses at most this window.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// Why a compressed message could not be decompressed.
///
/// ```
/// use sockjet_proto::extension::permessage_deflate::InflateError;
/// assert_eq!(InflateError::TooBig.to_string(), "decompressed message over the size limit");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum InflateError {
    /// The message would inflate past the size limit.
    TooBig,
    /// The payload is not valid DEFLATE data (RFC 1951).
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooBig => f.write_str("decompressed message over the size limit"),
            Self::Corrupt => f.write_str("invalid compressed data"),
        }
    }
}

impl StdError for InflateError {}

/// The permessage-deflate state of one connection: a compressor for the messages it sends
/// and a decompressor for those it receives, each created on first use.
///
/// Which negotiated parameters apply to which depends on the side: a server compresses
/// with the `server_*` parameters and decompresses what the client compressed with the
/// `client_*` ones, and the other way round for a client.
///
/// ```
/// use sockjet_proto::extension::permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
/// use sockjet_proto::{BytesMut, Side};
///
/// let params = DeflateParams::default();
/// let mut server = PerMessageDeflate::new(Side::Server, params, &DeflateConfig::default());
/// let mut wire = BytesMut::new();
/// server.compress(b"Hello", &mut wire);
/// // RFC 7692 §7.2.3.1, then §7.2.3.2: the second "Hello" refers to the first.
/// assert_eq!(&wire[..], [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
/// wire.clear();
/// server.compress(b"Hello", &mut wire);
/// assert_eq!(&wire[..], [0xf2, 0x00, 0x11, 0x00, 0x00]);
/// ```
pub struct PerMessageDeflate {
    params: DeflateParams,
    compressor: Option<Compressor>,
    decompressor: Option<Inflate>,
    /// Window, level and memLevel of the compressor, already mapped to what zlib takes.
    compress_window_bits: u8,
    compress_level: i32,
    compress_mem_level: i32,
    decompress_window_bits: u8,
    /// Messages shorter than this are sent uncompressed by [`Extension::encode`].
    threshold: usize,
    /// This side has no context takeover: reset the compressor after each message.
    reset_compressor: bool,
    /// The peer has no context takeover: reset the decompressor after each message.
    reset_decompressor: bool,
    /// The peer's DEFLATE stream of the current message ended (a block with BFINAL set):
    /// the rest of the message is ignored, and the decompressor restarts with the next.
    stream_ended: bool,
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("params", &self.params)
            .field("compress_level", &self.compress_level)
            .field("compress_mem_level", &self.compress_mem_level)
            .field("compressor_allocated", &self.compressor.is_some())
            .field("decompressor_allocated", &self.decompressor.is_some())
            .finish()
    }
}

impl PerMessageDeflate {
    /// The extension's name in `Sec-WebSocket-Extensions` (RFC 7692 §7).
    ///
    /// ```
    /// # use sockjet_proto::PerMessageDeflate;
    /// assert_eq!(PerMessageDeflate::NAME, "permessage-deflate");
    /// ```
    pub const NAME: &'static str = "permessage-deflate";

    /// Creates the state of one connection of `side`, with the negotiated `params` and
    /// the compression settings of `config` (its negotiation fields are not used).
    /// Allocates nothing: each direction's zlib state is created on first use.
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
    /// use sockjet_proto::Side;
    /// let deflate = PerMessageDeflate::new(Side::Client, DeflateParams::default(), &DeflateConfig::default());
    /// assert_eq!(deflate.params(), DeflateParams::default());
    /// ```
    pub fn new(side: Side, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (ours, peers) = match side {
            Side::Server => (
                (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
                (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
            ),
            Side::Client => (
                (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
                (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
            ),
        };
        Self {
            params,
            compressor: None,
            decompressor: None,
            // zlib cannot compress a raw stream with an 8-bit window (deflateInit2 rejects
            // it since zlib 1.2.9, and so does zlib-rs) and uses 9 bits, as Node's `ws`
            // does. That still fits a peer limited to 8 bits: zlib never emits a distance
            // over the window minus 262 bytes (MIN_LOOKAHEAD), 250 for a 512-byte window.
            compress_window_bits: clamp_bits(ours.0).max(9),
            compress_level: config.compression_level.min(9) as i32,
            compress_mem_level: i32::from(config.mem_level.clamp(1, 9)),
            // zlib-rs inflates raw streams with 8 to 15 bits (and always allocates 32 KiB).
            decompress_window_bits: clamp_bits(peers.0),
            threshold: config.threshold,
            reset_compressor: ours.1,
            reset_decompressor: peers.1,
            stream_ended: false,
        }
    }

    /// The parameters negotiated for the connection.
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
    /// use sockjet_proto::Side;
    /// let params = DeflateParams { server_max_window_bits: 10, ..DeflateParams::default() };
    /// let deflate = PerMessageDeflate::new(Side::Server, params, &DeflateConfig::default());
    /// assert_eq!(deflate.params().server_max_window_bits, 10);
    /// ```
    pub fn params(&self) -> DeflateParams {
        self.params
    }

    /// Compresses the payload of one whole message and appends to `out` the bytes to send
    /// in its frame(s), without the trailing `00 00 ff ff` (RFC 7692 §7.2.1). Then, if
    /// this side has no context takeover, resets the compressor (without reallocating).
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
    /// use sockjet_proto::{BytesMut, Side};
    /// let params = DeflateParams { client_no_context_takeover: true, ..DeflateParams::default() };
    /// let mut client = PerMessageDeflate::new(Side::Client, params, &DeflateConfig::default());
    /// let mut wire = BytesMut::new();
    /// for _ in 0..2 {
    ///     // RFC 7692 §7.2.3.1: without context takeover, "Hello" always compresses alike.
    ///     client.compress(b"Hello", &mut wire);
    /// }
    /// assert_eq!(wire[..7], wire[7..]);
    /// ```
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        let start = out.len();
        let (level, window_bits, mem_level) = (
            self.compress_level,
            self.compress_window_bits,
            self.compress_mem_level,
        );
        let deflate = self
            .compressor
            .get_or_insert_with(|| Compressor::new(level, window_bits, mem_level));
        let mut input = payload;
        loop {
            let len = out.len();
            // Use the capacity `out` has, if any; else make room for the rest of the input
            // plus 64 bytes, enough in one round since deflate adds only a few bytes per
            // block and for the flush. Big messages go by chunks.
            let spare = out.capacity() - len;
            let room = match spare >= 64 {
                true => spare,
                false => input.len().saturating_add(64),
            }
            .min(MAX_CHUNK);
            out.resize(len + room, 0);
            let (consumed, written) = deflate.compress_sync(input, &mut out[len..]);
            out.truncate(len + written);
            input = &input[consumed..];
            // Done when all the input is in and the flush fitted with room to spare.
            if input.is_empty() && written < room {
                break;
            }
        }
        if out[start..].ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        } else {
            // zlib emits nothing for an empty message after a flush. RFC 7692 §7.2.1 step
            // 2: append "an empty DEFLATE block with no compression" (00 00 00 ff ff
            // here, the stream being byte-aligned after the flush) before removing the
            // last 4 octets, which leaves the header byte 00.
            out.extend_from_slice(&[0x00]);
        }
        if self.reset_compressor {
            deflate.reset();
        }
    }

    /// Decompresses the payload of one frame of a compressed message, appending the
    /// inflated bytes to `out`; `fin` marks the message's last frame, after which
    /// `00 00 ff ff` is inflated too (RFC 7692 §7.2.2).
    ///
    /// `out` never grows past `max_len` bytes (counting what it held before): inflating
    /// goes by chunks of at most 64 KiB and stops with [`InflateError::TooBig`] as soon as
    /// the message would exceed the limit, so a small frame that inflates to gigabytes
    /// allocates no more than `max_len`. Invalid data is [`InflateError::Corrupt`]. After
    /// either error the connection must be failed: the state is not usable any more.
    ///
    /// After the last frame, the decompressor is reset if the peer has no context
    /// takeover. A DEFLATE block with BFINAL set (RFC 7692 §7.2.3.4) ends the message's
    /// data: what follows it in the message is ignored, and the next message starts a
    /// new stream.
    ///
    /// ```
    /// use sockjet_proto::extension::permessage_deflate::{
    ///     DeflateConfig, DeflateParams, InflateError, PerMessageDeflate,
    /// };
    /// use sockjet_proto::{BytesMut, Side};
    /// let mut client = PerMessageDeflate::new(Side::Client, DeflateParams::default(), &DeflateConfig::default());
    /// let mut message = BytesMut::new();
    /// // RFC 7692 §7.2.3.1's "Hello", in two frames.
    /// client.decompress(&[0xf2, 0x48, 0xcd], false, &mut message, 100).unwrap();
    /// client.decompress(&[0xc9, 0xc9, 0x07, 0x00], true, &mut message, 100).unwrap();
    /// assert_eq!(&message[..], b"Hello");
    ///
    /// let mut message = BytesMut::new();
    /// let result = client.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], true, &mut message, 4);
    /// assert_eq!(result, Err(InflateError::TooBig));
    /// assert!(message.len() <= 4);
    /// ```
    pub fn decompress(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), InflateError> {
        let window_bits = self.decompress_window_bits;
        let inflate = self
            .decompressor
            .get_or_insert_with(|| Inflate::new(false, window_bits));
        let mut result = Ok(());
        if !self.stream_ended {
            result = inflate_into(inflate, payload, out, max_len).map(|ended| {
                self.stream_ended = ended;
            });
        }
        if fin && result.is_ok() && !self.stream_ended {
            result = inflate_into(inflate, &TRAILER, out, max_len).map(|_| ());
        }
        if fin {
            // A reset keeps the allocation; it does not need the window bits again: they
            // only check zlib headers, and a raw stream has none.
            if self.reset_decompressor || mem::take(&mut self.stream_ended) {
                inflate.reset(false);
            }
        }
        result
    }
}

/// permessage-deflate as the connection's [`Extension`]: RSV1 marks a compressed message
/// (RFC 7692 §6), messages under the threshold are sent as they are.
impl Extension for PerMessageDeflate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn rsv(&self) -> u8 {
        RSV1
    }

    fn encode(&mut self, payload: &[u8], out: &mut BytesMut) -> bool {
        if payload.len() < self.threshold {
            return false;
        }
        self.compress(payload, out);
        true
    }

    fn shared_encoding(&self) -> Option<u64> {
        // Without context takeover the compressor starts afresh for each message, so the
        // output depends only on the payload and these settings (zlib is deterministic).
        if !self.reset_compressor {
            return None;
        }
        let threshold = u64::try_from(self.threshold).unwrap_or(u64::MAX >> 24);
        Some(
            u64::from(self.compress_window_bits)
                | (self.compress_level as u8 as u64) << 8
                | (self.compress_mem_level as u8 as u64) << 16
                | threshold << 24,
        )
    }

    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), DecodeError> {
        self.decompress(payload, fin, out, max_len)
            .map_err(|error| match error {
                InflateError::TooBig => DecodeError::TooBig,
                InflateError::Corrupt => DecodeError::Invalid,
            })
    }
}

/// Inflates `input` into `out` without letting it grow past `max_len`. Returns whether the
/// DEFLATE stream ended (a block with BFINAL set).
fn inflate_into(
    inflate: &mut Inflate,
    mut input: &[u8],
    out: &mut BytesMut,
    max_len: usize,
) -> Result<bool, InflateError> {
    // Start small (most messages are), and double up to MAX_CHUNK while the output fills.
    let mut room = input.len().saturating_mul(4).clamp(MIN_CHUNK, MAX_CHUNK);
    loop {
        let len = out.len();
        let space = max_len.saturating_sub(len).min(room);
        // At the limit, a 1-byte probe tells whether there is more to come, without
        // growing `out`.
        let mut probe = [0u8; 1];
        let output: &mut [u8] = if space == 0 {
            &mut probe
        } else {
            out.resize(len + space, 0);
            &mut out[len..]
        };
        let output_len = output.len();
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status = inflate.decompress(input, output, InflateFlush::SyncFlush);
        let consumed = (inflate.total_in() - in_before) as usize;
        let produced = (inflate.total_out() - out_before) as usize;
        if space == 0 {
            if produced > 0 {
                return Err(InflateError::TooBig);
            }
        } else {
            out.truncate(len + produced);
        }
        input = &input[consumed..];
        match status {
            Err(_) => return Err(InflateError::Corrupt),
            Ok(Status::StreamEnd) => return Ok(true),
            Ok(Status::Ok | Status::BufError) => {}
        }
        if produced == output_len {
            // The output filled up: there may be more.
            room = room.saturating_mul(2).min(MAX_CHUNK);
            continue;
        }
        // Output to spare: zlib stopped for lack of input.
        if input.is_empty() {
            return Ok(false);
        }
        if consumed == 0 && produced == 0 {
            // Input left, output space left, and no progress: zlib never does this on
            // valid data, and looping would never end.
            return Err(InflateError::Corrupt);
        }
    }
}

/// The extension's name in `Sec-WebSocket-Extensions` (RFC 7692 §7).
const NAME: &str = "permessage-deflate";

/// The end of a sync flush: an empty stored block's LEN and NLEN (RFC 7692 §7.2.1).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Largest step by which `out` grows while (de)compressing.
const MAX_CHUNK: usize = 64 * 1024;

/// First step by which `out` grows while decompressing.
const MIN_CHUNK: usize = 1024;

/// A window size as RFC 7692 §7.1.2 allows it.
fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(8, 15)
}

/// Whether a parameter is read from a client's offer or a server's response: a valueless
/// `client_max_window_bits` is only valid in an offer (RFC 7692 §7.1.2.2).
#[derive(Clone, Copy, Eq, PartialEq)]
enum Role {
    Offer,
    Response,
}

/// The parameters of one permessage-deflate offer or response, syntactically valid.
#[derive(Debug, Default)]
struct Parameters {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

impl Parameters {
    /// Checks `params` against RFC 7692 §7: no unknown parameter, no repeated one, and
    /// valid values. Names are compared ASCII case-insensitively.
    fn parse(params: &[Param<'_>], role: Role) -> Result<Self, String> {
        const NAMES: [&str; 4] = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ];
        let mut parsed = Self::default();
        let mut seen = [false; NAMES.len()];
        for param in params {
            let Some(index) = NAMES
                .iter()
                .position(|name| param.name.eq_ignore_ascii_case(name))
            else {
                return Err(format!("unknown parameter {}", param.name));
            };
            let name = NAMES[index];
            if mem::replace(&mut seen[index], true) {
                return Err(format!("repeated parameter {name}"));
            }
            let value = param.value.as_deref();
            match index {
                // RFC 7692 §7.1.1.1, §7.1.1.2: "This extension parameter has no value."
                0 | 1 => {
                    if let Some(value) = value {
                        return Err(format!("{name} has a value ({value})"));
                    }
                    if index == 0 {
                        parsed.server_no_context_takeover = true;
                    } else {
                        parsed.client_no_context_takeover = true;
                    }
                }
                2 => parsed.server_max_window_bits = Some(window_bits(name, value)?),
                _ => {
                    parsed.client_max_window_bits = Some(match value {
                        None if role == Role::Offer => None,
                        _ => Some(window_bits(name, value)?),
                    });
                }
            }
        }
        Ok(parsed)
    }
}

/// RFC 7692 §7.1.2.1: "a decimal integer value without leading zeroes between 8 to 15,
/// inclusive" (after unquoting: `"10"` is 10).
fn window_bits(name: &str, value: Option<&str>) -> Result<u8, String> {
    let Some(value) = value else {
        return Err(format!("{name} needs a value"));
    };
    match value {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => {
            Ok(value.parse().expect("the digits of 8 to 15"))
        }
        _ => Err(format!("{name}={value} is not 8 to 15")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(value: &str) -> Option<(DeflateParams, String)> {
        DeflateConfig::default().server_negotiate(&[value]).unwrap()
    }

    fn params(snct: bool, cnct: bool, server_bits: u8, client_bits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        }
    }

    #[test]
    fn window_bits_accepts_exactly_8_to_15() {
        for bits in 8..=15u8 {
            assert_eq!(window_bits("x", Some(&bits.to_string())), Ok(bits));
        }
        for bad in [
            "7", "16", "0", "08", "+9", "9 ", "abc", "", "255", "256", "1e1",
        ] {
            assert!(window_bits("x", Some(bad)).is_err(), "{bad:?}");
        }
        assert!(window_bits("x", None).is_err());
    }

    #[test]
    fn parameters_parse_every_parameter() {
        let parsed = parse_extensions(&[
            "permessage-deflate; Server_No_Context_Takeover; client_no_context_takeover; \
             server_max_window_bits=\"10\"; client_max_window_bits",
        ]);
        let element = parsed[0].as_ref().unwrap();
        let offer = Parameters::parse(&element.params, Role::Offer).unwrap();
        assert!(offer.server_no_context_takeover && offer.client_no_context_takeover);
        assert_eq!(offer.server_max_window_bits, Some(10));
        assert_eq!(offer.client_max_window_bits, Some(None));
        // A valueless client_max_window_bits is for offers only.
        assert!(Parameters::parse(&element.params, Role::Response).is_err());
    }

    #[test]
    fn server_defaults_compress_with_12_bits() {
        assert_eq!(
            offer("permessage-deflate"),
            Some((
                params(false, false, 12, 15),
                "permessage-deflate; server_max_window_bits=12".to_owned()
            ))
        );
    }

    #[test]
    fn server_answers_each_parameter() {
        let cases = [
            (
                "permessage-deflate; server_no_context_takeover",
                params(true, false, 12, 15),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                params(false, true, 12, 15),
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=12",
            ),
            (
                "permessage-deflate; server_max_window_bits=9",
                params(false, false, 9, 15),
                "permessage-deflate; server_max_window_bits=9",
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                params(false, false, 12, 15),
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                "permessage-deflate; client_max_window_bits",
                params(false, false, 12, 15),
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                params(false, false, 12, 10),
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
            ),
        ];
        for (request, expected, response) in cases {
            assert_eq!(
                offer(request),
                Some((expected, response.to_owned())),
                "{request}"
            );
        }
    }

    #[test]
    fn server_configuration_imposes_its_limits() {
        let config = DeflateConfig::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .server_max_window_bits(Some(15))
            .client_max_window_bits(Some(11));
        let negotiate = |request: &str| config.server_negotiate(&[request]).unwrap().unwrap();
        assert_eq!(
            negotiate("permessage-deflate"),
            (
                params(true, true, 15, 15),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                    .to_owned()
            )
        );
        assert_eq!(
            negotiate("permessage-deflate; client_max_window_bits").0,
            params(true, true, 15, 11)
        );
        assert_eq!(
            negotiate("permessage-deflate; client_max_window_bits=9").0,
            params(true, true, 15, 9)
        );
        assert_eq!(
            negotiate("permessage-deflate; client_max_window_bits=13").1,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits=11"
        );
    }

    #[test]
    fn out_of_range_configuration_is_clamped() {
        let config = DeflateConfig::default()
            .server_max_window_bits(Some(40))
            .client_max_window_bits(Some(3));
        assert_eq!(
            config.client_offer(),
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=8"
        );
        let deflate = PerMessageDeflate::new(
            Side::Server,
            params(false, false, 200, 0),
            &config.compression_level(99).mem_level(0),
        );
        assert_eq!(deflate.compress_window_bits, 15);
        assert_eq!(deflate.decompress_window_bits, 8);
        assert_eq!((deflate.compress_level, deflate.compress_mem_level), (9, 1));
    }

    #[test]
    fn window_bits_8_compresses_with_9() {
        let deflate = PerMessageDeflate::new(
            Side::Client,
            params(false, false, 8, 8),
            &DeflateConfig::default(),
        );
        assert_eq!(deflate.compress_window_bits, 9);
        assert_eq!(deflate.decompress_window_bits, 8);
    }

    #[test]
    fn new_allocates_lazily() {
        let mut deflate = PerMessageDeflate::new(
            Side::Server,
            DeflateParams::default(),
            &DeflateConfig::default(),
        );
        assert!(deflate.compressor.is_none() && deflate.decompressor.is_none());
        deflate.compress(b"x", &mut BytesMut::new());
        assert!(deflate.compressor.is_some() && deflate.decompressor.is_none());
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PerMessageDeflate>();
    }
}
