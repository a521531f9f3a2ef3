#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into corpus/<target>/.

Seeds of the targets that take `sockjet_fuzz::Input` start with a selector byte and a
count of read sizes: [selector, n, size_1 .. size_n, data ..].

Run from fuzz/: python3 make_corpus.py
"""

import os
import struct
import zlib

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(first, payload, mask=None):
    out = bytearray([first])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        out.append(bit | n)
    elif n < 65536:
        out.append(bit | 126)
        out += struct.pack(">H", n)
    else:
        out.append(bit | 127)
        out += struct.pack(">Q", n)
    if mask is not None:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out + payload)


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


def stream(masked):
    """Typical frame sequences, masked as a client sends them or not."""
    m = KEY if masked else None
    f = lambda first, payload: frame(first, payload, m)  # noqa: E731
    return {
        "text": f(0x81, b"Hello"),
        "binary": f(0x82, bytes(range(200))),
        "fragmented": f(0x01, b"Hel") + f(0x89, b"ping") + f(0x80, b"lo"),
        "utf8_split": f(0x01, "€".encode()[:1]) + f(0x80, "€".encode()[1:]),
        "ping_pong": f(0x89, b"") + f(0x8A, b"pong") + f(0x89, b"x" * 125),
        "close": f(0x88, close(1000, b"bye")),
        "close_empty": f(0x82, b"data") + f(0x88, b""),
        "invalid_utf8": f(0x81, b"ok\xc0\xaf"),
        "invalid_close": f(0x88, close(1005)),
        "rsv": f(0xC1, b"x"),
        "len16": f(0x82, b"z" * 300),
        "many": b"".join(f(0x81, bytes([0x61 + i])) for i in range(20)),
    }


def with_reads(data, selector=0, sizes=()):
    return bytes([selector, len(sizes)] + list(sizes)) + data


REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)

RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
)


def deflate_messages(messages, wbits=15, takeover=True):
    """Each message compressed as permessage-deflate sends it (RFC 7692 7.2.1)."""
    out = []
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    for message in messages:
        if not takeover:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


def deflate_stream():
    """Compressed frames from a client, the attacks among them."""
    hello, hello_again = deflate_messages([b"Hello", b"Hello"])
    bomb = deflate_messages([bytes(4 << 20)])[0]
    text = deflate_messages(["κόσμε".encode() * 40])[0]
    final_block = zlib.compressobj(6, zlib.DEFLATED, -15)
    final_block = final_block.compress(b"done") + final_block.flush(zlib.Z_FINISH)
    return {
        "hello": frame(0xC1, hello, KEY),
        "takeover": frame(0xC1, hello, KEY) + frame(0xC1, hello_again, KEY),
        "fragmented": frame(0x41, text[:7], KEY) + frame(0x80, text[7:], KEY),
        "bomb": frame(0xC2, bomb, KEY),
        "corrupt": frame(0xC2, b"\xff\xff\xff\xff", KEY),
        "final_block": frame(0xC1, final_block, KEY),
        "rsv1_ping": frame(0xC9, b"p", KEY),
        "rsv1_continuation": frame(0x41, hello[:2], KEY) + frame(0xC0, hello[2:], KEY),
        "uncompressed_mix": frame(0x81, b"plain", KEY) + frame(0xC1, hello, KEY),
        "invalid_utf8": frame(0xC1, deflate_messages([b"\xc3\x28"])[0], KEY),
        "window_9": frame(0xC2, deflate_messages([b"abc" * 400], wbits=9)[0], KEY),
    }


def corpus():
    seeds = {}
    seeds["protocol_deflate"] = {}
    for i, (name, data) in enumerate(deflate_stream().items()):
        # Selector bits 2-5 vary the window and context takeover; bit 0-1 the limits.
        seeds["protocol_deflate"][name] = with_reads(data, selector=i * 4, sizes=(3, 1, 7))
    for target, masked in [("protocol_server", True), ("protocol_client", False)]:
        seeds[target] = {}
        for i, (name, data) in enumerate(stream(masked).items()):
            seeds[target][name] = with_reads(data, selector=i, sizes=(3, 1, 7))
    seeds["frame_header"] = {
        "short": frame(0x81, b"a")[:2],
        "masked": frame(0x82, b"ab", KEY)[:6],
        "len16": frame(0x82, b"z" * 300, KEY)[:8],
        "len64": frame(0x82, b"z" * 70000)[:10],
        "rsv_fin0": bytes([0x71, 0x05]),
        "bad_len": bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        "bad_opcode": bytes([0x83, 0x00]),
    }
    seeds["utf8_incremental"] = {
        "ascii": with_reads(b"Hello, world", sizes=(5,)),
        "greek": with_reads("κόσμε".encode(), sizes=(1, 2, 3)),
        "emoji_split": with_reads("a😀b€c".encode(), sizes=(2, 1, 1, 2)),
        "surrogate": with_reads(b"ab\xed\xa0\x80", sizes=(3,)),
        "overlong": with_reads(b"\xc0\xaf", sizes=(1,)),
        "truncated": with_reads(b"ok\xf0\x9f\x98", sizes=(4,)),
        "max": with_reads(b"\xf4\x8f\xbf\xbf\xf4\x90\x80\x80", sizes=(4, 1)),
    }
    seeds["mask"] = {
        "short": with_reads(KEY + b"\x00" + b"Hello", sizes=(2,)),
        "aligned": with_reads(KEY + b"\x03" + bytes(range(100)), sizes=(7, 33, 1)),
        "long": with_reads(KEY + b"\x0d" + bytes(range(256)) * 4, sizes=(200, 5)),
    }
    frames_after = frame(0x81, b"Hi", KEY) + frame(0x88, close(1000), KEY)
    seeds["http11_request"] = {
        "rfc": with_reads(REQUEST, sizes=(20, 40)),
        "with_frames": with_reads(REQUEST + frames_after, selector=0x20),
        "rejected": with_reads(REQUEST, selector=0x10),
        "post": with_reads(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n"),
        "http10": with_reads(b"GET / HTTP/1.0\r\n\r\n"),
        "no_key": with_reads(REQUEST.replace(b"Sec-WebSocket-Key", b"X-Key")),
        "bad_version": with_reads(REQUEST.replace(b"Version: 13", b"Version: 8")),
        "small_limits": with_reads(REQUEST, selector=1),
        "obs_fold": with_reads(REQUEST.replace(b"Origin:", b"X: a\r\n b\r\nOrigin:")),
    }
    frames_back = frame(0x81, b"Hi") + frame(0x89, b"p") + frame(0x88, close(1000))
    seeds["http11_response"] = {
        "rfc": with_reads(RESPONSE + b"\r\n", sizes=(10, 30)),
        "with_frames": with_reads(RESPONSE + b"\r\n" + frames_back, sizes=(100,)),
        "subprotocol": with_reads(
            RESPONSE + b"Sec-WebSocket-Protocol: chat\r\n\r\n", selector=1
        ),
        "bad_accept": with_reads(RESPONSE.replace(b"s3pP", b"AAAA") + b"\r\n"),
        "rejected": with_reads(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!", sizes=(40,)
        ),
        "redirect": with_reads(
            b"HTTP/1.1 302 Found\r\nLocation: ws://other/\r\nContent-Length: 0\r\n\r\n"
        ),
        "http10": with_reads(RESPONSE.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n"),
        "small_limits": with_reads(RESPONSE + b"X-Big: " + b"a" * 300 + b"\r\n\r\n", 2),
    }
    return seeds


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for target, files in corpus().items():
        directory = os.path.join(here, "corpus", target)
        os.makedirs(directory, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(directory, "seed_" + name), "wb") as out:
                out.write(data)


if __name__ == "__main__":
    main()
