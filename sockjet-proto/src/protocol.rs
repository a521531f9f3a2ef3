//! [`Protocol`]: the framing layer and closing handshake of an open connection.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    close::{CloseCode, CloseFrame, ConnectionClosed},
    config::Config,
    error::{ApiMisuse, ProtocolError},
    extension::{DecodeError, Extension, permessage_deflate::PerMessageDeflate},
    frame::{
        FrameHeader, OpCode,
        mask::{MaskKeys, OsRandomMaskKeys, apply_mask, apply_mask_at},
    },
    handshake::{Request, Response},
    message::{Message, Utf8Bytes},
    outgoing::Outgoing,
    prepared::{PreparedMessage, write_prepared},
    utf8::Utf8Validator,
};

/// Which end of the connection this is. Decides masking (RFC 6455 §5.1) and who closes
/// the TCP connection first (§7.1.1).
///
/// ```
/// assert_ne!(sockjet_proto::Side::Client, sockjet_proto::Side::Server);
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Side {
    /// The end that opened the connection; masks every frame it sends.
    Client,
    /// The end that accepted the connection; never masks.
    Server,
}

/// Connection state (RFC 6455 §4.1, §4.2, §7.1.3, §7.1.4).
///
/// ```
/// use sockjet_proto::{Config, Protocol, Side, State};
/// assert_eq!(Protocol::new(Side::Server, Config::default()).state(), State::Open);
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received; waiting for the end of the TCP connection.
    Closing,
    /// The TCP connection is closed (EOF received).
    Closed,
}

/// What the core reports to the application.
///
/// ```
/// use sockjet_proto::{Config, Event, Protocol, Side};
/// let mut client = Protocol::new(Side::Client, Config::default());
/// client.receive_data(&[0x89, 0x00]); // an empty ping from the server
/// assert!(matches!(client.next_event(), Some(Event::Ping(payload)) if payload.is_empty()));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Event {
    /// The server received an opening handshake request. Boxed, like the response: they
    /// come once per connection, and every message's event would otherwise be as large as
    /// they are (224 bytes rather than 48, moved at each step of every message).
    Request(Box<Request>),
    /// The client received the server's successful (101) handshake response.
    Response(Box<Response>),
    /// A complete data message.
    Message(Message),
    /// A ping; the core has already queued the pong (unless closing).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame; `None` for an empty one. The core has already answered it.
    Close(Option<CloseFrame>),
}

// `http` types have no `PartialEq`; compare the parts that make a handshake.
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Request(a), Self::Request(b)) => {
                a.method() == b.method()
                    && a.uri() == b.uri()
                    && a.version() == b.version()
                    && a.headers() == b.headers()
            }
            (Self::Response(a), Self::Response(b)) => {
                a.status() == b.status()
                    && a.version() == b.version()
                    && a.headers() == b.headers()
                    && a.body() == b.body()
            }
            (Self::Message(a), Self::Message(b)) => a == b,
            (Self::Ping(a), Self::Ping(b)) | (Self::Pong(a), Self::Pong(b)) => a == b,
            (Self::Close(a), Self::Close(b)) => a == b,
            _ => false,
        }
    }
}

/// The WebSocket framing layer and closing handshake, without I/O.
///
/// Create it in the `Open` state with [`Protocol::new`] (for a connection whose handshake
/// happened elsewhere, such as an HTTP server's upgrade), or get one from
/// [`ServerProtocol::into_protocol`](crate::ServerProtocol::into_protocol) /
/// [`ClientProtocol::into_protocol`](crate::ClientProtocol::into_protocol).
///
/// Methods come in four groups: getters; `receive_*` for network input; `send_*` and
/// `fail` for application commands; `next_event`, `outgoing`, `eof_to_send` and
/// `close_expected` for outputs. See the [crate docs](crate) for the call order.
///
/// ```
/// use sockjet_proto::{CloseCode, CloseFrame, Config, Event, Protocol, Side, State};
/// let mut server = Protocol::new(Side::Server, Config::default());
/// // The client sends a masked close frame with code 1000.
/// server.receive_data(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]);
/// assert_eq!(
///     server.next_event(),
///     Some(Event::Close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""))))
/// );
/// assert_eq!(server.state(), State::Closing);
/// assert!(server.eof_to_send()); // the server closes TCP first
/// ```
pub struct Protocol {
    side: Side,
    state: State,
    config: Config,
    input: BytesMut,
    /// The frame whose payload is still arriving.
    partial: Option<PartialFrame>,
    /// The fragmented message being reassembled.
    assembly: Option<Assembly>,
    /// Validates the text message being received, across frames and partial frames.
    utf8: Utf8Validator,
    output: Outgoing,
    /// Where a client's masking keys come from; created on the first masked frame, so a
    /// server (which never masks) does not carry a key buffer per connection.
    mask_keys: Option<Box<dyn MaskKeys>>,
    /// Opcode of the fragmented message being sent, if any.
    sending_fragmented: Option<OpCode>,
    /// Input is ignored: a close frame was received, or the connection failed.
    discarding: bool,
    eof_pending: bool,
    eof_sent: bool,
    eof_received: bool,
    close_rcvd: Option<CloseFrame>,
    close_sent: Option<CloseFrame>,
    close_rcvd_then_sent: Option<bool>,
    close_error: Option<ProtocolError>,
    /// The extension negotiated in the handshake (permessage-deflate), if any.
    extension: Option<Box<dyn Extension>>,
    /// The reserved bit of `extension`, or 0 without one.
    extension_rsv: u8,
    /// The message being received has the extension's bit on its first frame, so all its
    /// frames go through the extension (RFC 7692 §6).
    receiving_encoded: bool,
}

#[derive(Clone, Copy, Debug)]
struct PartialFrame {
    header: FrameHeader,
    header_len: usize,
    /// Payload bytes already unmasked (and UTF-8 checked) in place.
    processed: usize,
}

#[derive(Debug)]
struct Assembly {
    opcode: OpCode,
    data: BytesMut,
}

