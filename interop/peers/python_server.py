"""Python `websockets` server for the interop tests: python_server.py

Listens on 127.0.0.1 on a free port, prints {"event":"listening","port":N}, plays
python_scenario.py on each connection (by path: /main, then /sockjet-closes), prints
{"event":"done"} and exits after the /sockjet-closes connection.
"""

import asyncio

from websockets.asyncio.server import serve

import python_scenario as scenario

NAME = "python server"


async def main():
    finished = asyncio.get_running_loop().create_future()

    async def handler(ws):
        path = ws.request.path
        try:
            await scenario.play(ws, path, NAME)
        except Exception as exc:  # noqa: BLE001 - hand it to main() to fail loudly
            if not finished.done():
                finished.set_exception(exc)
            raise
        if path == "/sockjet-closes" and not finished.done():
            finished.set_result(None)

    async with serve(
        handler,
        "127.0.0.1",
        0,
        compression=None,  # uncompressed; python_deflate.py covers permessage-deflate
        max_size=scenario.MAX_SIZE,
        ping_interval=None,
        open_timeout=scenario.TIMEOUT,
        close_timeout=scenario.TIMEOUT,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        scenario.emit(event="listening", port=port)
        await finished
    scenario.emit(event="done")


if __name__ == "__main__":
    scenario.run(main())
