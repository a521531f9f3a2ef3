"""Python `websockets` echo server for sockjet's comparison benchmarks.

    python py_echo.py PORT [--compression] [--uvloop]

Listens on 127.0.0.1:PORT with the new asyncio API (websockets.asyncio.server.serve) and
prints `listening on ws://127.0.0.1:PORT`. Text is echoed as text, binary as binary;
websockets answers pings and the peer's Close itself. permessage-deflate ("deflate",
websockets' default: context takeover, client_max_window_bits offered) only with
--compression; compression=None otherwise. --uvloop runs on uvloop's event loop.
Messages up to 16 MiB (websockets' default max_size is 1 MiB). Other settings are
websockets' defaults (keepalive ping every 20 s, write_limit 32 KiB, max_queue 16).
"""

import argparse
import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 16 * 1024 * 1024


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port, compression):
    async with serve(
        echo,
        "127.0.0.1",
        port,
        compression="deflate" if compression else None,
        max_size=MAX_SIZE,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}", flush=True)
        await server.serve_forever()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--compression", action="store_true")
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

            uvloop.run(main(args.port, args.compression))
        else:
            asyncio.run(main(args.port, args.compression))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