impl Protocol {
    /// Creates an open connection for `side`.
    ///
    /// ```
    /// let proto = sockjet_proto::Protocol::new(sockjet_proto::Side::Client, Default::default());
    /// assert_eq!(proto.side(), sockjet_proto::Side::Client);
    /// ```
    pub fn new(side: Side, config: Config) -> Self {
        Self {
            side,
            state: State::Open,
            config,
            input: BytesMut::new(),
            partial: None,
            assembly: None,
            utf8: Utf8Validator::default(),
            output: Outgoing::default(),
            mask_keys: None,
            sending_fragmented: None,
            discarding: false,
            eof_pending: false,
            eof_sent: false,
            eof_received: false,
            close_rcvd: None,
            close_sent: None,
            close_rcvd_then_sent: None,
            close_error: None,
            extension: None,
            extension_rsv: 0,
            receiving_encoded: false,
        }
    }

    /// Plugs in the extension negotiated in the handshake, before any frame is sent or
    /// received. [`ServerProtocol`](crate::ServerProtocol) and
    /// [`ClientProtocol`](crate::ClientProtocol) call this when they agree on
    /// permessage-deflate; a driver that did its own handshake calls it with whatever it
    /// negotiated. One extension at a time: a second call replaces the first.
    ///
    /// ```
    /// use sockjet_proto::{Config, DeflateConfig, DeflateParams, PerMessageDeflate, Protocol, Side};
    /// let config = DeflateConfig::default();
    /// let deflate = PerMessageDeflate::new(Side::Server, DeflateParams::default(), &config);
    /// let mut server = Protocol::new(Side::Server, Config::default());
    /// server.set_extension(Box::new(deflate));
    /// assert_eq!(server.extension().map(|e| e.name()), Some("permessage-deflate"));
    /// ```
    pub fn set_extension(&mut self, extension: Box<dyn Extension>) {
        self.extension_rsv = extension.rsv();
        self.extension = Some(extension);
    }

    /// Turns on permessage-deflate with the parameters negotiated in the handshake: the
    /// same as [`set_extension`](Self::set_extension).
    ///
    /// ```
    /// use sockjet_proto::{Config, DeflateConfig, DeflateParams, PerMessageDeflate, Protocol, Side};
    /// let config = DeflateConfig::default();
    /// let params = DeflateParams::default();
    /// let mut server = Protocol::new(Side::Server, Config::default());
    /// server.enable_permessage_deflate(PerMessageDeflate::new(Side::Server, params, &config));
    /// assert!(server.is_compressing());
    /// ```
    pub fn enable_permessage_deflate(&mut self, deflate: PerMessageDeflate) {
        self.set_extension(Box::new(deflate));
    }

    /// The extension in use on this connection, if any.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// assert!(Protocol::new(Side::Server, Default::default()).extension().is_none());
    /// ```
    pub fn extension(&self) -> Option<&dyn Extension> {
        self.extension.as_deref()
    }

    /// Whether permessage-deflate is in use on this connection.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// assert!(!Protocol::new(Side::Server, Default::default()).is_compressing());
    /// ```
    pub fn is_compressing(&self) -> bool {
        self.extension
            .as_ref()
            .is_some_and(|extension| extension.name() == PerMessageDeflate::NAME)
    }

    /// Replaces the source of masking keys (clients only; servers never mask). Tests use a
    /// fixed source to get deterministic bytes.
    ///
    /// ```
    /// use sockjet_proto::{Config, MaskKeys, Protocol, Side};
    /// struct Zero;
    /// impl MaskKeys for Zero { fn next_key(&mut self) -> [u8; 4] { [0; 4] } }
    /// let mut client = Protocol::new(Side::Client, Config::default()).with_mask_keys(Zero);
    /// client.send_text("a").unwrap();
    /// let mut wire = Vec::new();
    /// client.outgoing().drain_into(&mut wire);
    /// assert_eq!(wire, [0x81, 0x81, 0, 0, 0, 0, b'a']);
    /// ```
    pub fn with_mask_keys(mut self, keys: impl MaskKeys + 'static) -> Self {
        self.mask_keys = Some(Box::new(keys));
        self
    }

    // ----- getters -----

    /// Which side this is.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// assert_eq!(Protocol::new(Side::Server, Default::default()).side(), Side::Server);
    /// ```
    pub fn side(&self) -> Side {
        self.side
    }

