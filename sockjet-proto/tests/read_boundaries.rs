//! The outcome of a connection never depends on how the network cut the input into reads
//! (the property tests check this for framing; these are fixed cases found by fuzzing).

use sockjet_proto::{
    ClientConfig, ClientProtocol, HandshakeError, ServerConfig, ServerProtocol, http::Uri,
};

/// Feeds `pieces` to a new server and returns its handshake error.
fn server_error(config: &ServerConfig, pieces: &[&[u8]]) -> Option<HandshakeError> {
    let mut server = ServerProtocol::new(config.clone());
    for piece in pieces {
        server.receive_data(piece);
        for _ in 0..10 {
            if server.next_event().is_none() {
                break;
            }
        }
    }
    server.handshake_error().cloned()
}

/// Feeds `pieces` to a new client (after its request) and returns its handshake error.
fn client_error(config: &ClientConfig, pieces: &[&[u8]]) -> Option<HandshakeError> {
    let uri: Uri = "ws://example.com/".parse().unwrap();
    let mut client = ClientProtocol::with_key(&uri, config.clone(), *b"the sample nonce");
    client.send_request(client.connect_request()).unwrap();
    for piece in pieces {
        client.receive_data(piece);
        for _ in 0..10 {
            if client.next_event().is_none() {
                break;
            }
        }
    }
    client.handshake_error().cloned()
}

#[test]
fn server_reports_same_error_for_long_request_line_at_any_split() {
    // A request line of 110 bytes, over the 64-byte limit, ended by a bare LF.
    let config = ServerConfig::default().max_request_line(64);
    let mut request = b"GET /".to_vec();
    request.extend([b'a'; 100]);
    request.extend(b" HTTP/1.1\n\r\n");
    let whole = server_error(&config, &[&request]);
    let split = server_error(&config, &[&request[..80], &request[80..]]);
    assert_eq!(split, Some(HandshakeError::RequestLineTooLong));
    assert_eq!(whole, split);
}

#[test]
fn client_reports_same_error_for_large_headers_at_any_split() {
    // A header line of 104 bytes, over the 64-byte header block limit, ended by a bare LF.
    let config = ClientConfig::default().max_header_bytes(64);
    let mut response = b"HTTP/1.1 101 Switching Protocols\r\nX-Big: ".to_vec();
    response.extend([b'a'; 100]);
    response.extend(b"\n\r\n");
    let whole = client_error(&config, &[&response]);
    let split = client_error(&config, &[&response[..120], &response[120..]]);
    assert_eq!(split, Some(HandshakeError::HeadersTooLarge));
    assert_eq!(whole, split);
}
