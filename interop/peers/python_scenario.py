"""The interop scenario as the Python `websockets` peer plays it, client or server.

Shared by python_client.py, python_server.py and the other peers. The peer prints one JSON line per
observation on stdout; the Rust test (interop/src/lib.rs) plays the other side and
compares these lines with what it expects. On any failure the peer writes a message to
stderr and exits non-zero.

Two connections, one after the other:

/main            the peer sends text, binary, 1 MiB, fragmented text and binary; sockjet
                 answers with its own text, binary, 1 MiB and a large non-ASCII text;
                 sockjet pings (answered by websockets), then the peer pings ("ping me"),
                 reports the pong, and closes with 4001 "bye".
/sockjet-closes  the peer says hello; sockjet closes with 1001; the peer reports it.
"""

import asyncio
import hashlib
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

# Every wait is bounded.
TIMEOUT = 10
MIB = 1 << 20
MAX_SIZE = 4 * MIB


def emit(**observation):
    print(json.dumps(observation), flush=True)


class PeerError(Exception):
    """The scenario did not go as expected."""


def fail(message):
    """Exits at once with a message (outside the event loop)."""
    print(f"python peer: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def pattern(length, mul, add, mod):
    """Deterministic bytes; the Rust side computes the same (interop/src/lib.rs)."""
    return bytes((i * mul + add) % mod for i in range(length))


def describe(message):
    """The observation for a received message: type, length in bytes, SHA-1, and the
    content itself when short."""
    if isinstance(message, str):
        data = message.encode()
        observation = {"event": "message", "type": "text", "len": len(data)}
        if len(data) <= 256:
            observation["text"] = message
    else:
        data = bytes(message)
        observation = {"event": "message", "type": "binary", "len": len(data)}
        if len(data) <= 256:
            observation["hex"] = data.hex()
    observation["sha1"] = hashlib.sha1(data).hexdigest()
    return observation


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def send(ws, message):
    await asyncio.wait_for(ws.send(message), TIMEOUT)


async def main_connection(ws, name):
    await send(ws, f"héllo from {name} ✓ 🦀")
    emit(**describe(await recv(ws)))
    await send(ws, bytes(range(256)))
    emit(**describe(await recv(ws)))
    await send(ws, pattern(MIB, 31, 7, 251))
    emit(**describe(await recv(ws)))
    # An iterable is sent as one fragmented message, one frame per item.
    await send(ws, ["frag-one ", "frag-twö ", "frag-three 🦀"])
    await send(ws, [b"\x00\x01\x02", b"", b"\x03\x04"])
    emit(**describe(await recv(ws)))  # the large text
    message = await recv(ws)
    emit(**describe(message))
    if message != "ping me":
        raise PeerError(f"expected 'ping me', got {message!r:.100}")
    pong_waiter = await ws.ping(b"peer-ping")
    await asyncio.wait_for(pong_waiter, TIMEOUT)
    emit(event="pong", payload="peer-ping")
    await send(ws, "pong received")
    await asyncio.wait_for(ws.close(4001, "bye"), TIMEOUT)
    emit_closed(ws.close_exc)


async def closing_connection(ws, name):
    await send(ws, f"hello again from {name}")
    while True:
        try:
            message = await recv(ws)
        except ConnectionClosed as exc:
            emit_closed(exc)
            return
        emit(**describe(message))


def emit_closed(exc):
    """Reports the close frame received from sockjet."""
    if exc.rcvd is None:
        emit(event="closed", code=None, reason=None)
    else:
        emit(event="closed", code=int(exc.rcvd.code), reason=exc.rcvd.reason)


async def play(ws, path, name):
    emit(event="open", path=path)
    if path == "/main":
        await main_connection(ws, name)
    elif path == "/sockjet-closes":
        await closing_connection(ws, name)
    else:
        raise PeerError(f"unexpected path {path!r}")


# The settings of every connection the peers open or accept: messages up to MAX_SIZE, no
# keepalive pings, the opening and closing handshakes bounded by TIMEOUT.
CONNECTION_SETTINGS = {
    "max_size": MAX_SIZE,
    "ping_interval": None,
    "open_timeout": TIMEOUT,
    "close_timeout": TIMEOUT,
}


async def serve_until(finished, handler, **options):
    """Serves `handler` on 127.0.0.1 on a free port (with CONNECTION_SETTINGS and
    `options`), prints {"event":"listening","port":N}, waits for `finished`, then prints
    {"event":"done"}."""
    async with serve(handler, "127.0.0.1", 0, **options, **CONNECTION_SETTINGS) as server:
        emit(event="listening", port=server.sockets[0].getsockname()[1])
        await finished
    emit(event="done")


def run(coroutine):
    """Runs the peer; any exception (timeout, unexpected close...) exits non-zero."""
    try:
        asyncio.run(asyncio.wait_for(coroutine, 60))
    except Exception as exc:  # noqa: BLE001 - report everything, then fail
        fail(f"{type(exc).__name__}: {exc!r}")
