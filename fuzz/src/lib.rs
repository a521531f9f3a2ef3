//! Helpers shared by the fuzz targets: decoding the fuzzer's input into a selector byte,
//! read boundaries and data, and running a [`Protocol`] over it.

use sockjet_proto::{
    Config, DeflateConfig, DeflateParams, Event, MaskKeys, Message, PerMessageDeflate, Protocol,
    ProtocolError, Side, State,
};

/// Fuzzer input, decoded as `[selector, n, size_1 .. size_n, data ..]`: a byte that targets
/// use to pick options, and up to 15 read sizes that cut `data` into pieces (the rest of
/// `data` is the last piece). So the fuzzer chooses where reads end.
#[derive(Debug)]
pub struct Input<'a> {
    /// Chooses options (configuration, what to answer).
    pub selector: u8,
    /// `data` cut into reads.
    pub pieces: Vec<&'a [u8]>,
    /// All the data, for comparing with a single read.
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Decodes the fuzzer's bytes; `None` when too short to hold the header.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let [selector, n, rest @ ..] = bytes else {
            return None;
        };
        let n = usize::from(n % 16).min(rest.len());
        let (sizes, data) = rest.split_at(n);
        let mut pieces = Vec::with_capacity(n + 1);
        let mut remaining = data;
        for &size in sizes {
            let size = usize::from(size).min(remaining.len());
            let (piece, tail) = remaining.split_at(size);
            pieces.push(piece);
            remaining = tail;
        }
        pieces.push(remaining);
        Some(Self {
            selector: *selector,
            pieces,
            data,
        })
    }
}

/// Always the same masking key, so that two runs produce the same bytes.
#[derive(Clone, Copy, Debug)]
pub struct FixedKeys;

impl MaskKeys for FixedKeys {
    fn next_key(&mut self) -> [u8; 4] {
        [0x37, 0xfa, 0x21, 0x3d]
    }
}

/// The configuration picked by the low bits of `selector`: defaults, tiny limits (to reach
/// the 1009 paths), no limits, or fragmenting sends.
pub fn config_for(selector: u8) -> Config {
    match selector % 4 {
        0 => Config::default(),
        1 => Config::default()
            .max_message_size(Some(64))
            .max_frame_size(Some(32)),
        2 => Config::default()
            .max_message_size(None)
            .max_frame_size(None),
        _ => Config::default().max_send_frame_size(Some(3)),
    }
}

/// The permessage-deflate parameters picked by bits 2-5 of `selector`: the peer's window
/// (8, 9, 12 or 15 bits) and context takeover on either side.
pub fn deflate_params_for(selector: u8) -> DeflateParams {
    let peer_bits = [8, 9, 12, 15][usize::from((selector >> 2) & 3)];
    DeflateParams {
        server_no_context_takeover: selector & 0x10 != 0,
        client_no_context_takeover: selector & 0x20 != 0,
        server_max_window_bits: peer_bits,
        client_max_window_bits: peer_bits,
    }
}

/// Everything observable after feeding some input.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub close_error: Option<ProtocolError>,
    pub state: State,
    pub output: Vec<u8>,
    pub buffered: usize,
}

/// Takes events until `None`, bounded: every event consumes at least 2 input bytes.
pub fn drain_events(mut next: impl FnMut() -> Option<Event>, fed: usize, events: &mut Vec<Event>) {
    for _ in 0..fed + 2 {
        match next() {
            Some(event) => events.push(event),
            None => return,
        }
    }
    panic!("more events than input bytes");
}

/// Feeds `pieces` to a new `Protocol` on `side`, taking events after each read and
/// checking that memory stays bounded by the input.
pub fn run_protocol(
    side: Side,
    config: &Config,
    deflate: Option<DeflateParams>,
    pieces: &[&[u8]],
) -> Outcome {
    let mut proto = new_protocol(side, config, deflate);
    let mut events = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        proto.receive_data(piece);
        fed += piece.len();
        let before = events.len();
        drain_events(|| proto.next_event(), fed, &mut events);
        // No message over the limit, however well it was compressed.
        if let Some(limit) = config.max_message_size {
            for event in &events[before..] {
                if let Event::Message(Message::Text(text)) = event {
                    assert!(text.len() <= limit, "{} > {limit}", text.len());
                }
                if let Event::Message(Message::Binary(data)) = event {
                    assert!(data.len() <= limit, "{} > {limit}", data.len());
                }
            }
        }
        // Unconsumed input never exceeds what was fed.
        assert!(proto.buffered_len() <= fed);
        // The output queue is bounded by the input: a pong or a close echo is at most
        // as long as the frame it answers, plus 4 mask bytes for a client (a 2-byte
        // empty ping becomes a 6-byte masked pong), plus one final close frame.
        let bound = match side {
            Side::Server => fed,
            Side::Client => 3 * fed,
        };
        assert!(
            proto.outgoing().len() <= bound + 2 + 4 + 125,
            "{} bytes out for {fed} in",
            proto.outgoing().len()
        );
    }
    let mut output = Vec::new();
    proto.outgoing().drain_into(&mut output);
    Outcome {
        events,
        close_error: proto.close_error().cloned(),
        state: proto.state(),
        output,
        buffered: proto.buffered_len(),
    }
}

