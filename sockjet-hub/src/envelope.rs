//! The bytes a hub publishes to a backend: who sent the message, what kind it is, and the
//! payload, binary-safe.
//!
//! ```text
//! 0      2         3      4            20
//! | "SJ" | version | kind | origin hub | payload...
//! ```
//!
//! `version` is 1; `kind` is 1 for text, 2 for binary; the origin is the publishing hub's
//! 16-byte [`HubId`]. The topic is not in the envelope: the backend's channel names it.

use sockjet::{Bytes, Message, Utf8Bytes};

use crate::backend::HubId;

const MAGIC: &[u8; 2] = b"SJ";
const VERSION: u8 = 1;
const TEXT: u8 = 1;
const BINARY: u8 = 2;
const HEADER_LEN: usize = 20;

/// Why received bytes are not an envelope.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Malformed {
    TooShort,
    NotAnEnvelope,
    UnknownVersion(u8),
    UnknownKind(u8),
    InvalidUtf8,
}

pub(crate) fn encode(origin: HubId, message: &Message) -> Vec<u8> {
    let (kind, payload) = match message {
        Message::Text(text) => (TEXT, text.as_bytes()),
        Message::Binary(data) => (BINARY, &data[..]),
    };
    let mut envelope = Vec::with_capacity(HEADER_LEN + payload.len());
    envelope.extend_from_slice(MAGIC);
    envelope.push(VERSION);
    envelope.push(kind);
    envelope.extend_from_slice(&origin.0);
    envelope.extend_from_slice(payload);
    envelope
}

pub(crate) fn decode(envelope: &[u8]) -> Result<(HubId, Message), Malformed> {
    if envelope.len() < HEADER_LEN {
        return Err(Malformed::TooShort);
    }
    let (header, payload) = envelope.split_at(HEADER_LEN);
    if &header[..2] != MAGIC {
        return Err(Malformed::NotAnEnvelope);
    }
    if header[2] != VERSION {
        return Err(Malformed::UnknownVersion(header[2]));
    }
    let mut origin = [0; 16];
    origin.copy_from_slice(&header[4..HEADER_LEN]);
    let payload = Bytes::copy_from_slice(payload);
    let message = match header[3] {
        TEXT => Message::Text(Utf8Bytes::try_from(payload).map_err(|_| Malformed::InvalidUtf8)?),
        BINARY => Message::Binary(payload),
        kind => return Err(Malformed::UnknownKind(kind)),
    };
    Ok((HubId(origin), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: HubId = HubId([7; 16]);

    #[test]
    fn text_and_binary_round_trip() {
        for message in [
            Message::text("héllo"),
            Message::text(""),
            Message::binary(vec![0u8, 255, 0, b'\r', b'\n']),
            Message::binary(Vec::<u8>::new()),
        ] {
            let envelope = encode(ORIGIN, &message);
            assert_eq!(envelope.len(), HEADER_LEN + message.len());
            assert_eq!(decode(&envelope), Ok((ORIGIN, message)));
        }
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let good = encode(ORIGIN, &Message::text("x"));
        assert_eq!(decode(&good[..19]), Err(Malformed::TooShort));
        assert_eq!(
            decode(b"hello, this is not an envelope"),
            Err(Malformed::NotAnEnvelope)
        );
        let mut bad = good.clone();
        bad[2] = 9;
        assert_eq!(decode(&bad), Err(Malformed::UnknownVersion(9)));
        let mut bad = good.clone();
        bad[3] = 3;
        assert_eq!(decode(&bad), Err(Malformed::UnknownKind(3)));
        let mut bad = good;
        bad.push(0xff);
        assert_eq!(decode(&bad), Err(Malformed::InvalidUtf8));
    }
}
