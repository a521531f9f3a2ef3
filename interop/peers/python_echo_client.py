"""A Python `websockets` client against any sockjet echo server (interop/tests/uring.rs).

    python python_echo_client.py ws://127.0.0.1:PORT/echo deflate|plain

Sends the messages below, checks that each comes back unchanged and in order, pings,
then closes with 1000 "done". Prints one JSON line per observation on stdout; the Rust
test compares them with the list it expects (interop/src/echo_client.rs). On any
failure it writes a message to stderr and exits non-zero.
"""

import asyncio
import hashlib
import json
import sys

from websockets.asyncio.client import connect

# Every wait is bounded.
TIMEOUT = 10
MIB = 1 << 20


def emit(**observation):
    print(json.dumps(observation), flush=True)


def pattern(length, mul, add, mod):
    return bytes((i * mul + add) % mod for i in range(length))


def noise(length, seed):
    """Incompressible bytes: SHA-1 of "seed:0", "seed:1", ... concatenated."""
    blocks = []
    i = 0
    while i * 20 < length:
        blocks.append(hashlib.sha1(f"{seed}:{i}".encode()).digest())
        i += 1
    return b"".join(blocks)[:length]


def messages():
    """(name, message); a list is one fragmented message. The same names, in the same
    order, are in node_echo_client.js and interop/src/echo_client.rs."""
    return [
        ("text", "héllo from python ✓ 🦀"),
        ("binary", bytes(range(256))),
        ("empty_text", ""),
        ("big_binary", pattern(MIB, 31, 7, 251)),
        ("big_text", "ö🦀" * 50000),
        ("noise", noise(256 * 1024, "python")),
        ("fragmented_text", ["frag-one ", "frag-twö ", "", "frag-three 🦀"]),
        ("fragmented_binary", [pattern(64 * 1024, 7, 1, 256), noise(1000, "frag")]),
    ]


def joined(message):
    if isinstance(message, list):
        return "".join(message) if isinstance(message[0], str) else b"".join(message)
    return message


async def main(url, compression):
    async with asyncio.timeout(60):
        async with connect(
            url,
            compression="deflate" if compression else None,
            max_size=4 * MIB,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            ping_interval=None,
        ) as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            emit(event="open", extensions=extensions)
            for name, message in messages():
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
                expected = joined(message)
                emit(
                    event="echo",
                    name=name,
                    type="text" if isinstance(echo, str) else "binary",
                    equal=echo == expected,
                )
            # 100 small messages in flight at once: all back, in order.
            for i in range(100):
                await ws.send(f"pipelined {i}")
            echoes = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(100)]
            emit(
                event="pipelined",
                in_order=echoes == [f"pipelined {i}" for i in range(100)],
            )
            pong = await ws.ping(b"python ping")
            await asyncio.wait_for(pong, TIMEOUT)
            emit(event="pong")
            await ws.close(1000, "done")
            emit(
                event="closed",
                code=ws.close_code,
                reason=ws.close_reason,
            )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("deflate", "plain"):
        print(f"usage: {sys.argv[0]} URL deflate|plain", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2] == "deflate"))
    except Exception as error:  # reported, not hidden: the test shows stderr
        print(f"python echo client: {error!r}", file=sys.stderr, flush=True)
        sys.exit(1)
