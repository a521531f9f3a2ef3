//! `PreparedMessage` and `Protocol::send_prepared`: a message encoded once for many
//! connections must put on each wire exactly what `send_message` would.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use common::{client, drain, sent_frames, server, server_with};
use sockjet_proto::{
    ApiMisuse, BytesMut, CloseCode, Config, DeflateConfig, DeflateParams, Message,
    PerMessageDeflate, PreparedMessage, Protocol, Side,
    extension::{DecodeError, Extension},
    frame::{RSV1, RSV2},
};

fn messages() -> Vec<Message> {
    vec![
        Message::text(""),
        Message::text("tick"),
        Message::binary(vec![3u8; 125]),
        Message::binary(vec![4u8; 126]),
        Message::binary((0..5000u32).map(|i| i as u8).collect::<Vec<_>>()),
        Message::text("ab".repeat(40_000)),
    ]
}

/// What `send_message` writes on a fresh copy of the connection `make` builds.
fn expected_wire(make: &dyn Fn() -> Protocol, message: &Message) -> Vec<u8> {
    let mut reference = make();
    reference.send_message(message.clone()).unwrap();
    drain(&mut reference)
}

fn assert_same_as_send_message(make: &dyn Fn() -> Protocol) {
    for message in messages() {
        let mut prepared = PreparedMessage::new(message.clone());
        for receiver in 0..3 {
            let mut connection = make();
            connection.send_prepared(&mut prepared).unwrap();
            assert_eq!(
                drain(&mut connection),
                expected_wire(make, &message),
                "receiver {receiver}, {} bytes",
                prepared.payload_len()
            );
        }
    }
}

fn deflating_server(server_no_context_takeover: bool) -> Protocol {
    let params = DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover: false,
        server_max_window_bits: 12,
        client_max_window_bits: 15,
    };
    let mut server = server();
    server.enable_permessage_deflate(PerMessageDeflate::new(
        Side::Server,
        params,
        &DeflateConfig::default(),
    ));
    server
}

#[test]
fn without_extensions_the_wire_is_send_messages() {
    assert_same_as_send_message(&server);
}

#[test]
fn deflate_without_context_takeover_is_compressed_the_same_way() {
    assert_same_as_send_message(&|| deflating_server(true));
    let mut connection = deflating_server(true);
    let mut prepared = PreparedMessage::new(Message::text("ab".repeat(1000)));
    connection.send_prepared(&mut prepared).unwrap();
    let frames = sent_frames(&mut connection);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].header.rsv, RSV1, "compressed");
    assert!(frames[0].payload.len() < 100);
}

#[test]
fn deflate_with_context_takeover_compresses_per_connection() {
    // The second message on a connection with context takeover refers to the first: each
    // connection's own compressor must encode it, so the wire matches a connection that
    // sent both with send_message.
    let first = Message::text("hello hello hello hello hello hello hello hello hello hello");
    let second = Message::text("hello hello hello hello hello hello hello hello hello hello!");
    let mut reference = deflating_server(false);
    reference.send_message(first.clone()).unwrap();
    reference.send_message(second.clone()).unwrap();
    let expected = drain(&mut reference);
    let (mut prepared_first, mut prepared_second) =
        (PreparedMessage::new(first), PreparedMessage::new(second));
    for _ in 0..3 {
        let mut connection = deflating_server(false);
        connection.send_prepared(&mut prepared_first).unwrap();
        connection.send_prepared(&mut prepared_second).unwrap();
        assert_eq!(drain(&mut connection), expected);
    }
}

#[test]
fn frame_size_limit_below_the_message_fragments_it_as_send_message_does() {
    let make = || server_with(Config::default().max_send_frame_size(Some(1000)));
    assert_same_as_send_message(&make);
    let mut connection = make();
    let mut prepared = PreparedMessage::new(Message::binary(vec![1u8; 2500]));
    connection.send_prepared(&mut prepared).unwrap();
    assert_eq!(sent_frames(&mut connection).len(), 3);
}

#[test]
fn clients_mask_each_frame_themselves() {
    let mut connection = client();
    let mut prepared = PreparedMessage::new(Message::binary(vec![9u8; 2000]));
    connection.send_prepared(&mut prepared).unwrap();
    let frames = sent_frames(&mut connection);
    assert_eq!(frames.len(), 1);
    assert!(
        frames[0].header.mask.is_some(),
        "RFC 6455 §5.3: clients mask"
    );
    assert_eq!(frames[0].payload, vec![9u8; 2000]);
}

#[test]
fn closed_connections_refuse_prepared_messages() {
    let mut connection = server();
    connection
        .send_close(CloseCode::NORMAL_CLOSURE, "")
        .unwrap();
    let mut prepared = PreparedMessage::new(Message::text("late"));
    assert_eq!(
        connection.send_prepared(&mut prepared),
        Err(ApiMisuse::SendAfterClose)
    );
}

/// Counts its encodings; stateless, so the protocol may share them by key.
#[derive(Debug)]
struct CountingUpperCase {
    encodings: Arc<AtomicUsize>,
    key: Option<u64>,
}

impl Extension for CountingUpperCase {
    fn name(&self) -> &'static str {
        "x-upper"
    }

    fn rsv(&self) -> u8 {
        RSV2
    }

    fn encode(&mut self, payload: &[u8], out: &mut BytesMut) -> bool {
        self.encodings.fetch_add(1, Ordering::Relaxed);
        out.extend(payload.iter().map(u8::to_ascii_uppercase));
        true
    }

    fn shared_encoding(&self) -> Option<u64> {
        self.key
    }

    fn decode(
        &mut self,
        payload: &[u8],
        _fin: bool,
        out: &mut BytesMut,
        _max_len: usize,
    ) -> Result<(), DecodeError> {
        out.extend_from_slice(payload);
        Ok(())
    }
}

fn server_with_counter(encodings: &Arc<AtomicUsize>, key: Option<u64>) -> Protocol {
    let mut server = server();
    server.set_extension(Box::new(CountingUpperCase {
        encodings: encodings.clone(),
        key,
    }));
    server
}

#[test]
fn a_shared_encoding_is_computed_once_per_key() {
    let encodings = Arc::new(AtomicUsize::new(0));
    let mut prepared = PreparedMessage::new(Message::text("shout"));
    for key in [1, 1, 2, 1, 2, 2] {
        let mut connection = server_with_counter(&encodings, Some(key));
        connection.send_prepared(&mut prepared).unwrap();
        let frames = sent_frames(&mut connection);
        assert_eq!(frames[0].header.rsv, RSV2);
        assert_eq!(frames[0].payload, b"SHOUT");
    }
    assert_eq!(encodings.load(Ordering::Relaxed), 2, "one per key");
}

#[test]
fn an_extension_without_a_shared_encoding_encodes_per_connection() {
    let encodings = Arc::new(AtomicUsize::new(0));
    let mut prepared = PreparedMessage::new(Message::text("shout"));
    for _ in 0..4 {
        let mut connection = server_with_counter(&encodings, None);
        connection.send_prepared(&mut prepared).unwrap();
        assert_eq!(sent_frames(&mut connection)[0].payload, b"SHOUT");
    }
    assert_eq!(encodings.load(Ordering::Relaxed), 4);
}