    /// The connection state.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side, State};
    /// assert_eq!(Protocol::new(Side::Server, Default::default()).state(), State::Open);
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// The limits in force.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let proto = Protocol::new(Side::Server, Default::default());
    /// assert_eq!(proto.config().max_message_size, Some(1 << 20));
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Why the connection failed, if the peer broke the protocol (or the stream ended
    /// without a closing handshake).
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, ProtocolError, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.receive_data(&[0x81, 0x00]); // unmasked frame from a client
    /// assert_eq!(server.next_event(), None);
    /// assert_eq!(server.close_error(), Some(&ProtocolError::IncorrectMasking));
    /// ```
    pub fn close_error(&self) -> Option<&ProtocolError> {
        self.close_error.as_ref()
    }

    /// The close frames exchanged so far.
    ///
    /// ```
    /// # use sockjet_proto::{CloseCode, Protocol, Side};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// client.send_close(CloseCode::GOING_AWAY, "bye").unwrap();
    /// assert_eq!(client.connection_closed().sent.unwrap().code, CloseCode::GOING_AWAY);
    /// ```
    pub fn connection_closed(&self) -> ConnectionClosed {
        ConnectionClosed {
            rcvd: self.close_rcvd.clone(),
            sent: self.close_sent.clone(),
            rcvd_then_sent: self.close_rcvd_then_sent,
        }
    }

    /// Bytes received and not yet turned into events. Backpressure: a driver stops reading
    /// while this is large and the application is not taking events.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.receive_data(&[0x81]);
    /// assert_eq!(server.buffered_len(), 1);
    /// ```
    pub fn buffered_len(&self) -> usize {
        self.input.len()
    }

    // ----- receiving data -----

    /// Feeds bytes received from the network. Never fails: a protocol violation becomes a
    /// close frame in [`outgoing`](Self::outgoing) and [`close_error`](Self::close_error).
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// client.receive_data(b"\x82\x01\x00");
    /// assert!(client.next_event().is_some());
    /// ```
    pub fn receive_data(&mut self, data: &[u8]) {
        debug_assert!(!self.eof_received, "receive_data after receive_eof");
        if !self.discarding {
            self.rewind_empty_input();
            self.input.extend_from_slice(data);
        }
    }

    /// Takes `input` (bytes received before this protocol existed, in the buffer they
    /// came in) as its own input buffer if it has none yet; otherwise appends a copy.
    pub(crate) fn adopt_input(&mut self, input: BytesMut) {
        if self.input.is_empty() && self.input.capacity() == 0 && !self.discarding {
            self.input = input;
        } else if !input.is_empty() {
            self.receive_data(&input);
        }
    }

    /// Moves an empty input buffer's start back to the beginning of its memory, if no
    /// message still shares that memory. Each message is split off the front of the
    /// buffer, so without this every read lands further on, and a connection's reads
    /// sweep through its whole allocation instead of reusing the same, cache-warm bytes.
    fn rewind_empty_input(&mut self) {
        if self.input.is_empty() {
            // Asking for more than the free capacity makes `try_reclaim` take back the
            // space before the start (it never allocates): it succeeds only by rewinding.
            let _ = self.input.try_reclaim(self.input.capacity() + 1);
        }
    }

    /// The input buffer, for drivers that read from the socket straight into it (saving a
    /// copy). Capacity is reserved for the frame being received, starting at 4 KiB and
    /// growing only for large frames. Append only; then call [`next_event`](Self::next_event).
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// let buffer = client.receive_buffer();
    /// assert!(buffer.capacity() - buffer.len() >= 4096);
    /// buffer.extend_from_slice(b"\x82\x00");
    /// assert!(client.next_event().is_some());
    /// ```
    pub fn receive_buffer(&mut self) -> &mut BytesMut {
        let missing = self.frame_bytes_missing();
        // Grow with the data that actually arrives: a header may claim any length when the
        // size limits are off, and reserving it up front would let 14 bytes abort us.
        let wanted = missing.clamp(READ_CHUNK, MAX_RESERVE_AHEAD);
        self.rewind_empty_input();
        if self.input.capacity() - self.input.len() < wanted {
            self.input.reserve(wanted);
        }
        &mut self.input
    }

    /// The input buffer as it is, without the reservation and rewinding of
    /// [`receive_buffer`](Self::receive_buffer): for a completion-based driver (io_uring)
    /// finishing a read that the kernel did into the spare capacity `receive_buffer` gave,
    /// some time later. By then a message that shared the buffer may have been dropped, and
    /// `receive_buffer` would move the buffer's start back over the bytes just written.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// let spare = client.receive_buffer().capacity();
    /// assert_eq!(client.input_buffer().capacity(), spare);
    /// client.input_buffer().extend_from_slice(b"\x82\x00");
    /// assert!(client.next_event().is_some());
    /// ```
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Bytes still to arrive before the frame being received is complete; 0 when no frame
    /// is partly received (the next header may need as few as 2 bytes) or input is being
    /// discarded. Nothing can happen on the connection before these bytes come: a driver
    /// may ask the OS to wake it only once they have (Linux's `SO_RCVLOWAT`), instead of
    /// once per TCP segment of a large frame.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// client.receive_data(&[0x82, 0x7E, 0x01, 0x00, 1, 2, 3]); // 256-byte binary frame
    /// assert!(client.next_event().is_none());
    /// assert_eq!(client.frame_bytes_missing(), 253);
    /// ```
    pub fn frame_bytes_missing(&self) -> usize {
        match &self.partial {
            Some(partial) if !self.discarding => {
                let frame_len = partial.header_len + partial.header.payload_len as usize;
                frame_len.saturating_sub(self.input.len())
            }
            _ => 0,
        }
    }

    /// Takes the receive buffer's memory away while nothing is buffered, so that a driver
    /// can keep it for another connection while this one waits for data: an idle
    /// connection then holds no read buffer. `None` if bytes are buffered (a partial
    /// frame) or there is no memory to take.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.receive_buffer();
    /// let spare = server.take_idle_receive_buffer().unwrap();
    /// assert!(spare.is_empty() && spare.capacity() >= 4096);
    /// assert!(server.take_idle_receive_buffer().is_none());
    /// ```
    pub fn take_idle_receive_buffer(&mut self) -> Option<BytesMut> {
        if !self.input.is_empty() || self.input.capacity() == 0 {
            return None;
        }
        Some(std::mem::take(&mut self.input))
    }

    /// Gives the receive buffer memory to use, e.g. one taken from another connection with
    /// [`take_idle_receive_buffer`](Self::take_idle_receive_buffer). Returns it unused if
    /// this connection already has a buffer, so that the caller can keep it.
    ///
    /// ```
    /// # use sockjet_proto::{BytesMut, Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// assert!(server.provide_receive_buffer(BytesMut::with_capacity(8192)).is_none());
    /// assert!(server.receive_buffer().capacity() >= 8192);
    /// assert!(server.provide_receive_buffer(BytesMut::with_capacity(64)).is_some());
    /// ```
    #[must_use = "a buffer returned unused is dropped unless kept"]
    pub fn provide_receive_buffer(&mut self, mut buffer: BytesMut) -> Option<BytesMut> {
        if self.input.is_empty() && self.input.capacity() == 0 {
            buffer.clear();
            self.input = buffer;
            return None;
        }
        Some(buffer)
    }

    /// Reports the end of the incoming stream (the peer half-closed or closed TCP).
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, ProtocolError, Side, State};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.receive_eof();
    /// assert_eq!(server.state(), State::Closed);
    /// assert_eq!(server.close_error(), Some(&ProtocolError::UnexpectedEof));
    /// ```
    pub fn receive_eof(&mut self) {
        if self.state == State::Closed || self.eof_received {
            return;
        }
        self.eof_received = true;
        // Complete frames received before the EOF are still delivered by next_event(),
        // which finishes the EOF once nothing complete is left.
        if self.discarding || !self.has_complete_frame() {
            // A buffered header may still be invalid, or a partial text frame hold bad
            // UTF-8: report that rather than the EOF, whatever the call order. With no
            // complete frame, parsing can only fail or ask for more.
            let event = self.parse_next_event();
            debug_assert!(event.is_none());
            self.finish_eof();
        }
    }

