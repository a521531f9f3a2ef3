//! [`PreparedMessage`]: one message encoded once for many server connections (broadcast).

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    extension::Extension,
    frame::{FrameHeader, OpCode},
    message::Message,
};

/// A message prepared for sending on many server connections: its frame header is built
/// once, and where receivers compress it the same way (permessage-deflate without context
/// takeover and with the same settings) it is compressed once for all of them. Pass it to
/// [`Protocol::send_prepared`](crate::Protocol::send_prepared) of each connection.
///
/// The payload is shared, never copied for each connection, from
/// [`Outgoing::SHARE_THRESHOLD`](crate::Outgoing::SHARE_THRESHOLD) bytes up; smaller frames
/// are copied into each connection's output buffer, which costs less than sharing them
/// (no reference count touched from every thread, and one write for many small frames).
///
/// Connections for which the prepared frame does not fit encode the message themselves,
/// so the result on the wire is always what
/// [`send_message`](crate::Protocol::send_message) would send: client connections (each
/// frame has its own mask), compression with context takeover (each connection's
/// compressor has its own history), and a `max_send_frame_size` below the message's size.
///
/// ```
/// use sockjet_proto::{Message, PreparedMessage, Protocol, Side};
/// let mut a = Protocol::new(Side::Server, Default::default());
/// let mut b = Protocol::new(Side::Server, Default::default());
/// let mut prepared = PreparedMessage::new(Message::text("tick"));
/// a.send_prepared(&mut prepared).unwrap();
/// b.send_prepared(&mut prepared).unwrap();
/// let (mut wire_a, mut wire_b) = (Vec::new(), Vec::new());
/// a.outgoing().drain_into(&mut wire_a);
/// b.outgoing().drain_into(&mut wire_b);
/// assert_eq!(wire_a, b"\x81\x04tick");
/// assert_eq!(wire_a, wire_b);
/// ```
#[derive(Debug)]
pub struct PreparedMessage {
    message: Message,
    /// The frame without any extension: header and payload.
    plain: PreparedFrame,
    /// Frames encoded by extensions, by [`Extension::shared_encoding`] key; `None` where
    /// the extension leaves the message as it is (below the compression threshold).
    encoded: Vec<(u64, Option<PreparedFrame>)>,
}

/// A frame header, encoded, and the payload it announces.
#[derive(Clone, Debug)]
pub(crate) struct PreparedFrame {
    pub(crate) header: Bytes,
    pub(crate) payload: Bytes,
}

impl PreparedFrame {
    fn new(opcode: OpCode, rsv: u8, payload: Bytes) -> Self {
        let header = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut encoded = BytesMut::with_capacity(14);
        header.encode(&mut encoded);
        Self {
            header: encoded.freeze(),
            payload,
        }
    }
}

impl PreparedMessage {
    /// Prepares `message`.
    ///
    /// ```
    /// let prepared = sockjet_proto::PreparedMessage::new(sockjet_proto::Message::binary(vec![0u8; 300]));
    /// assert_eq!(prepared.payload_len(), 300);
    /// ```
    pub fn new(message: Message) -> Self {
        let (opcode, payload) = opcode_and_payload(&message);
        Self {
            plain: PreparedFrame::new(opcode, 0, payload),
            message,
            encoded: Vec::new(),
        }
    }

    /// The message.
    ///
    /// ```
    /// use sockjet_proto::{Message, PreparedMessage};
    /// assert_eq!(PreparedMessage::new(Message::text("a")).message(), &Message::text("a"));
    /// ```
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The length of the message's payload (before any compression).
    ///
    /// ```
    /// assert_eq!(sockjet_proto::PreparedMessage::new("abc".into()).payload_len(), 3);
    /// ```
    pub fn payload_len(&self) -> usize {
        self.plain.payload.len()
    }

    /// The frame without extensions.
    pub(crate) fn plain_frame(&self) -> &PreparedFrame {
        &self.plain
    }

    /// The frame `extension` sends, encoded by the first connection that needs it and kept
    /// for the others with the same key. `None` if the extension leaves the message as is.
    pub(crate) fn encoded_frame(
        &mut self,
        key: u64,
        extension: &mut dyn Extension,
    ) -> Option<&PreparedFrame> {
        let index = match self.encoded.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                let (opcode, payload) = opcode_and_payload(&self.message);
                let mut out = BytesMut::new();
                let frame = extension
                    .encode(&payload, &mut out)
                    .then(|| PreparedFrame::new(opcode, extension.rsv(), out.freeze()));
                self.encoded.push((key, frame));
                self.encoded.len() - 1
            }
        };
        self.encoded[index].1.as_ref()
    }
}

fn opcode_and_payload(message: &Message) -> (OpCode, Bytes) {
    match message {
        Message::Text(text) => (OpCode::Text, text.clone().into_bytes()),
        Message::Binary(data) => (OpCode::Binary, data.clone()),
    }
}

impl From<Message> for PreparedMessage {
    fn from(message: Message) -> Self {
        Self::new(message)
    }
}

/// Appends a prepared frame to `out`, sharing its payload when it is large.
pub(crate) fn write_prepared(frame: &PreparedFrame, out: &mut crate::Outgoing) {
    out.tail_mut().put_slice(&frame.header);
    out.push_bytes(frame.payload.clone());
}
