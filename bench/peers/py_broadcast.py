"""Python `websockets` broadcast server for sockjet's fan-out benchmark.

    python py_broadcast.py PORT [--uvloop]

Listens on 127.0.0.1:PORT with the new asyncio API (websockets.asyncio.server.serve) and
prints `listening on ws://127.0.0.1:PORT`. Every message received on any connection is
sent to every open connection, its sender included, text as text and binary as binary,
with websockets.asyncio.server.broadcast over the set of connected clients, as the
"Broadcasting" topic guide keeps it (add in the handler, remove when it ends).
broadcast() writes to every open connection without waiting and without backpressure
(it skips connections that are not open). Compression is off (compression=None);
messages up to 16 MiB; other settings are websockets' defaults. --uvloop runs on
uvloop's event loop.
"""

import argparse
import asyncio
import sys

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 16 * 1024 * 1024

CLIENTS = set()


async def relay(ws):
    CLIENTS.add(ws)
    try:
        async for message in ws:
            broadcast(CLIENTS, message)
    except ConnectionClosed:
        pass
    finally:
        CLIENTS.discard(ws)


async def main(port):
    async with serve(relay, "127.0.0.1", port, compression=None, max_size=MAX_SIZE) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}", flush=True)
        await server.serve_forever()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()  # exits 2 on bad usage
    if not 0 <= args.port < 65536:
        parser.error(f"bad port {args.port}")
    return args


if __name__ == "__main__":
    args = parse_args()
    try:
        if args.uvloop:
            import uvloop

            uvloop.run(main(args.port))
        else:
            asyncio.run(main(args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