    // ----- sending data -----

    /// Sends a text message (the text is copied once, into the output).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is not open for sending.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_text("hi").unwrap();
    /// let mut wire = Vec::new();
    /// server.outgoing().drain_into(&mut wire);
    /// assert_eq!(wire, b"\x81\x02hi");
    /// ```
    pub fn send_text(&mut self, text: &str) -> Result<(), ApiMisuse> {
        self.check_can_send_message()?;
        self.write_message_slice(OpCode::Text, text.as_bytes(), true);
        Ok(())
    }

    /// Sends a binary message (the data is copied once, into the output).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is not open for sending.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_binary(&[1, 2]).unwrap();
    /// assert_eq!(server.outgoing().len(), 4);
    /// ```
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ApiMisuse> {
        self.check_can_send_message()?;
        self.write_message_slice(OpCode::Binary, data, true);
        Ok(())
    }

    /// Sends a message. On the server side a large payload is queued by reference and
    /// never copied, so one message can be sent to many connections cheaply.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is not open for sending.
    ///
    /// ```
    /// # use sockjet_proto::{Message, Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_message(Message::binary(vec![0u8; 10_000])).unwrap();
    /// assert_eq!(server.outgoing().len(), 4 + 10_000);
    /// ```
    pub fn send_message(&mut self, message: Message) -> Result<(), ApiMisuse> {
        self.send_message_with(message, true)
    }

