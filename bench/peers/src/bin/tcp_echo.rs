//! Plain TCP echo, the kernel's floor: `tcp_echo ADDR` (no `--compression`).
//!
//! It completes a real WebSocket opening handshake (reads the request head up to the blank
//! line, answers `101` with `Sec-WebSocket-Accept`, no extensions), then is no WebSocket
//! server at all: it writes back every byte it reads, unchanged, so the client gets its
//! own frames back, masked. Only `sockjet bench --floor` accepts them. What it costs per
//! message is what any echo server over TCP pays at least: the system calls, the copies
//! and the wakeups, and none of the framing.
//!
//! One read of up to 64 KiB, then `write_all` of what was read, per connection task.

use std::io;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha1::{Digest as _, Sha1};
use sockjet_bench_peers::{accept, bind, parse_args};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// Size of the buffer each read goes into.
const BUFFER_SIZE: usize = 64 * 1024;

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// RFC 6455 §1.3: the GUID appended to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args("a plain TCP echo", false);
    let listener = bind(args.addr).await;
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(async move {
            let _ = handle(stream).await;
        });
    }
}

async fn handle(mut stream: TcpStream) -> io::Result<()> {
    let mut buffer = vec![0; BUFFER_SIZE];
    let mut filled = 0;
    let head_len = loop {
        let read = stream.read(&mut buffer[filled..MAX_HEAD]).await?;
        if read == 0 {
            return Ok(());
        }
        // The blank line may straddle two reads: look from 3 bytes back.
        let from = filled.saturating_sub(3);
        filled += read;
        if let Some(at) = find(&buffer[from..filled], b"\r\n\r\n") {
            break from + at + 4;
        }
        if filled == MAX_HEAD {
            stream
                .write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    };
    let Some(key) = header(&buffer[..head_len], b"sec-websocket-key") else {
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(response.as_bytes()).await?;
    // Bytes that came behind the head are the start of the client's frames.
    if filled > head_len {
        stream.write_all(&buffer[head_len..filled]).await?;
    }
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..read]).await?;
    }
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2): base64 of the SHA-1 of the key
/// followed by the GUID.
fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    STANDARD.encode(sha1.finalize())
}

/// The value of the header `name` (lowercase) in a request head, trimmed.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&byte| byte == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&byte| byte == b':')?;
        let (field, value) = line.split_at(colon);
        field
            .eq_ignore_ascii_case(name)
            .then(|| value[1..].trim_ascii())
    })
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_key_is_found_whatever_its_case() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nsec-WEBSOCKET-key:  abc== \r\n\r\n";
        assert_eq!(header(head, b"sec-websocket-key"), Some(&b"abc=="[..]));
        assert_eq!(header(head, b"upgrade"), None);
    }
}