/// A protocol for the fuzzer: fixed masking keys, and permessage-deflate if asked.
fn new_protocol(side: Side, config: &Config, deflate: Option<DeflateParams>) -> Protocol {
    let mut proto = Protocol::new(side, config.clone()).with_mask_keys(FixedKeys);
    if let Some(params) = deflate {
        let deflate = PerMessageDeflate::new(side, params, &DeflateConfig::default());
        proto.enable_permessage_deflate(deflate);
    }
    proto
}

/// The shared body of the `protocol_*` targets: arbitrary bytes, split at the fuzzer's
/// read boundaries, give the same outcome as one read; then the API keeps working.
pub fn fuzz_protocol(side: Side, bytes: &[u8]) {
    fuzz_protocol_with(side, bytes, false);
}

/// [`fuzz_protocol`] with permessage-deflate negotiated (parameters from the selector):
/// compressed frames, bombs and corrupt streams must fail cleanly, never panic or
/// allocate past the message limit.
pub fn fuzz_protocol_deflate(side: Side, bytes: &[u8]) {
    fuzz_protocol_with(side, bytes, true);
}

fn fuzz_protocol_with(side: Side, bytes: &[u8], compressed: bool) {
    let Some(input) = Input::parse(bytes) else {
        return;
    };
    let config = config_for(input.selector);
    let deflate = compressed.then(|| deflate_params_for(input.selector));
    let split = run_protocol(side, &config, deflate, &input.pieces);
    let whole = run_protocol(side, &config, deflate, &[input.data]);
    assert_eq!(split, whole, "outcome depends on read boundaries");
    if let Some(error) = &whole.close_error {
        assert_ne!(whole.state, State::Open, "{error}");
    }

    // The end of the stream right behind the data, before any event is taken: complete
    // frames are still delivered, then the connection is closed.
    let mut proto = new_protocol(side, &config, deflate);
    proto.receive_data(input.data);
    proto.receive_eof();
    let mut events = Vec::new();
    drain_events(|| proto.next_event(), input.data.len(), &mut events);
    assert_eq!(events, whole.events, "events lost to the EOF");
    assert_eq!(proto.state(), State::Closed);
    match &whole.close_error {
        // Whatever the call order, an error already in the buffer wins over the EOF.
        Some(error) => assert_eq!(proto.close_error(), Some(error)),
        None if proto.connection_closed().rcvd.is_none() => {
            assert_eq!(proto.close_error(), Some(&ProtocolError::UnexpectedEof));
        }
        None => assert_eq!(proto.close_error(), None),
    }

    // Drive the rest of the API over the same input: sends, then EOF.
    let mut proto = new_protocol(side, &config, deflate);
    proto.receive_data(input.data);
    let mut events = Vec::new();
    drain_events(|| proto.next_event(), input.data.len(), &mut events);
    let open = proto.state() == State::Open && proto.connection_closed().sent.is_none();
    let sent = proto.send_text("fuzz");
    assert_eq!(sent.is_ok(), open);
    let _ = proto.send_ping(b"p");
    if input.selector & 0x80 != 0 {
        let _ = proto.send_close(sockjet_proto::CloseCode::NORMAL_CLOSURE, "bye");
    }
    proto.receive_eof();
    // Only an incomplete frame can be left: no more events.
    assert_eq!(proto.next_event(), None);
    assert_eq!(proto.state(), State::Closed);
    assert!(proto.close_error().is_some() || proto.connection_closed().rcvd.is_some());
}

/// Compression round trips with arbitrary settings and messages: the first byte picks the
/// level (0-9), the second the memLevel (1-9: C zlib below 8, zlib-rs from 8 on), the
/// third the window (9-15 bits) and context takeover; the rest, cut at each 0xff byte,
/// is the messages. Each must come back whole through a decompressor of the other side,
/// and without context takeover compress alike wherever it comes in the stream.
pub fn fuzz_deflate_round_trip(bytes: &[u8]) {
    use sockjet_proto::BytesMut;

    let [level, mem_level, window, rest @ ..] = bytes else {
        return;
    };
    let config = DeflateConfig::default()
        .compression_level(u32::from(level % 10))
        .mem_level(1 + mem_level % 9);
    let bits = 9 + (window & 7) % 7;
    let no_takeover = window & 0x80 != 0;
    let params = DeflateParams {
        server_no_context_takeover: no_takeover,
        client_no_context_takeover: no_takeover,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    };
    let mut server = PerMessageDeflate::new(Side::Server, params, &config);
    let mut client = PerMessageDeflate::new(Side::Client, params, &config);
    let mut fresh = PerMessageDeflate::new(Side::Server, params, &config);
    for message in rest.split(|&byte| byte == 0xff).take(64) {
        let mut wire = BytesMut::new();
        server.compress(message, &mut wire);
        let mut inflated = BytesMut::new();
        client
            .decompress(&wire, true, &mut inflated, usize::MAX)
            .expect("our own compressed message inflates");
        assert_eq!(&inflated[..], message);
        if no_takeover {
            let mut again = BytesMut::new();
            fresh.compress(message, &mut again);
            assert_eq!(again, wire, "without context takeover, the same bytes");
        }
    }
}