    /// Sends a message, compressed only if `compress` is true (and compression was
    /// negotiated, and the message is not below the threshold): more generally, passed
    /// through the connection's [`Extension`] only if `compress` is true. RSV1 is per
    /// message (RFC 7692 §6), so one message can skip compression, e.g. data already
    /// compressed.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is not open for sending.
    ///
    /// ```
    /// # use sockjet_proto::{Message, Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_message_with(Message::binary(vec![1u8; 8]), false).unwrap();
    /// assert_eq!(server.outgoing().len(), 2 + 8);
    /// ```
    pub fn send_message_with(&mut self, message: Message, compress: bool) -> Result<(), ApiMisuse> {
        self.check_can_send_message()?;
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
        };
        match compress.then(|| self.encode(&payload)).flatten() {
            Some(encoded) => self.write_message_bytes(opcode, encoded, self.extension_rsv),
            None => self.write_message_bytes(opcode, payload, 0),
        }
        Ok(())
    }

    /// Sends a message prepared once for many connections (see [`PreparedMessage`]): the
    /// same bytes as [`send_message`](Self::send_message), with the header and any
    /// compression shared with the other connections it goes to.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the connection is not open for sending.
    ///
    /// ```
    /// # use sockjet_proto::{Message, PreparedMessage, Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// let mut prepared = PreparedMessage::new(Message::binary(vec![7u8; 2000]));
    /// server.send_prepared(&mut prepared).unwrap();
    /// assert_eq!(server.outgoing().len(), 4 + 2000);
    /// ```
    pub fn send_prepared(&mut self, prepared: &mut PreparedMessage) -> Result<(), ApiMisuse> {
        self.check_can_send_message()?;
        let fits_one_frame = self
            .config
            .max_send_frame_size
            .is_none_or(|max| prepared.payload_len() <= max);
        if self.side == Side::Client || !fits_one_frame {
            return self.send_message_with(prepared.message().clone(), true);
        }
        let frame = match self.extension.as_deref_mut() {
            None => prepared.plain_frame(),
            Some(extension) => match extension.shared_encoding() {
                Some(key) => match prepared.encoded_frame(key, extension) {
                    Some(frame) => frame,
                    None => prepared.plain_frame(),
                },
                None => return self.send_message_with(prepared.message().clone(), true),
            },
        };
        write_prepared(frame, &mut self.output);
        Ok(())
    }

    /// Sends one frame of a fragmented message: first [`OpCode::Text`] or
    /// [`OpCode::Binary`] with `fin = false`, then [`OpCode::Continuation`] frames, the last
    /// with `fin = true`. The caller keeps text fragments valid UTF-8 as a whole.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse::BadFragmentSequence`] when the sequence is broken, or if the
    /// connection is not open for sending.
    ///
    /// ```
    /// # use sockjet_proto::{frame::OpCode, Bytes, Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_fragment(OpCode::Text, Bytes::from_static(b"he"), false).unwrap();
    /// server.send_fragment(OpCode::Continuation, Bytes::from_static(b"llo"), true).unwrap();
    /// let mut wire = Vec::new();
    /// server.outgoing().drain_into(&mut wire);
    /// assert_eq!(wire, b"\x01\x02he\x80\x03llo");
    /// ```
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        fin: bool,
    ) -> Result<(), ApiMisuse> {
        self.check_can_send_data()?;
        match (opcode, self.sending_fragmented) {
            (OpCode::Text | OpCode::Binary, None) => {
                if !fin {
                    self.sending_fragmented = Some(opcode);
                }
            }
            (OpCode::Continuation, Some(_)) => {
                if fin {
                    self.sending_fragmented = None;
                }
            }
            _ => return Err(ApiMisuse::BadFragmentSequence),
        }
        self.write_frame_bytes(opcode, fin, 0, payload);
        Ok(())
    }

    /// Sends a ping. Its payload must be at most 125 bytes.
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the payload is too long or the connection is not open.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_ping(b"1").unwrap();
    /// assert!(server.send_ping(&[0; 126]).is_err());
    /// ```
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), ApiMisuse> {
        self.check_control(payload)?;
        if self.state != State::Open {
            return Err(ApiMisuse::SendAfterClose);
        }
        self.write_frame_slice(OpCode::Ping, true, 0, payload);
        Ok(())
    }

    /// Sends an unsolicited pong (pings are answered automatically).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the payload is too long or a close frame was sent.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_pong(b"").unwrap();
    /// ```
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), ApiMisuse> {
        self.check_control(payload)?;
        if self.close_sent.is_some() || self.state == State::Closed {
            return Err(ApiMisuse::SendAfterClose);
        }
        self.write_frame_slice(OpCode::Pong, true, 0, payload);
        Ok(())
    }

    /// Starts the closing handshake with `code` and `reason` (at most 123 bytes).
    ///
    /// # Errors
    ///
    /// [`ApiMisuse`] if the code may not be sent (1005, 1006, 1015, ...), the reason is
    /// too long, or a close frame was already sent.
    ///
    /// ```
    /// # use sockjet_proto::{CloseCode, Protocol, Side, State};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// client.send_close(CloseCode::NORMAL_CLOSURE, "").unwrap();
    /// assert_eq!(client.state(), State::Closing);
    /// assert!(client.close_expected());
    /// ```
    pub fn send_close(&mut self, code: CloseCode, reason: &str) -> Result<(), ApiMisuse> {
        if !code.is_sendable() {
            return Err(ApiMisuse::UnsendableCloseCode(code));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(ApiMisuse::ControlFrameTooLong);
        }
        if self.state != State::Open || self.close_sent.is_some() {
            return Err(ApiMisuse::SendAfterClose);
        }
        self.write_close(Some(CloseFrame::new(code, reason)));
        self.state = State::Closing;
        Ok(())
    }

    /// Fails the connection from the application's side (RFC 6455 §7.1.7), for example
    /// with 1011 when a keepalive ping times out: sends a close frame if none was sent
    /// and stops processing input.
    ///
    /// ```
    /// # use sockjet_proto::{CloseCode, Protocol, Side, State};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.fail(CloseCode::INTERNAL_ERROR, "keepalive ping timeout");
    /// assert_eq!(server.state(), State::Closing);
    /// assert!(server.eof_to_send());
    /// ```
    pub fn fail(&mut self, code: CloseCode, reason: &str) {
        self.fail_with(code, reason);
    }

    // ----- outputs -----

    /// Parses buffered input and returns the next event, or `None` when more input is
    /// needed (or the connection failed; see [`close_error`](Self::close_error)).
    ///
    /// ```
    /// # use sockjet_proto::{Event, Message, Protocol, Side};
    /// let mut client = Protocol::new(Side::Client, Default::default());
    /// client.receive_data(b"\x01\x01a\x80\x01b"); // "ab" in two fragments
    /// assert_eq!(client.next_event(), Some(Event::Message(Message::text("ab"))));
    /// assert_eq!(client.next_event(), None);
    /// ```
    pub fn next_event(&mut self) -> Option<Event> {
        let event = self.parse_next_event();
        if event.is_none() && self.eof_received {
            self.finish_eof();
        }
        event
    }

    /// The body of [`next_event`](Self::next_event): parses until an event or a need for
    /// more bytes.
    fn parse_next_event(&mut self) -> Option<Event> {
        loop {
            if self.discarding {
                self.discard_input();
                return None;
            }
            let partial = match self.partial {
                Some(partial) => partial,
                None => {
                    // The first two bytes already show most violations: check them before
                    // the rest of the header arrives, so a peer cannot hold a bad header
                    // open byte by byte, and so the error found does not depend on how the
                    // header was split into reads.
                    if let Some(error) = self.check_header_start() {
                        self.fail_protocol(error);
                        return None;
                    }
                    match FrameHeader::decode(&self.input) {
                        Ok(None) => {
                            self.release_idle_input();
                            return None;
                        }
                        Ok(Some((header, header_len))) => {
                            if let Err(error) = self.check_header(&header) {
                                self.fail_protocol(error);
                                return None;
                            }
                            if matches!(header.opcode, OpCode::Text) {
                                self.utf8.reset();
                            }
                            PartialFrame {
                                header,
                                header_len,
                                processed: 0,
                            }
                        }
                        Err(error) => {
                            self.fail_protocol(error);
                            return None;
                        }
                    }
                }
            };
            // Invariant: check_header bounded payload_len by the size limits, or the
            // platform's usize when there is no limit.
            let payload_len = partial.header.payload_len as usize;
            let available = self.input.len() - partial.header_len;
            if available < payload_len {
                self.partial = Some(partial);
                if available > partial.processed && self.is_text_payload(&partial.header) {
                    // Unmask and validate what has arrived, so invalid UTF-8 fails the
                    // connection at once rather than when the frame completes.
                    let start = partial.header_len + partial.processed;
                    let end = partial.header_len + available;
                    if let Some(key) = partial.header.mask {
                        apply_mask_at(&mut self.input[start..end], key, partial.processed);
                    }
                    if self.utf8.feed(&self.input[start..end]).is_err() {
                        self.fail_protocol(ProtocolError::InvalidUtf8);
                        return None;
                    }
                    if let Some(partial) = &mut self.partial {
                        partial.processed = available;
                    }
                }
                return None;
            }
            self.partial = None;
            self.input.advance(partial.header_len);
            let mut payload = self.input.split_to(payload_len);
            if let Some(key) = partial.header.mask {
                if partial.processed == 0 {
                    apply_mask(&mut payload, key);
                } else {
                    apply_mask_at(&mut payload[partial.processed..], key, partial.processed);
                }
            }
            if let Some(event) = self.receive_frame(partial.header, payload, partial.processed) {
                return Some(event);
            }
        }
    }

    /// The bytes to write to the network. Write them (vectored), then [`Buf::advance`].
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// use bytes::Buf;
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// server.send_text("a").unwrap();
    /// let out = server.outgoing();
    /// assert_eq!(out.chunk(), b"\x81\x01a");
    /// out.advance(3);
    /// assert!(out.is_empty());
    /// ```
    pub fn outgoing(&mut self) -> &mut Outgoing {
        &mut self.output
    }

    /// Whether the driver should now half-close the TCP connection (after writing
    /// [`outgoing`](Self::outgoing)). Returns `true` once.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// assert!(!server.eof_to_send());
    /// ```
    pub fn eof_to_send(&mut self) -> bool {
        std::mem::take(&mut self.eof_pending)
    }

    /// Whether [`eof_to_send`](Self::eof_to_send) would return `true`, without taking it:
    /// for a driver that skips flushing when there is nothing to do.
    ///
    /// ```
    /// # use sockjet_proto::{CloseCode, Protocol, Side};
    /// let mut server = Protocol::new(Side::Server, Default::default());
    /// assert!(!server.has_eof_to_send());
    /// server.fail(CloseCode::PROTOCOL_ERROR, "bad");
    /// assert!(server.has_eof_to_send());
    /// assert!(server.eof_to_send());
    /// assert!(!server.has_eof_to_send());
    /// ```
    pub fn has_eof_to_send(&self) -> bool {
        self.eof_pending
    }

    /// Whether the TCP connection is expected to close soon: the driver should close it
    /// after a timeout if the peer does not.
    ///
    /// ```
    /// # use sockjet_proto::{Protocol, Side};
    /// assert!(!Protocol::new(Side::Server, Default::default()).close_expected());
    /// ```
    pub fn close_expected(&self) -> bool {
        matches!(self.state, State::Closing) || self.eof_sent
    }

    // ----- receiving frames -----

    /// Validates a header against RFC 6455 and the limits, before its payload is read.
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RFC 6455 §5.2: "If a nonzero value is received and none of the negotiated
        // extensions defines the meaning of such a nonzero value, the receiving endpoint
        // MUST _Fail the WebSocket Connection_."
        // RFC 7692 §6: permessage-deflate gives RSV1 a meaning, on the first frame of a
        // data message only ("An endpoint MUST NOT set the "Per-Message Compressed" bit of
        // control frames and non-first fragments of a data message"). Any per-message
        // extension's bit goes by the same rule.
        let allowed_rsv = match header.opcode {
            OpCode::Text | OpCode::Binary => self.extension_rsv,
            _ => 0,
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        // RFC 6455 §5.1: "a server MUST NOT mask any frames that it sends to the client"
        // and "The server MUST close the connection upon receiving a frame that is not
        // masked"; a client "MUST close a connection if it detects a masked frame".
        if header.mask.is_some() != (self.side == Side::Server) {
            return Err(ProtocolError::IncorrectMasking);
        }
        if header.opcode.is_control() {
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or
            // less and MUST NOT be fragmented."
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            return Ok(());
        }
        match (header.opcode, &self.assembly) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        let compressed = self.frame_is_compressed(header);
        if let Some(limit) = self.config.max_frame_size {
            // Deflate may expand incompressible data slightly (5 bytes per stored block of
            // up to 64 KiB, plus a few bytes): allow for it on compressed frames, so that a
            // message at the limit still fits.
            let limit = match compressed {
                true => limit.saturating_add(limit / 8192 + 64),
                false => limit,
            };
            if header.payload_len > limit as u64 {
                return Err(ProtocolError::FrameTooBig {
                    size: header.payload_len,
                    limit,
                });
            }
        }
        if compressed {
            // The message limit applies to the inflated size, checked while inflating.
            return Ok(());
        }
        let assembled = self.assembly.as_ref().map_or(0, |a| a.data.len()) as u64;
        let size = assembled.saturating_add(header.payload_len);
        match self.config.max_message_size {
            Some(limit) if size > limit as u64 => Err(ProtocolError::MessageTooBig { size, limit }),
            // Without limits a frame can still not exceed what this platform can address.
            _ if usize::try_from(size).is_err() => Err(ProtocolError::MessageTooBig {
                size,
                limit: usize::MAX,
            }),
            _ => Ok(()),
        }
    }

    /// Checks an incomplete header from its first two bytes: reserved bits, masking,
    /// control frame rules and continuation rules (sizes need the whole header).
    fn check_header_start(&self) -> Option<ProtocolError> {
        let [first, second, ..] = self.input[..] else {
            return None;
        };
        // Invariant: decode() rejects a reserved opcode once two bytes are buffered.
        let opcode = OpCode::try_from(first & 0x0F).ok()?;
        let short_len = u64::from(second & 0x7F);
        let provisional = FrameHeader {
            fin: first & 0x80 != 0,
            rsv: (first >> 4) & 0x07,
            opcode,
            mask: (second & 0x80 != 0).then_some([0; 4]),
            // An extended length is not known yet (and may encode a small value
            // non-minimally, which is allowed): sizes are checked on the whole header.
            payload_len: if short_len <= 125 { short_len } else { 0 },
        };
        self.check_header(&provisional).err()
    }

    /// Whether a data frame belongs to a message encoded by the extension (compressed).
    fn frame_is_compressed(&self, header: &FrameHeader) -> bool {
        match header.opcode {
            OpCode::Text | OpCode::Binary => header.rsv & self.extension_rsv != 0,
            OpCode::Continuation => self.receiving_encoded,
            _ => false,
        }
    }

    /// Whether the frame's payload is text to validate as it arrives (compressed text is
    /// validated once inflated).
    fn is_text_payload(&self, header: &FrameHeader) -> bool {
        if self.frame_is_compressed(header) {
            return false;
        }
        match header.opcode {
            OpCode::Text => true,
            OpCode::Continuation => self
                .assembly
                .as_ref()
                .is_some_and(|a| a.opcode == OpCode::Text),
            _ => false,
        }
    }

    /// Handles a complete, unmasked frame. `checked` bytes of a text payload were already
    /// fed to the UTF-8 validator.
    fn receive_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
        checked: usize,
    ) -> Option<Event> {
        match header.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.receive_data_frame(header, payload, checked)
            }
            OpCode::Ping => {
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
                // Pong frame in response, unless it already received a Close frame."
                if self.state == State::Open {
                    self.write_frame_slice(OpCode::Pong, true, 0, &payload);
                }
                Some(Event::Ping(payload.freeze()))
            }
            OpCode::Pong => Some(Event::Pong(payload.freeze())),
            OpCode::Close => self.receive_close(payload.freeze()),
        }
    }

    fn receive_data_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
        checked: usize,
    ) -> Option<Event> {
        if self.frame_is_compressed(&header) {
            return self.receive_compressed_frame(header, &payload);
        }
        if header.opcode != OpCode::Continuation {
            self.receiving_encoded = false;
        }
        let is_text = self.is_text_payload(&header);
        if is_text {
            let valid = if header.fin && checked == 0 && header.opcode == OpCode::Text {
                // Unfragmented text that arrived whole: one SIMD pass.
                Utf8Validator::validate_complete(&payload).is_ok()
            } else {
                self.utf8.feed(&payload[checked..]).is_ok()
                    && (!header.fin || self.utf8.is_complete())
            };
            if !valid {
                self.fail_protocol(ProtocolError::InvalidUtf8);
                return None;
            }
        }
        let (opcode, data) = match header.opcode {
            OpCode::Continuation => {
                let assembly = self.assembly.as_mut().expect("checked by check_header");
                if assembly.data.is_empty() {
                    assembly.data = payload;
                } else {
                    assembly.data.extend_from_slice(&payload);
                }
                if !header.fin {
                    return None;
                }
                let assembly = self.assembly.take().expect("present above");
                (assembly.opcode, assembly.data)
            }
            opcode if !header.fin => {
                self.assembly = Some(Assembly {
                    opcode,
                    data: payload,
                });
                return None;
            }
            opcode => (opcode, payload),
        };
        let data = data.freeze();
        Some(Event::Message(if opcode == OpCode::Text {
            Message::Text(Utf8Bytes::from_bytes_unchecked(data))
        } else {
            Message::Binary(data)
        }))
    }

    /// Inflates one frame of a compressed message into the message being assembled,
    /// bounded by the message size limit, and validates inflated text as it comes.
    fn receive_compressed_frame(&mut self, header: FrameHeader, payload: &[u8]) -> Option<Event> {
        let (opcode, mut data) = match header.opcode {
            OpCode::Continuation => {
                let assembly = self.assembly.take().expect("checked by check_header");
                (assembly.opcode, assembly.data)
            }
            opcode => {
                self.receiving_encoded = true;
                (opcode, BytesMut::new())
            }
        };
        let limit = self.config.max_message_size.unwrap_or(usize::MAX);
        let start = data.len();
        let extension = self
            .extension
            .as_mut()
            .expect("reserved bits accepted only with an extension");
        match extension.decode(payload, header.fin, &mut data, limit) {
            Ok(()) => {}
            Err(DecodeError::TooBig) => {
                self.fail_protocol(ProtocolError::MessageTooBig {
                    size: limit as u64 + 1,
                    limit,
                });
                return None;
            }
            Err(_) => {
                self.fail_protocol(ProtocolError::DecompressionFailed);
                return None;
            }
        }
        if opcode == OpCode::Text
            && (self.utf8.feed(&data[start..]).is_err() || header.fin && !self.utf8.is_complete())
        {
            self.fail_protocol(ProtocolError::InvalidUtf8);
            return None;
        }
        if !header.fin {
            self.assembly = Some(Assembly { opcode, data });
            return None;
        }
        self.receiving_encoded = false;
        let data = data.freeze();
        Some(Event::Message(if opcode == OpCode::Text {
            Message::Text(Utf8Bytes::from_bytes_unchecked(data))
        } else {
            Message::Binary(data)
        }))
    }

    fn receive_close(&mut self, payload: Bytes) -> Option<Event> {
        let frame = match parse_close_payload(&payload) {
            Ok(frame) => frame,
            Err(error) => {
                self.fail_protocol(error);
                return None;
            }
        };
        self.close_rcvd = Some(
            frame
                .clone()
                .unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS_RCVD, "")),
        );
        if self.close_sent.is_none() {
            // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not
            // previously send a Close frame, the endpoint MUST send a Close frame in
            // response." Echo the payload rather than re-serializing it, so an empty close
            // stays empty.
            self.write_frame_slice(OpCode::Close, true, 0, &payload);
            self.close_sent = self.close_rcvd.clone();
            self.close_rcvd_then_sent = Some(true);
        } else {
            self.close_rcvd_then_sent = Some(false);
        }
        self.state = State::Closing;
        // RFC 6455 §7.1.1: "the underlying TCP connection, in most normal cases, SHOULD be
        // closed first by the server".
        if self.side == Side::Server && !self.eof_sent {
            self.send_eof();
        }
        // Nothing after a close frame is processed.
        self.discarding = true;
        Some(Event::Close(frame))
    }

    // ----- failing -----

    fn fail_protocol(&mut self, error: ProtocolError) {
        let code = CloseCode::from(&error);
        let reason = error.to_string();
        self.close_error = Some(error);
        self.fail_with(code, &reason);
    }

    fn fail_with(&mut self, code: CloseCode, reason: &str) {
        if self.state == State::Open && self.close_sent.is_none() && code.is_sendable() {
            let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
            self.write_close(Some(CloseFrame::new(code, reason)));
        }
        if self.state == State::Open {
            self.state = State::Closing;
        }
        // RFC 6455 §7.1.7: the endpoint that fails the connection closes it. A client
        // waits for the server to close TCP (close_expected), as §7.1.1 prefers.
        if self.side == Side::Server && !self.eof_sent && self.state != State::Closed {
            self.send_eof();
        }
        self.discarding = true;
        self.discard_input();
    }

    /// Whether the input holds a whole frame (or a header that fails), i.e. whether
    /// `next_event` has anything left to say before the EOF.
    fn has_complete_frame(&self) -> bool {
        let (header, header_len) = match self.partial {
            Some(partial) => (partial.header, partial.header_len),
            None => match FrameHeader::decode(&self.input) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => return false,
                Err(_) => return true,
            },
        };
        (self.input.len() - header_len) as u64 >= header.payload_len
    }

    /// The stream ended and everything complete before it was processed.
    fn finish_eof(&mut self) {
        if self.state == State::Closed {
            return;
        }
        if self.close_rcvd.is_none() && self.close_error.is_none() {
            // Mid-frame, mid-message, or simply without a closing handshake.
            self.close_error = Some(ProtocolError::UnexpectedEof);
        }
        self.state = State::Closed;
        self.discard_input();
        if !self.eof_sent {
            // Our half of the TCP connection closes too.
            self.send_eof();
        }
    }

    fn discard_input(&mut self) {
        self.partial = None;
        self.assembly = None;
        self.input = BytesMut::new();
    }

    fn release_idle_input(&mut self) {
        if self.input.is_empty() && self.input.capacity() > MAX_IDLE_INPUT {
            self.input = BytesMut::new();
        }
    }

    // ----- writing frames -----

    fn check_can_send_data(&self) -> Result<(), ApiMisuse> {
        match self.state {
            State::Open if self.close_sent.is_none() => Ok(()),
            State::Connecting => Err(ApiMisuse::NotOpen),
            _ => Err(ApiMisuse::SendAfterClose),
        }
    }

    /// A whole message cannot be sent in the middle of a fragmented one (RFC 6455 §5.4:
    /// "the fragments of one message MUST NOT be interleaved between the fragments of
    /// another message").
    fn check_can_send_message(&self) -> Result<(), ApiMisuse> {
        self.check_can_send_data()?;
        match self.sending_fragmented {
            Some(_) => Err(ApiMisuse::BadFragmentSequence),
            None => Ok(()),
        }
    }

    fn check_control(&self, payload: &[u8]) -> Result<(), ApiMisuse> {
        if payload.len() > 125 {
            return Err(ApiMisuse::ControlFrameTooLong);
        }
        Ok(())
    }

    fn write_close(&mut self, frame: Option<CloseFrame>) {
        let mut payload = Vec::with_capacity(2 + MAX_CLOSE_REASON);
        if let Some(frame) = &frame {
            payload.extend_from_slice(&frame.code.as_u16().to_be_bytes());
            payload.extend_from_slice(frame.reason.as_bytes());
        }
        self.write_frame_slice(OpCode::Close, true, 0, &payload);
        self.close_sent = frame.or(Some(CloseFrame::new(CloseCode::NO_STATUS_RCVD, "")));
    }

    fn write_message_slice(&mut self, opcode: OpCode, payload: &[u8], compress: bool) {
        if let Some(encoded) = compress.then(|| self.encode(payload)).flatten() {
            return self.write_message_bytes(opcode, encoded, self.extension_rsv);
        }
        match self.config.max_send_frame_size {
            Some(max) if payload.len() > max => {
                let mut pieces = payload.chunks(max).peekable();
                let mut opcode = opcode;
                while let Some(piece) = pieces.next() {
                    self.write_frame_slice(opcode, pieces.peek().is_none(), 0, piece);
                    opcode = OpCode::Continuation;
                }
            }
            _ => self.write_frame_slice(opcode, true, 0, payload),
        }
    }

    /// Writes a whole message, split into frames of at most `max_send_frame_size`.
    fn write_message_bytes(&mut self, opcode: OpCode, payload: Bytes, rsv: u8) {
        let mut rest = payload;
        let mut opcode = opcode;
        let mut rsv = rsv;
        if let Some(max) = self.config.max_send_frame_size {
            while rest.len() > max {
                let piece = rest.split_to(max);
                self.write_frame_bytes(opcode, false, rsv, piece);
                opcode = OpCode::Continuation;
                // RFC 7692 §6.1: RSV1 is set on the first frame of a message only.
                rsv = 0;
            }
        }
        self.write_frame_bytes(opcode, true, rsv, rest);
    }

    /// Passes a message payload through the extension, if there is one and it takes the
    /// message (permessage-deflate leaves messages below its threshold alone).
    fn encode(&mut self, payload: &[u8]) -> Option<Bytes> {
        let extension = self.extension.as_mut()?;
        let mut out = BytesMut::new();
        extension.encode(payload, &mut out).then(|| out.freeze())
    }

    fn header_for(&mut self, opcode: OpCode, fin: bool, rsv: u8, len: usize) -> FrameHeader {
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask: match self.side {
                Side::Client => Some(
                    self.mask_keys
                        .get_or_insert_with(|| Box::new(OsRandomMaskKeys::default()))
                        .next_key(),
                ),
                Side::Server => None,
            },
            payload_len: len as u64,
        }
    }

    fn write_frame_slice(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let header = self.header_for(opcode, fin, rsv, payload.len());
        let tail = self.output.tail_mut();
        header.encode(tail);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut tail[start..], key);
        }
    }

    fn write_frame_bytes(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: Bytes) {
        if self.side == Side::Client || payload.len() < Outgoing::SHARE_THRESHOLD {
            return self.write_frame_slice(opcode, fin, rsv, &payload);
        }
        let header = self.header_for(opcode, fin, rsv, payload.len());
        header.encode(self.output.tail_mut());
        self.output.push_bytes(payload);
    }

    fn send_eof(&mut self) {
        self.eof_pending = true;
        self.eof_sent = true;
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protocol")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("buffered", &self.input.len())
            .field("outgoing", &self.output.len())
            .field("close_error", &self.close_error)
            .finish_non_exhaustive()
    }
}

/// Parses a close frame body (RFC 6455 §5.5.1): empty, or a 2-byte code and UTF-8 reason.
fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseFrameTooShort),
        [high, low, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*high, *low]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.as_u16()));
            }
            let reason = Utf8Bytes::try_from(Bytes::copy_from_slice(reason))
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A control frame carries at most 125 bytes, 2 of which are the close code.
const MAX_CLOSE_REASON: usize = 123;
/// Most free space reserved ahead of the data for one large frame.
const MAX_RESERVE_AHEAD: usize = 1 << 20;
/// Minimum free space offered to each socket read.
const READ_CHUNK: usize = 4096;
/// Capacity above which an empty input buffer is released (it shrinks back after a large
/// frame).
const MAX_IDLE_INPUT: usize = 64 * 1024;
