"""Python `websockets` peer of the permessage-deflate interop scenario.

    python_deflate.py client OPTIONS ws://127.0.0.1:PORT
    python_deflate.py server OPTIONS

OPTIONS is a JSON object: {"compression": "deflate"} for websockets' default compression
(the `compression` argument of connect() / serve()), {"compression": null} for none, or
{"factory": {...}} for `extensions=[ClientPerMessageDeflateFactory(...)]` (client) or
`extensions=[ServerPerMessageDeflateFactory(...)]` (server) with those keyword arguments.

The client connects to PORT/deflate; the server listens on a free port, prints
{"event":"listening","port":N} and serves one connection. Both then play the scenario
that interop/src/deflate.rs describes:

1. report what was negotiated ({"event":"open", "extensions": ..., "deflate": ...});
2. send each message of `messages()` (lists are sent fragmented, one frame per item)
   and report sockjet's echo of it;
3. report every message sockjet sends until "end of deflate scenario";
4. close with 1000 "deflate done" and report sockjet's close frame, then "done".

Every reported message says whether it arrived compressed (RSV1 set on its first frame)
and, if so, its size on the wire: `PerMessageDeflate.decode` is wrapped to record that.
"""

import asyncio
import collections
import hashlib
import json
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode

import python_scenario as scenario

PATH = "/deflate"
END = "end of deflate scenario ✓"
KIB = 1 << 10
MIB = scenario.MIB


def noise(length, seed):
    """Incompressible bytes: SHA-1 of "seed:0", "seed:1", ... concatenated; the Rust
    side computes the same (interop/src/deflate.rs)."""
    blocks = (length + 19) // 20
    data = b"".join(hashlib.sha1(f"{seed}:{i}".encode()).digest() for i in range(blocks))
    return data[:length]


def messages(name):
    """What the peer sends, in order; a list is one fragmented message. The same list is
    in node_deflate.js and interop/src/deflate.rs."""
    repeated = noise(300, "repeat").hex()
    return [
        f"héllo deflate from {name} ✓ 🦀",
        bytes(range(256)),
        scenario.pattern(MIB, 31, 7, 251),
        noise(256 * KIB, "peer"),
        "ö🦀" * 50_000,
        repeated,
        repeated,
        repeated,
        repeated,
        repeated,
        "",
        b"",
        ["frag-one ", "frag-twö ", "", "frag-three 🦀"],
        [
            scenario.pattern(64 * KIB, 7, 1, 256),
            noise(64 * KIB, "frag"),
            b"",
            scenario.pattern(1000, 3, 5, 256),
            b"",
        ],
    ]


# ----- what arrived compressed -----

_decode = PerMessageDeflate.decode


def _recording_decode(self, frame, *, max_size=None):
    """PerMessageDeflate.decode, recording [rsv1, wire size] of every data message."""
    log = self.__dict__.setdefault("sockjet_log", collections.deque())
    if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
        log.append([frame.rsv1, len(frame.data)])
    elif frame.opcode is Opcode.CONT and log:
        log[-1][1] += len(frame.data)
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = _recording_decode


def deflate_extension(ws):
    found = [ext for ext in ws.protocol.extensions if isinstance(ext, PerMessageDeflate)]
    return found[0] if found else None


def observe(ws, message):
    """describe() of a received message, with whether it was compressed."""
    observation = scenario.describe(message)
    ext = deflate_extension(ws)
    if ext is None:
        observation["compressed"] = False
        return observation
    log = ext.__dict__.get("sockjet_log")
    if not log:
        raise scenario.PeerError("a message arrived that PerMessageDeflate.decode never saw")
    rsv1, wire = log.popleft()
    observation["compressed"] = rsv1
    if rsv1:
        observation["wire"] = wire
    return observation


def negotiated(ws, role):
    """The negotiated parameters, named as in RFC 7692 (server_*: the server's compressor)."""
    ext = deflate_extension(ws)
    if ext is None:
        return None
    local = {
        "no_context_takeover": ext.local_no_context_takeover,
        "max_window_bits": ext.local_max_window_bits,
    }
    remote = {
        "no_context_takeover": ext.remote_no_context_takeover,
        "max_window_bits": ext.remote_max_window_bits,
    }
    server, client = (local, remote) if role == "server" else (remote, local)
    return {
        "server_no_context_takeover": server["no_context_takeover"],
        "client_no_context_takeover": client["no_context_takeover"],
        "server_max_window_bits": server["max_window_bits"],
        "client_max_window_bits": client["max_window_bits"],
    }


async def play(ws, role, name):
    path = ws.request.path
    scenario.emit(
        event="open",
        path=path,
        extensions=", ".join(ext.name for ext in ws.protocol.extensions),
        deflate=negotiated(ws, role),
    )
    if path != PATH:
        raise scenario.PeerError(f"unexpected path {path!r}")
    for message in messages(name):
        await scenario.send(ws, message)
        scenario.emit(**observe(ws, await scenario.recv(ws)))
    while True:
        message = await scenario.recv(ws)
        scenario.emit(**observe(ws, message))
        if message == END:
            break
    await asyncio.wait_for(ws.close(1000, "deflate done"), scenario.TIMEOUT)
    scenario.emit_closed(ws.close_exc)


def compression_args(options, factory_class):
    if "factory" in options:
        return {"compression": None, "extensions": [factory_class(**options["factory"])]}
    return {"compression": options["compression"]}


async def client(options, base):
    name = "python client"
    async with connect(
        base + PATH,
        **compression_args(options, ClientPerMessageDeflateFactory),
        **scenario.CONNECTION_SETTINGS,
        proxy=None,  # never a proxy for 127.0.0.1, whatever the environment says
    ) as ws:
        await play(ws, "client", name)
    scenario.emit(event="done")


async def server(options):
    name = "python server"
    finished = asyncio.get_running_loop().create_future()

    async def handler(ws):
        try:
            await play(ws, "server", name)
        except Exception as exc:  # noqa: BLE001 - hand it to server() to fail loudly
            if not finished.done():
                finished.set_exception(exc)
            raise
        if not finished.done():
            finished.set_result(None)

    compression = compression_args(options, ServerPerMessageDeflateFactory)
    await scenario.serve_until(finished, handler, **compression)


if __name__ == "__main__":
    usage = "usage: python_deflate.py client OPTIONS ws://127.0.0.1:PORT | server OPTIONS"
    if len(sys.argv) < 3:
        scenario.fail(usage)
    role, options = sys.argv[1], json.loads(sys.argv[2])
    if role == "client" and len(sys.argv) == 4:
        scenario.run(client(options, sys.argv[3]))
    elif role == "server" and len(sys.argv) == 3:
        scenario.run(server(options))
    else:
        scenario.fail(usage)
